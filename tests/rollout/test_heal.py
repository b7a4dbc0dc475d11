"""A fleet that heals: the supervisor restarts a killed region on its pointer's deployment.

Real regions on loopback. No timed assertions: each wait polls with a
generous deadline and the test asserts what happened.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.rollout.helpers import get, vega, vega_json, write_project
from vega_dag.config import load_config
from vega_dag.regions import supervisor
from vega_dag.regions.fleet import LocalFleet, RegionInfo
from vega_dag.rollout.pointers import PointerStore

DEADLINE = 90.0


def until(what: str, check, deadline: float = DEADLINE):
    """Poll ``check`` until it returns something truthy; fail naming ``what`` if it never does."""
    stop = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > stop:
            pytest.fail(f"not within {deadline:.0f}s: {what}")
        time.sleep(0.1)


def region(root: Path, name: str) -> RegionInfo | None:
    return next((r for r in LocalFleet(load_config(root)).regions() if r.name == name), None)


def serves(info: RegionInfo | None, deployment: str) -> bool:
    if info is None:
        return False
    try:
        return get(info.url, "/api")[1].get("x-vega-deployment") == deployment
    except OSError:
        return False


def healthy_row(root: Path, name: str) -> dict | None:
    """``status --json``'s row of ``name``, once it says the region is healthy."""
    rows = vega_json("status", str(root))["regions"]
    return next((r for r in rows if r["name"] == name and r["health"] == "ok"), None)


def worker_pids(root: Path) -> dict[str, list[int]]:
    fleet = LocalFleet(load_config(root))
    return {r.name: sorted(w["pid"] for w in fleet.status(r)["workers"]) for r in fleet.regions()}


def kill_supervisor(root: Path) -> None:
    """Leave the fleet without its supervisor (a region killed then stays down)."""
    fleet_dir = LocalFleet(load_config(root)).dir
    state = supervisor.read_state(fleet_dir)
    assert state is not None, "no supervisor runs"
    os.kill(int(state["pid"]), signal.SIGKILL)
    until("the supervisor is gone", lambda: supervisor.read_state(fleet_dir) is None)


def kill_front(root: Path, name: str) -> RegionInfo:
    info = region(root, name)
    assert info is not None
    os.kill(info.pid, signal.SIGKILL)
    return info


def test_a_killed_region_comes_back_by_itself_on_its_pointer(project):
    dpl = vega_json("deploy", str(project))["deployment"]
    before = {r.name: r for r in LocalFleet(load_config(project)).regions()}
    others = {n: p for n, p in worker_pids(project).items() if n != "sfo"}

    killed = kill_front(project, "sfo")
    back = until(
        "sfo is back and serves its pointer's deployment",
        lambda: (
            (info := region(project, "sfo")) is not None
            and info.pid != killed.pid
            and serves(info, dpl)
            and info
        ),
    )
    assert back.url == killed.url  # on its old port: the same URL
    # Nobody else restarted: the other regions' fronts and warm workers are the same processes.
    after = {r.name: r for r in LocalFleet(load_config(project)).regions()}
    assert {n: after[n].pid for n in others} == {n: before[n].pid for n in others}
    assert {n: p for n, p in worker_pids(project).items() if n != "sfo"} == others

    # The supervisor records the restart as serving on its next readiness poll,
    # which may come after the region itself answers healthy.
    row = until(
        "status counts sfo healthy again, its restart recorded as serving",
        lambda: (
            (r := healthy_row(project, "sfo")) is not None
            and "serving_at" in (r.get("last_restart") or {})
            and r
        ),
    )
    assert row["restarts"] == 1 and row["deployment"] == dpl
    last = row["last_restart"]
    assert last["how"] == "killed by SIGKILL" and last["pid"] == killed.pid
    assert last["deployment"] == dpl and last["serving_at"] >= last["at"]
    text = vega("status", str(project)).stdout
    assert "sfo restarted 1× by the supervisor" in text and "killed by SIGKILL" in text

    # A deliberate `regions down` is not fought: nothing comes back.
    assert vega("regions", "down", str(project)).returncode == 0
    time.sleep(1.0)  # a few supervisor ticks' worth, were one left
    assert LocalFleet(load_config(project)).regions() == []


