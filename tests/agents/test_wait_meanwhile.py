"""The deployer's wait on agents with the pointer write inside it (``meanwhile``): the status
keys are watched before the write, a refused write is raised with nothing moved, and the
answers and the status keys tell the truth; and what a rollback on agents imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents.helpers import Agents, Backends, agent_project, deploy
from tests.rollout.helpers import cli_env
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

    # A rollback on agents talks NATS only: neither a region's serving stack nor the
    # object store (nor the S3 client) is imported on its way.
    (project / "lib" / "version.py").write_text('VERSION = "v3"\n')
    three = _deployed(project)
    assert agents.served() == {n: three for n in NAMES}
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS, str(project)],
        capture_output=True,
        text=True,
        env={**cli_env(), **backends.env},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out == {"code": 0, "loaded": []}, out
    assert agents.served() == {n: one for n in NAMES}


IMPORTS = """
import json, sys
before = set(sys.modules)
sys.argv = ["vega-dag", "rollback", "-q", "--path", sys.argv[1]]
from vega_dag.entry import main
try:
    main()
    code = 0
except SystemExit as exit:
    code = exit.code
heavy = ("vega_dag.regions.server", "vega_dag.regions.agent", "uvicorn", "vega_dag.store",
         "obstore")
loaded = [m for m in heavy if m in sys.modules and m not in before]
print(json.dumps({"code": code, "loaded": loaded}))
"""
