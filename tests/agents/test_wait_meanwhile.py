"""The deployer's wait on agents with the pointer write inside it (``meanwhile``): the status
keys are watched before the write, a refused write is raised with nothing moved, and the
answers and the status keys tell the truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.agents.helpers import Agents, Backends, agent_project, deploy
from vega_dag.config import load_config
from vega_dag.regions.agents import AgentFleet
from vega_dag.rollout.jetstream import JetStreamPointers
from vega_dag.rollout.pointers import Move, PointerConflictError

NAMES = ["fra", "iad"]


def _deployed(project: Path) -> str:
    proc = deploy(project)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)["deployment"]


def test_the_write_runs_inside_the_wait_and_a_refused_one_is_raised(
    tmp_path: Path, backends: Backends, agents: Agents
) -> None:
    project = agent_project(tmp_path / "proj", backends)
    agents.start_many(NAMES)
    one = _deployed(project)
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    two = _deployed(project)

    fleet = AgentFleet(load_config(project))
    pointers = JetStreamPointers(backends.pointers)
    try:
        regions = fleet.regions()
        assert [r.name for r in regions] == NAMES
        now = pointers.pointers()
        pairs = [(r, one) for r in regions]

        # A write that raced another (a stale generation): refused, raised, nothing moved.
        stale = [Move(r.name, now[r.name].generation - 1, two, one) for r in regions]
        with pytest.raises(PointerConflictError):
            fleet.wait_serving_many(
                pairs, 10.0, meanwhile=lambda: pointers.swap(stale, two, "rollback", "test")
            )
        assert agents.served() == {n: two for n in NAMES}
        assert {n: p.deployment for n, p in pointers.pointers().items()} == {n: two for n in NAMES}

        moves = [Move(r.name, now[r.name].generation, two, one) for r in regions]
        answers = fleet.wait_serving_many(
            pairs, 30.0, meanwhile=lambda: pointers.swap(moves, two, "rollback", "test")
        )
        assert set(answers) == set(NAMES)
        assert all(isinstance(v, float) and v >= 0 for v in answers.values()), answers
        assert agents.served() == {n: one for n in NAMES}
        after = pointers.pointers()
        statuses = fleet._all()
        for name in NAMES:
            assert statuses[name]["deployment"] == one
            assert statuses[name]["generation"] == after[name].generation
    finally:
        fleet.close()
        pointers.close()
