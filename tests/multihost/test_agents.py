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

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.multihost.cluster import Cluster
from tests.multihost.helpers import VEGA_DAG, host_env, hub_pointers, vega_json_on, vega_on
from tests.multihost.netns import call_in
from tests.rollout.helpers import write_project

HOSTS = {"fra": "r1", "iad": "r2", "sfo": "r3"}
PORT = 8000
#: The deployer calls an agent down after this many seconds without a heartbeat.
DOWN_S = "2"


def _get(url: str) -> tuple[int, dict, bytes]:
    """GET ``url`` from the namespace of the calling thread (``call_in``).

    A client of its own each time: a pooled connection (remote_http's client
    is one per process) opened from another namespace to the same address
    would carry the request over that namespace's link, cut or not.
    """
    import httpx

    try:
        answer = httpx.get(url, timeout=10.0)
    except httpx.TimeoutException as err:
        raise TimeoutError(f"timed out ({type(err).__name__})") from None
    except httpx.TransportError as err:
        raise OSError(str(err)) from None
    return answer.status_code, dict(answer.headers), answer.content


def _reported(url: str) -> bool:
    try:
        code, _, body = _get(url + "/__vega/status")
    except OSError:
        return False
    return code == 200 and bool(json.loads(body).get("reported"))


@dataclass
class Fleet:
    cluster: Cluster
    root: Path
    pointers: str
    store: str
    procs: dict

    def url(self, region: str) -> str:
        return f"http://{self.cluster.net.hosts[HOSTS[region]].address}:{PORT}"

    def served_from(self, where: str, region: str) -> str | None:
        """The deployment ``region`` answers GET /api with, asked from host ``where``."""
        code, headers, _ = call_in(
            self.cluster.net.hosts[where].ns, _get, self.url(region) + "/api"
        )
        return headers.get("x-vega-deployment") if code == 200 else None

    def served(self) -> dict[str, str | None]:
        return {region: self.served_from("dev", region) for region in HOSTS}

    def vega(self, *args: str) -> dict:
        return vega_json_on(self.cluster, "dev", *args, VEGA_DAG_AGENT_DOWN_S=DOWN_S)

    def truth(self) -> dict[str, str]:
        """Region → deployment, asserting that status and the agents' answers agree."""
        rows = {r["name"]: r for r in self.vega("status", str(self.root))["regions"]}
        served = self.served()
        assert served == {n: r["deployment"] for n, r in rows.items()}, (served, rows)
        assert {r["health"] for r in rows.values()} == {"ok"}, rows
        return served

    def wait_down(self, region: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            rows = {r["name"]: r for r in self.vega("status", str(self.root))["regions"]}
            if rows.get(region, {}).get("health", "down") == "down":
                return
            assert time.monotonic() < deadline, f"{region} never went down: {rows}"
            time.sleep(0.5)

    def wait_up(self, region: str) -> None:
        """Until ``status`` (the deployer's view: a fresh heartbeat) has ``region`` up again.

        After a link comes back, the agent's NATS client reconnects on its own
        schedule and its ``reported`` flag can still be the one from before the
        cut: the deployer's view is what the next command acts on.
        """
        self.wait_reported(region)
        deadline = time.monotonic() + 60
        while True:
            rows = {r["name"]: r for r in self.vega("status", str(self.root))["regions"]}
            if rows.get(region, {}).get("health", "down") != "down":
                return
            assert time.monotonic() < deadline, f"{region} never came back: {rows}"
            time.sleep(0.5)

    def wait_reported(self, region: str) -> None:
        deadline = time.monotonic() + 60
        while not call_in(self.cluster.net.hosts["dev"].ns, _reported, self.url(region)):
            proc = self.procs[region]
            assert proc.poll() is None, f"agent {region} exited"
            assert time.monotonic() < deadline, f"agent {region} never reported"
            time.sleep(0.1)


@pytest.fixture
def fleet(healed: Cluster, tmp_path: Path) -> Iterator[Fleet]:
    cluster = healed
    unique = f"ag{os.getpid() % 10000}{time.monotonic_ns() % 10**6}"
    pointers = hub_pointers(cluster, unique)
    store = f"s3://vega-cache/{unique}"
    root = write_project(tmp_path / "proj")
    with open(root / "pyproject.toml", "a") as f:
        f.write(
            f'\n[tool.vega.backend]\nstore = "{store}"\npointers = "{pointers}"\n'
            'regions = "agents"\n'
        )
    # A region host's link may be down: the deploy goes on without it.
    text = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        text.replace("[tool.vega.rollout]\n", '[tool.vega.rollout]\non_region_down = "skip"\n')
    )
    procs = {}
    fleet = Fleet(cluster, root, pointers, store, procs)
    try:
        for region, host_name in HOSTS.items():
            host = cluster.net.hosts[host_name]
            env = host_env(cluster, VEGA_DAG_POINTERS_LEAF=cluster.leaf_pointers(host_name))
            args = [VEGA_DAG, "region", "serve", "--name", region,
                    "--dir", str(tmp_path / host_name), "--listen", f"{host.address}:{PORT}",
                    "--url", fleet.url(region), "--store", store,
                    "--pointers", pointers]  # fmt: skip
            log = open(tmp_path / f"{host_name}.log", "ab")  # noqa: SIM115 (the agent's, till it ends)
            procs[region] = cluster.net.popen(
                host, args, env=env, stdout=log, stderr=log, start_new_session=True
            )
        for region in HOSTS:
            fleet.wait_reported(region)
        yield fleet
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _deploy(fleet: Fleet, version: str) -> dict:
    (fleet.root / "lib" / "version.py").write_text(f'VERSION = "{version}"\n')
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
    rolled = fleet.vega("rollback", "--path", str(fleet.root))
    assert rolled["deployment"] == v3
    truth = fleet.truth()
    assert truth["fra"] == truth["iad"] == v2 and truth["sfo"] == v1, truth
    history = {d["deployment"]: d["status"] for d in fleet.vega("history", str(fleet.root))}
    assert history[v3] == "rolled-back" and history[v2] == "live", history
