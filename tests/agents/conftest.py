"""Region agents on the shared backends: a real SeaweedFS (S3) and a real nats-server, once per
session, on loopback; each test gets its own bucket prefix and NATS namespace."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.agents.helpers import Agents, Backends


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory):
    from tests.store.seaweed import CannotRun, running_seaweed

    try:
        with running_seaweed(tmp_path_factory.mktemp("seaweedfs")) as server:
            yield server
    except CannotRun as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory):
    from tests.rollout.natsserver import CannotRun, running_nats

    try:
        with running_nats(tmp_path_factory.mktemp("nats")) as server:
            yield server
    except CannotRun as err:
        pytest.skip(str(err))


@pytest.fixture
def backends(seaweed, nats_server, request: pytest.FixtureRequest, monkeypatch) -> Backends:
    """A bucket prefix and a NATS namespace no other test uses; this process's AWS environment."""
    from tests.store.seaweed import BUCKET

    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:24]
    unique = f"{name}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    env = seaweed.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT", "AWS_PROFILE", "VEGA_DAG_STORE",
                "VEGA_DAG_POINTERS", "VEGA_DAG_REGIONS"):  # fmt: skip
        monkeypatch.delenv(key, raising=False)
    return Backends(
        store=f"s3://{BUCKET}/{unique}", pointers=f"{nats_server.url}/{unique}", env=env
    )


@pytest.fixture
def agents(backends: Backends, tmp_path: Path):
    """Start region agents (each in its own directory, no project); all stopped at the end."""
    fleet = Agents(backends, tmp_path / "hosts")
    yield fleet
    fleet.stop_all()
