"""``vega-dag toolchain bisect`` on a fixture whose answer is known.

The fixture index holds versions of a real (hand-built) compile-step wheel;
from ``drift_from`` on, its transform changes the compiled code. Each build
installs the version it needs into its own cached venv, as for any user.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vega_dag.pipeline import build
from vega_dag.toolchain.bisect import bisect_toolchain

VERSIONS = [f"1.{i}.0" for i in range(10)]


def project(tree, version: str = "1.0.0") -> Path:
    return tree(
        {
            "pyproject.toml": '[project]\nname = "x"\n[tool.vega]\ncompile_steps = [\n'
            f'  {{ package = "vega-fake-step", version = "{version}", '
            'call = "vega_fake_step:transform" }\n]\n',
            "lib/__init__.py": "",
            "lib/util.py": "def twice(x):\n    return 2 * x\n",
            "lib/other.py": "NAME = 'other'\n",
            "api/index.py": "from lib.util import twice\n\n\ndef handler(request):\n"
            "    return {'n': twice(2)}\n",
            "api/other.py": "from lib import other\n\n\ndef handler(request):\n"
            "    return {'name': other.NAME}\n",
        }
    )


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vega_dag", *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("drift_from", ["1.1.0", "1.6.0", "1.9.0", None])
def test_finds_the_first_drifting_version_within_log2_builds(
    tree, make_step_index, drift_from: str | None
) -> None:
    make_step_index(VERSIONS, drift_from)
    root = project(tree)
    result = bisect_toolchain(root, "vega-fake-step", VERSIONS)
    assert result.first_drifting == drift_from
    assert len(result.builds) <= math.ceil(math.log2(len(VERSIONS))) + 1 == result.max_builds
    assert result.builds[0].version == "1.0.0"
    for b in result.builds[1:]:
        assert b.differs == (
            drift_from is not None and VERSIONS.index(b.version) >= VERSIONS.index(drift_from)
        )
    if drift_from is None:
        assert result.drifting_modules == [] and result.last_same is None
        return
    assert result.last_same == VERSIONS[VERSIONS.index(drift_from) - 1]
    # Every module drifts (the step adds a constant to each), and every bundle.
    assert [m.path for m in result.drifting_modules] == [
        "api/index.py",
        "api/other.py",
        "lib/__init__.py",
        "lib/other.py",
        "lib/util.py",
    ]
    assert result.drifting_bundles == ["/api", "/api/other"]
    util = next(m for m in result.drifting_modules if m.path == "lib/util.py")
    assert "+VEGA_FAKE_STEP = True" in util.source_diff
    assert any("VEGA_FAKE_STEP" in line and line.startswith("+") for line in util.code_diff)


def test_reuses_the_cache_and_leaves_the_project_head_alone(tree, make_step_index) -> None:
    make_step_index(VERSIONS, "1.6.0")
    root = project(tree)
    before = build(root)
    first = bisect_toolchain(root, "vega-fake-step", VERSIONS)
    # The known-good version is the project's own: its build is all cache hits.
    assert first.builds[0].modules_compiled == 0
    again = bisect_toolchain(root, "vega-fake-step", VERSIONS)
    assert [b.version for b in again.builds] == [b.version for b in first.builds]
    assert all(b.modules_compiled == 0 for b in again.builds)
    assert again.first_drifting == "1.6.0"
    # The project's own build still stands: a no-op.
    after = build(root)
    assert after.noop and after.manifest == before.manifest


def test_cli_writes_json_and_markdown_reports(tree, make_step_index, tmp_path: Path) -> None:
    make_step_index(VERSIONS, "1.3.0")
    root = project(tree)
    prefix = tmp_path / "reports" / "minifier-upgrade"
    # No --versions: every version on the (fixture) index from --good on.
    proc = cli(
        "toolchain",
        "bisect",
        "vega-fake-step",
        str(root),
        "--good",
        "1.0.0",
        "--report",
        str(prefix),
        cwd=root,
    )
    assert proc.returncode == 1, proc.stderr
    assert "**1.3.0**" in proc.stdout
    data = json.loads(prefix.with_suffix(".json").read_text())
    assert data["first_drifting"] == "1.3.0"
    assert data["last_same"] == "1.2.0"
    assert data["versions"] == VERSIONS
    markdown = prefix.with_suffix(".md").read_text()
    assert "# Toolchain bisection: vega-fake-step on proj" in markdown
    assert "| 1.3.0 | yes | differ |" in markdown
    assert "### `lib/util.py`" in markdown
    assert "+VEGA_FAKE_STEP = True" in markdown
    # --versions and --bad narrow the range; a range without drift exits 0.
    proc = cli(
        "toolchain",
        "bisect",
        "vega-fake-step",
        str(root),
        "--good",
        "1.0.0",
        "--versions",
        "1.0.0,1.1.0,1.2.0",
        "--json",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["first_drifting"] is None


def test_bad_input_gives_clear_errors(tree, make_step_index) -> None:
    make_step_index(VERSIONS, "1.3.0")
    root = project(tree)
    proc = cli("toolchain", "bisect", "vega-fake-step", str(root), "--good", "0.1.0", cwd=root)
    assert proc.returncode == 2
    assert "known-good version 0.1.0 is not among" in proc.stderr
    proc = cli(
        "toolchain",
        "bisect",
        "vega-fake-step",
        str(root),
        "--good",
        "1.0.0",
        "--versions",
        "1.0.0,7.7.7",
        cwd=root,
    )
    assert proc.returncode == 2
    assert "7.7.7" in proc.stderr
    proc = cli(
        "toolchain",
        "bisect",
        "not-a-step",
        str(root),
        "--good",
        "1.0.0",
        "--versions",
        "1.0.0,1.1.0",
        cwd=root,
    )
    assert proc.returncode == 2
    assert "not-a-step" in proc.stderr
