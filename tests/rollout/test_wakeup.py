"""A pointer write wakes its regions; the poll stays the fallback; rollback during a deploy.

No timing is asserted: the region's poll is set to an hour where only the
wake-up may switch it, and the checks read ``/__vega/status`` (which, unlike
``/__vega/wait``, does not make the region re-read its pointer).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.rollout.helpers import cli_env, served, vega, vega_json
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet
from vega_dag.regions.wakeup import moved_path, open_wakeup, signal_moved
from vega_dag.rollout.pointers import Move, PointerStore


def _two_deployments(project: Path) -> tuple[str, str]:
    first = vega_json("deploy", str(project))["deployment"]
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    second = vega_json("deploy", str(project))["deployment"]
    return first, second


def _reported(fleet: LocalFleet) -> dict[str, str | None]:
    """Region → the deployment its status reports (no re-read of the pointer is asked for)."""
    out = {}
    for name, status in fleet.statuses(fleet.regions()).items():
        assert isinstance(status, dict), status
        out[name] = status["deployment"]
    return out


def _until(fleet: LocalFleet, want: str, why: str) -> None:
    deadline = time.monotonic() + 30.0  # a bound on a hang, not a measurement
    while set(_reported(fleet).values()) != {want}:
        assert time.monotonic() < deadline, f"{why}: {_reported(fleet)}"
        time.sleep(0.01)


def test_the_moved_file_wakes_a_watcher_and_nothing_else_does(tmp_path: Path) -> None:
    db = tmp_path / "pointers.sqlite"
    store = PointerStore(db)
    wakeup = open_wakeup(db)
    assert wakeup is not None
    try:
        assert not wakeup.drain()
        store.create_deployment("blake3:x", "p", {}, {}, "me")  # not a pointer write
        (tmp_path / "other").write_text("x")
        assert not wakeup.drain()
        store.swap([Move("fra", 0, None, "dpl_a")], "dpl_a", "promote", "me")
        assert moved_path(db).exists() and wakeup.drain()
        assert not wakeup.drain()
        signal_moved(db)  # an existing file: its times change
        assert wakeup.drain()
    finally:
        wakeup.close()
        store.close()


@pytest.fixture
def slow_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    # The regions inherit the environment: only a wake-up can switch them.
    monkeypatch.setenv("VEGA_DAG_POINTER_POLL_S", "3600")


def test_a_pointer_write_reaches_the_regions_without_their_poll(project, slow_poll) -> None:
    first, second = _two_deployments(project)
    fleet = LocalFleet(load_config(project))
    assert set(_reported(fleet).values()) == {second}
    store = PointerStore(fleet.db_path)
    try:
        ptrs = store.pointers()
        moves = [Move(n, p.generation, second, first) for n, p in sorted(ptrs.items())]
        store.swap(moves, second, "rollback", "test")
    finally:
        store.close()
    _until(fleet, first, "the regions did not switch on the wake-up")
    assert set(served(project).values()) == {first}


def test_a_missed_wakeup_is_caught_by_the_poll(project, monkeypatch) -> None:
    monkeypatch.setenv("VEGA_DAG_POINTER_POLL_S", "0.05")
    first, second = _two_deployments(project)
    fleet = LocalFleet(load_config(project))
    # A writer that never touches the moved file (another tool, or a writer
    # killed between its commit and the touch): no wake-up comes.
    db = sqlite3.connect(str(fleet.db_path), isolation_level=None)
    try:
        before = moved_path(fleet.db_path).stat().st_mtime_ns
        db.execute(
            "UPDATE pointers SET deployment=?, generation=generation+1 WHERE deployment=?",
            (first, second),
        )
        assert moved_path(fleet.db_path).stat().st_mtime_ns == before
    finally:
        db.close()
    _until(fleet, first, "the poll did not catch a pointer write without a wake-up")
    assert set(served(project).values()) == {first}


SLOW_ROUTE = "import time\n\ndef handler(request):\n    time.sleep(0.3)\n    return {}\n"


def test_rollback_during_a_deploy_waits_for_it_then_undoes_it(project, slow_poll) -> None:
    first = vega_json("deploy", str(project))["deployment"]
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    (project / "api" / "slow.py").write_text(SLOW_ROUTE)  # gates of a few seconds
    deploy = subprocess.Popen(
        [sys.executable, "-c", "from vega_dag.cli import main; main()", "deploy", str(project)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    fleet = LocalFleet(load_config(project))
    try:
        deadline = time.monotonic() + 60.0
        while True:  # until the canary's pointer has moved
            store = PointerStore(fleet.db_path)
            try:
                promoted = [h for h in store.history() if h.reason == "promote"]
                latest = store.deployments(1)[0].id
            finally:
                store.close()
            if latest != first and any(h.deployment == latest for h in promoted):
                break
            assert deploy.poll() is None and time.monotonic() < deadline, deploy.stderr
            time.sleep(0.01)
        rollback = vega("rollback", "--path", str(project), "--lock-timeout", "60")
        _, err = deploy.communicate(timeout=60)
    finally:
        if deploy.poll() is None:
            deploy.kill()
    assert deploy.returncode == 0, err
    assert rollback.returncode == 0, rollback.stderr
    second = vega_json("history", str(project))[0]
    assert second["deployment"] == latest and second["status"] == "rolled-back"
    # Every promotion of the deploy happened before the rollback's first write
    # (events in the order they were written).
    reasons = [e["reason"] for e in second["events"]]
    assert reasons == ["promote"] * 3 + ["rollback"] * 3
    assert set(served(project).values()) == {first}
    assert set(_reported(fleet).values()) == {first}


def test_waits_asked_before_the_write_are_answered_once_it_lands(project, slow_poll) -> None:
    """What a rollback does: every region holds its wait, then the pointers move."""
    first, second = _two_deployments(project)
    fleet = LocalFleet(load_config(project))
    regions = fleet.regions()
    store = PointerStore(fleet.db_path)
    seen: list[dict[str, str | None]] = []
    try:
        ptrs = store.pointers()
        moves = [Move(r.name, ptrs[r.name].generation, second, first) for r in regions]

        def write() -> None:
            seen.append(_reported(fleet))  # the waits are out: nobody has answered or moved
            store.swap(moves, second, "rollback", "test")

        answers = fleet.wait_serving_many([(r, first) for r in regions], 30.0, meanwhile=write)

        def failing() -> None:
            raise RuntimeError("the write failed")

        # A write that fails is raised; the waits for it are dropped, nothing moves.
        with pytest.raises(RuntimeError, match="the write failed"):
            fleet.wait_serving_many([(r, second) for r in regions], 30.0, meanwhile=failing)
    finally:
        store.close()
    assert set(seen[0].values()) == {second}
    assert all(isinstance(a, float) for a in answers.values()), answers
    assert set(_reported(fleet).values()) == {first}
    assert set(served(project).values()) == {first}
