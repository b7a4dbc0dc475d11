"""A deploy killed (-9) at any step leaves every region serving one complete deployment."""

from __future__ import annotations

import json

from tests.rollout.helpers import get, served, vega, vega_json
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet

# With 3 regions and waves [fra], [*]: prefetch ×3 → promote:0 → gate:0 → promote:1 → gate:1
KILL_POINTS = [
    "prefetch:iad",
    "promote:0",
    "promote:0:after",
    "gate:0",
    "promote:1:after",
    "gate:1:after",
]


def test_kill_at_every_step_then_recover(project):
    v1 = vega_json("deploy", str(project))["deployment"]
    fleet = LocalFleet(load_config(project))
    live = v1
    for i, key in enumerate(KILL_POINTS):
        (project / "lib" / "version.py").write_text(f'VERSION = "v{i + 2}"\n')
        proc = vega("deploy", str(project), env={"VEGA_DAG_TEST_KILL_AT": key})
        assert proc.returncode == -9, (key, proc.stderr)

        # Every region answers, from a deployment it loaded completely.
        status = vega_json("status", str(project))
        assert len(status["interrupted"]) == 1, (key, status)
        interrupted = status["interrupted"][0]
        for region in fleet.regions():
            code, headers, body = get(region.url, "/api")
            assert code == 200, key
            assert headers["x-vega-deployment"] in {live, interrupted}
            expected = "v1" if headers["x-vega-deployment"] == v1 else None
            if expected:
                assert json.loads(body)["version"] == expected

        if i % 2 == 0:
            proc = vega("rollback", interrupted, "--path", str(project))
            assert proc.returncode == 0, proc.stderr
            assert set(served(project).values()) == {live}, key
        else:
            out = vega_json("deploy", str(project))
            assert out["status"] == "live"
            live = out["deployment"]
            assert set(served(project).values()) == {live}, key
        assert vega_json("status", str(project))["interrupted"] == []
