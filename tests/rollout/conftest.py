from __future__ import annotations

from pathlib import Path

import pytest

from tests.rollout.helpers import stop_fleet, write_project


@pytest.fixture
def project(tmp_path: Path):
    """A 3-region example project; its regions are stopped however the test ends."""
    root = write_project(tmp_path / "proj")
    yield root
    stop_fleet(root)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``nats-server -js``, started once per session (skipped only where it cannot run)."""
    from tests.rollout.natsserver import CannotRun, running_nats

    try:
        with running_nats(tmp_path_factory.mktemp("nats")) as server:
            yield server
    except CannotRun as err:
        pytest.skip(str(err))


@pytest.fixture
def nats_url(nats_server, request: pytest.FixtureRequest) -> str:
    """The test server with a namespace (buckets, stream) no other test uses."""
    import re
    import time

    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:24]
    return f"{nats_server.url}/{name}-{time.monotonic_ns() % 10**9}"


@pytest.fixture(params=["sqlite", "nats"])
def pointer_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None (the SQLite file) or a NATS URL: a test taking it runs against both stores."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("nats_url")
