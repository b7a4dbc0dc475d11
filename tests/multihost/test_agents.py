"""Region agents on three hosts (issue 12 item 4): a deploy and a rollback across the hub's
NATS cluster and S3, and a region host's link cut during each.

Each region host runs ``vega-dag region serve`` (fra on r1, iad on r2, sfo
on r3) listening on its own address, reading its pointer through its leaf
node (VEGA_DAG_POINTERS_LEAF) and writing its status to the hub; the
deployer runs on the developer machine, talks to NATS and S3 in the hub, and
probes the agents over the bridge (through httpx: they are not on its
loopback).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.multihost.agents import DOWN_S, Fleet, agent_fleet, running, set_version
from tests.multihost.cluster import Cluster
from tests.multihost.helpers import until_it_goes_through, vega_on


@pytest.fixture
def fleet(healed: Cluster, tmp_path: Path) -> Iterator[Fleet]:
    with running(agent_fleet(healed, tmp_path)) as fleet:
        yield fleet


def _deploy(fleet: Fleet, version: str) -> dict:
    set_version(fleet.root, version)
    return fleet.vega("deploy", str(fleet.root))


def test_deploy_and_rollback_across_hosts_with_a_link_cut_during_each(fleet: Fleet):
    cluster = fleet.cluster
    v1 = _deploy(fleet, "v1")["deployment"]
    assert set(fleet.truth().values()) == {v1}

    # -- a deploy while sfo's host is cut off: skipped by policy, never pointed at v2.
    cluster.net.cut("r3")
    fleet.wait_down("sfo")
    outcome = _deploy(fleet, "v2")
    v2 = outcome["deployment"]
    assert fleet.served_from("dev", "fra") == fleet.served_from("dev", "iad") == v2
    plan = fleet.vega("plan", str(fleet.root))
    assert plan["pointers"]["sfo"] == v1, plan
    # Alone, sfo still serves what its pointer named (its leaf's mirror keeps it).
    assert fleet.served_from("r3", "sfo") == v1
    cluster.net.mend("r3")
    fleet.wait_up("sfo")
    assert fleet.truth() == {"fra": v2, "iad": v2, "sfo": v1}

    # The next deploy reaches sfo too: one deployment everywhere.
    v3 = _deploy(fleet, "v3")["deployment"]
    assert set(fleet.truth().values()) == {v3}

    # -- a rollback while sfo's host is cut off: refused, naming it, nothing changed.
    cluster.net.cut("r3")
    fleet.wait_down("sfo")
    refused = vega_on(cluster, "dev", "rollback", "--path", str(fleet.root),
                      VEGA_DAG_AGENT_DOWN_S=DOWN_S)  # fmt: skip
    assert refused.returncode != 0
    said = refused.stderr + refused.stdout
    assert "sfo" in said and "nothing was changed" in said and "Traceback" not in said, said
    assert fleet.served_from("dev", "fra") == v3 and fleet.served_from("r3", "sfo") == v3
    # Back: the rollback goes through, every host converges on the previous deployment.
    cluster.net.mend("r3")
    fleet.wait_up("sfo")
    # An agent judged down meanwhile (a heartbeat late on a loaded machine) refuses it
    # clearly, with nothing changed: asked again until it goes through.
    env = {"VEGA_DAG_AGENT_DOWN_S": DOWN_S, **fleet.env}
    failures, rolled = until_it_goes_through(
        cluster, "dev", ["rollback", "--path", str(fleet.root)], **env
    )
    assert all("nothing was changed" in f for f in failures), failures
    assert rolled["deployment"] == v3
    truth = fleet.truth()
    assert truth["fra"] == truth["iad"] == v2 and truth["sfo"] == v1, truth
    history = {d["deployment"]: d["status"] for d in fleet.vega("history", str(fleet.root))}
    assert history[v3] == "rolled-back" and history[v2] == "live", history