def test_regions_up_starts_only_what_is_missing(project):
    assert vega("regions", "up", str(project)).returncode == 0
    kill_supervisor(project)
    killed = kill_front(project, "iad")
    until("iad is down", lambda: region(project, "iad") is None)
    kept = {r.name: r.pid for r in LocalFleet(load_config(project)).regions()}
    assert set(kept) == {"fra", "sfo"}
    assert vega_json("status", str(project))["supervised"] is False
    assert "No supervisor runs for these regions" in vega("status", str(project)).stdout

    up = vega("regions", "up", str(project))
    assert up.returncode == 0, up.stderr
    assert "Started 1 missing region(s): iad (2 already running)" in up.stdout
    running = {r.name: r.pid for r in LocalFleet(load_config(project)).regions()}
    assert {n: running[n] for n in kept} == kept and running["iad"] != killed.pid
    assert supervisor.read_state(LocalFleet(load_config(project)).dir) is not None

    again = json.loads(vega("regions", "up", str(project), "--json").stdout)
    assert again["started_regions"] == [] and len(again["regions"]) == 3


def _down_after_deploy(project: Path) -> tuple[str, RegionInfo]:
    dpl = vega_json("deploy", str(project))["deployment"]
    kill_supervisor(project)
    killed = kill_front(project, "sfo")
    until("sfo is down", lambda: region(project, "sfo") is None)
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    return dpl, killed


def test_a_deploy_with_a_region_down_fails_before_any_pointer_moves(project):
    dpl, _ = _down_after_deploy(project)
    fleet = LocalFleet(load_config(project))
    store = PointerStore(fleet.db_path)
    before = store.pointers()
    store.close()

    proc = vega("deploy", str(project))
    assert proc.returncode == 1
    assert "region sfo: down (it serves " + dpl in proc.stderr
    assert "on_region_down" in proc.stderr and "nothing was changed" in proc.stderr
    assert "Traceback" not in proc.stderr
    store = PointerStore(fleet.db_path)
    assert store.pointers() == before
    store.close()


def test_a_deploy_skips_a_region_that_is_down_and_converges_it_when_it_is_back(tmp_path):
    project = write_project(tmp_path / "proj")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("regions = 3", 'regions = 3\non_region_down = "skip"')
    )
    try:
        old, _ = _down_after_deploy(project)
        out = json.loads(vega("deploy", str(project), "--json").stdout)
        new = out["deployment"]
        assert out["status"] == "live" and new != old
        assert [s["name"] for s in out["skipped"]] == ["sfo"]
        assert {r["name"]: r["outcome"] for r in out["regions"]} == {
            "fra": "promoted",
            "iad": "promoted",
        }
        fleet = LocalFleet(load_config(project))
        store = PointerStore(fleet.db_path)
        assert store.pointer("sfo").deployment == old  # it never served the new one unverified
        store.close()

        up = vega("regions", "up", str(project))
        assert "Started 1 missing region(s): sfo" in up.stdout
        # Back on its own pointer first, then converged by the supervisor.
        until("sfo is converged to the new deployment", lambda: serves(region(project, "sfo"), new))
        store = PointerStore(fleet.db_path)
        assert store.pointer("sfo").deployment == new
        assert store.history(new)[0].reason == "converge"
        store.close()
        assert supervisor.read_converge(fleet.dir) == {}
    finally:
        from tests.rollout.helpers import stop_fleet

        stop_fleet(project)


def test_a_crash_looping_region_backs_off_exponentially(tmp_path):
    sup = supervisor.Supervisor(tmp_path, tmp_path)
    front = supervisor.Front("fra", pid=-1)
    waits = []
    for _ in range(12):
        front.started_at = time.time()  # each one dies at once
        front.pid = -1  # (no process: nothing to kill)
        sup._died(front, supervisor.describe_exit(-signal.SIGSEGV))
        waits.append(round(front.next_start - time.monotonic()))
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30, 30]
    assert front.state == "backoff" and front.history[-1]["how"] == "killed by SIGSEGV"
    front.started_at = time.time() - 2 * supervisor.STABLE_SECONDS  # it ran a while: at once
    sup._died(front, supervisor.describe_exit(3))
    assert (
        front.next_start <= time.monotonic() and front.history[-1]["how"] == "exited with status 3"
    )
    assert len(front.history) == supervisor.HISTORY


def test_on_region_down_must_be_fail_or_skip(tmp_path):
    project = write_project(tmp_path / "proj")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("regions = 3", 'regions = 3\non_region_down = "wait"')
    )
    proc = vega("deploy", str(project))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert 'on_region_down must be "fail" or "skip", not \'wait\'' in proc.stderr
