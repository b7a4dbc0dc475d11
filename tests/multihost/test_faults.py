"""Faults across hosts, each during a deploy and during a rollback (issue 12 item 4).

The NATS stream leader killed: the deployer on the developer machine moves
pointers held by the hub's 3-node cluster (replicas=3) while the server that
leads the pointer bucket's RAFT group is killed with SIGKILL. The regions
here run on the developer machine and learn their pointers from the hub. A
deploy or rollback that meets the election either completes or fails
naming the pointer store; writes resume once a new leader is elected (the
command is run again until it goes through); and afterwards every region
serves one complete deployment, the one its pointer names, and ``history``
says what happened.
"""

from __future__ import annotations

import os
import time

from tests.multihost.helpers import (
    deploy_past_the_canary,
    hub_pointers,
    kill_stream_leader,
    until_it_goes_through,
    vega_json_on,
    vega_on,
)
from tests.multihost.netns import call_in
from tests.rollout.helpers import write_project


def _served(root):
    from tests.rollout.helpers import served

    return served(root)


def _served_on(cluster, root) -> dict:
    return call_in(cluster.net.hosts["dev"].ns, _served, root)


def _truth(cluster, root, pointers, settle_s: float = 30.0) -> dict[str, str]:
    """Region → deployment, asserting that status, pointers and answers all agree.

    Right after a leader's death a region may still be reconnecting: its row
    then says so ("degraded: pointer store …: nats: timeout"), which is the
    truth; it must be back to "ok" within ``settle_s``.
    """
    deadline = time.monotonic() + settle_s
    while True:
        status = vega_json_on(cluster, "dev", "status", str(root), "--pointers", pointers)
        rows = {r["name"]: r for r in status["regions"]}
        healths = {r["health"] for r in rows.values()}
        if healths == {"ok"} or time.monotonic() > deadline:
            break
        assert all(h == "ok" or h.startswith("degraded: pointer store") for h in healths), rows
        time.sleep(0.5)
    assert healths == {"ok"}, rows
    served = _served_on(cluster, root)
    assert served == {name: r["deployment"] for name, r in rows.items()}, (served, rows)
    return served


def test_the_stream_leader_killed_during_a_deploy_and_during_a_rollback(healed, tmp_path):
    cluster = healed
    ns = f"lead{os.getpid() % 10000}{time.monotonic_ns() % 10**6}"
    pointers = hub_pointers(cluster, ns)
    root = write_project(tmp_path / "proj")
    try:
        first = vega_json_on(cluster, "dev", "deploy", str(root), "--pointers", pointers)
        v1 = first["deployment"]
        assert set(_truth(cluster, root, pointers).values()) == {v1}
        assert cluster.stream_replicas(f"KV_{ns}-pointers") == 3

        # -- during a deploy: the leader dies once the canary's pointer moved.
        (root / "lib" / "version.py").write_text('VERSION = "v2"\n')
        deploy = deploy_past_the_canary(cluster, "dev", str(root), "--pointers", pointers)
        killed = kill_stream_leader(cluster, f"KV_{ns}-pointers")
        _, err = deploy.communicate(timeout=180)
        assert "Traceback" not in err, err
        if deploy.returncode != 0:
            # Failed clearly; every region serves what its pointer names (the canary
            # may be left on the failed deployment when its auto-rollback met the
            # election too). Retried, the deploy goes through.
            assert "pointers" in err or "region" in err, err
            before = _truth(cluster, root, pointers)
            _, outcome = until_it_goes_through(
                cluster, "dev", ["deploy", str(root), "--pointers", pointers]
            )
            v2 = outcome["deployment"]
        else:
            before = {name: v1 for name in ("fra", "iad", "sfo")}
            v2 = vega_json_on(cluster, "dev", "history", str(root), "--pointers", pointers)[0][
                "deployment"
            ]
        assert v2 != v1
        assert set(_truth(cluster, root, pointers).values()) == {v2}
        cluster.restart(killed)  # two of three must stand for the next election

        # -- during a rollback: the new leader dies just before it.
        kill_stream_leader(cluster, f"KV_{ns}-pointers")
        failures, rolled = until_it_goes_through(
            cluster, "dev", ["rollback", "--path", str(root), "--pointers", pointers]
        )
        assert all("pointers" in f or "lock" in f for f in failures), failures
        history = vega_json_on(cluster, "dev", "history", str(root), "--pointers", pointers)
        said = f"rollback failed {failures}, then {rolled}; v1 {v1}, v2 {v2}; history {history}"
        # Each region back on what it served before v2 reached it.
        assert _truth(cluster, root, pointers) == before, said
        states = {d["deployment"]: d["status"] for d in history}
        assert states[v2] == "rolled-back", history
        if set(before.values()) == {v1}:
            assert states[v1] == "live", history
    finally:
        vega_on(cluster, "dev", "regions", "down", str(root), timeout=60)
