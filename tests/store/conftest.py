"""The remote store's tests run against a real S3 service: SeaweedFS, started once per session.

Tests skip, saying why, only when the binary cannot run here.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.store.seaweed import BUCKET, CannotRun, SeaweedS3, running_seaweed


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory):
    try:
        with running_seaweed(tmp_path_factory.mktemp("seaweedfs")) as server:
            yield server
    except CannotRun as err:
        pytest.skip(str(err))


@pytest.fixture
def s3_env(seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's environment pointed at the test server (as a machine's would be)."""
    env = seaweed.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT", "AWS_PROFILE", "VEGA_DAG_STORE"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> str:
    """A prefix of the bucket no other test uses."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("_", "-").lower()
    return f"s3://{BUCKET}/{name}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
