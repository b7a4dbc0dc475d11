"""Region agents (`vega-dag region serve`) on a real S3 (SeaweedFS) and a real nats-server:
each agent in its own directory with its own store, none reading the project's `.vega/`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agents.helpers import Agents, Backends, agent_project, deploy
from tests.rollout.helpers import vega, vega_json

NAMES = ["fra", "iad", "sfo"]


def test_deploy_rollback_status_history_on_three_agents(
    tmp_path: Path, backends: Backends, agents: Agents
) -> None:
    project = agent_project(tmp_path / "proj", backends)
    agents.start_many(NAMES)
    first = deploy(project)
    assert first.returncode == 0, first.stderr + first.stdout
    one = json.loads(first.stdout)["deployment"]
    assert agents.served() == {n: one for n in NAMES}

    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    second = deploy(project)
    assert second.returncode == 0, second.stderr + second.stdout
    two = json.loads(second.stdout)["deployment"]
    assert agents.served() == {n: two for n in NAMES}

    rolled = vega("rollback", "--path", str(project), "--json")
    assert rolled.returncode == 0, rolled.stderr + rolled.stdout
    assert agents.served() == {n: one for n in NAMES}

    rows = vega_json("status", str(project))["regions"]
    assert {(r["name"], r["deployment"], r["serving"], r["health"]) for r in rows} == {
        (n, one, one, "ok") for n in NAMES
    }
    assert {r["url"] for r in rows} == {agents.running[n].url for n in NAMES}
    history = vega_json("history", str(project))
    assert [(d["deployment"], d["status"]) for d in history] == [
        (two, "rolled-back"),
        (one, "live"),
    ]
    plan = vega_json("plan", str(project))
    assert plan["pointers"] == {n: one for n in NAMES}

    # Each agent fetched what it serves into its own store; the deployer started no region.
    for name in NAMES:
        assert (agents.running[name].dir / "store" / "packs").is_dir()
    assert not (project / ".vega" / "fleet" / "regions").exists()
    assert not (project / ".vega" / "fleet" / "pointers.sqlite").exists()
