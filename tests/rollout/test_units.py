"""The pointer store, the scheduler and wave planning, without processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vega_dag.config import RolloutConfig
from vega_dag.rollout.deploy import plan_waves
from vega_dag.rollout.pointers import LockHeldError, Move, PointerConflictError, PointerStore
from vega_dag.rollout.scheduler import Node, NodeFailed, Schedule


def test_compare_and_swap_and_append_only_history(tmp_path):
    store = PointerStore(tmp_path / "p.sqlite")
    a = store.create_deployment("blake3:a", "/p", {}, {"K": "v"}, "me")
    b = store.create_deployment("blake3:b", "/p", {}, {}, "me")
    store.swap([Move("fra", 0, None, a.id), Move("iad", 0, None, a.id)], a.id, "promote", "me")
    assert store.pointer("fra").generation == 1
    store.swap([Move("fra", 1, a.id, b.id)], b.id, "promote", "me")
    with pytest.raises(PointerConflictError, match="region iad"):
        # iad is at generation 1: a stale write moves nothing, fra included.
        store.swap([Move("fra", 2, b.id, a.id), Move("iad", 7, a.id, b.id)], b.id, "x", "me")
    assert store.pointer("fra").deployment == b.id
    assert store.touched_by(b.id) == {"fra": a.id}
    assert store.require(a.id).env == {"K": "v"}
    with pytest.raises(Exception, match="append-only"):
        store.db.execute("DELETE FROM history")
    with pytest.raises(LookupError, match="unknown deployment 'dpl_x'"):
        store.require("dpl_x")


def test_deploy_lock_names_its_holder_and_is_taken_from_the_dead(tmp_path):
    path = tmp_path / "p.sqlite"
    first, second = PointerStore(path), PointerStore(path)
    with (
        first.deploy_lock("deploy by alice"),
        pytest.raises(LockHeldError, match="deploy by alice"),
        second.deploy_lock("deploy by bob", timeout=0.1),
    ):
        pass
    # A holder killed with -9 leaves its row; the next deploy takes it over.
    code = (
        "import os, signal, sys; from pathlib import Path;"
        "from vega_dag.rollout.pointers import PointerStore;"
        f"s = PointerStore(Path({str(path)!r}));"
        "cm = s.deploy_lock('deploy by dead'); cm.__enter__();"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == -9
    with second.deploy_lock("deploy by bob", timeout=0.1) as took_over:
        assert took_over


def test_schedule_runs_in_dependency_order_and_stops_on_failure():
    ran = []

    def step(key, fail=False):
        def run(inputs):
            ran.append(key)
            if fail:
                raise NodeFailed(key, "no")
            return key

        return run

    s = Schedule()
    s.add(Node("a", step("a")))
    s.add(Node("b", step("b"), ("a",)))
    s.add(Node("c", step("c", fail=True), ("b",)))
    s.add(Node("d", step("d"), ("c",)))
    assert s.order() == [["a"], ["b"], ["c"], ["d"]]
    with pytest.raises(NodeFailed, match="c: no"):
        s.run()
    assert ran == ["a", "b", "c"]


def test_waves_canary_first_then_configured_then_rest():
    names = ["fra", "iad", "sfo", "lhr", "nrt", "sin"]
    cfg = RolloutConfig(canary="fra", waves=[["fra"], ["iad", "sfo", "xyz"], ["*"]])
    assert plan_waves(names, cfg) == [["fra"], ["iad", "sfo"], ["lhr", "nrt", "sin"]]
    assert plan_waves(names[:2], cfg) == [["fra"], ["iad"]]
    with pytest.raises(Exception, match="canary region 'ams'"):
        plan_waves(names, RolloutConfig(canary="ams"))
