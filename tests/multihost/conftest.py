"""The multi-host fixture: a hub (3-node NATS cluster, SeaweedFS), region hosts r1–r3 with
a leaf node each, a developer machine ``dev`` and a CI runner ``ci``, every one its own
network namespace.

One set for the whole run (starting it takes seconds); a test that breaks a
part of it (a cut link, a killed server) puts it back before it ends. Missing
prerequisites (not root, no ``ip``, no server binaries) fail the tests in CI
(``CI=true``), where they must run, and skip them elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.multihost.cluster import Cluster
from tests.multihost.netns import Network, prerequisites
from tests.servers import CannotRun

REGION_HOSTS = ("r1", "r2", "r3")


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"multi-host tests cannot run in CI: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    why = prerequisites()
    if why:
        _unavailable(why)
    net = Network()
    try:
        net.up()
        for name in (*REGION_HOSTS, "dev", "ci"):
            net.add_host(name)
        c = Cluster(net, tmp_path_factory.mktemp("multihost"))
        try:
            c.start_hub()
            c.start_seaweed()
            for name in REGION_HOSTS:
                c.start_leaf(net.hosts[name])
        except CannotRun as err:
            _unavailable(str(err))
        yield c
    finally:
        net.close()


@pytest.fixture
def healed(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, whole again after the test: every link up, every hub server running."""
    yield cluster
    for name in REGION_HOSTS:
        cluster.net.mend(name)
    stopped = [n for n in cluster.hub.values() if n.proc is None or n.proc.poll() is not None]
    for node in stopped:
        cluster.restart(node.name)
    for name in REGION_HOSTS:
        cluster.wait_leaf_connected(name)
