"""``vega-dag status --probe``: health by route, in every region."""

from __future__ import annotations

import json
from pathlib import Path

from tests.rollout.helpers import vega, vega_json

FLAKY = (
    "import os\n\n\ndef handler(request):\n"
    "    if os.path.exists(os.environ['FLAKY_FLAG']):\n"
    "        return {'error': 'down'}, 500\n"
    "    return {'ok': True}\n"
)


def test_status_probe_reports_each_regions_routes(project: Path, tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    (project / "api/flaky.py").write_text(FLAKY)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'env = { GREETING = "hi" }', f'env = {{ GREETING = "hi", FLAKY_FLAG = "{flag}" }}'
        )
    )
    deployed = vega_json("deploy", str(project))
    assert deployed["status"] == "live"

    plain = vega_json("status", str(project))
    assert all("probe" not in row for row in plain["regions"])
    healthy = vega_json("status", str(project), "--probe")
    for row in healthy["regions"]:
        assert row["health"] == "ok"
        assert row["probe"]["problems"] == []
        assert row["probe"]["summary"].startswith("ok: 5 routes answer, p99 ")

    flag.write_text("")  # the route starts failing, in every region
    failing = vega_json("status", str(project), "--probe")
    for row in failing["regions"]:
        assert row["health"] == "routes failing"
        assert row["probe"]["problems"] == ["route /api/flaky /api/flaky: status 500"]
        assert row["probe"]["summary"].startswith("failing: 1 of 5 routes")
    table = vega("status", str(project), "--probe")
    assert table.returncode == 0
    assert "failing: 1 of 5 routes" in table.stdout
    assert json.loads(vega("status", str(project), "--json").stdout)["regions"][0]["health"] == "ok"
