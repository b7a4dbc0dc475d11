"""The pre-commit hook, run by the real pre-commit tool (``pre-commit try-repo``).

try-repo takes the hook definitions from this repository's working tree, as
a user's ``.pre-commit-config.yaml`` would from a release.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.drift.conftest import drift_project, git

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("pre_commit", reason="pre-commit is in the test extra")


def try_repo(project: Path, site: Path, hook: str = "vega-dag-drift-system"):
    env = dict(os.environ)
    # The `python` hook pip-installs vega-dag from a clone of this repository,
    # which compiles the Rust extension: sharing the tree's cargo target
    # directory reuses its compiled dependencies (~40 s instead of minutes).
    env.setdefault("CARGO_TARGET_DIR", str(REPO / "target"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    if hook.endswith("-system"):
        # The system hook runs the vega-dag of the interpreter running the tests.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    else:
        # No vega-dag on PATH: the hook can only run the one pre-commit installs.
        env["PATH"] = os.pathsep.join(
            d for d in env["PATH"].split(os.pathsep) if d and not Path(d, "vega-dag").exists()
        )
    env["PRE_COMMIT_HOME"] = str(project.parent / "pre-commit-home")
    # try-repo commits the hook repository's uncommitted state to a shadow
    # repository: a machine without a git identity must still manage that.
    for who in ("AUTHOR", "COMMITTER"):
        env.setdefault(f"GIT_{who}_NAME", "vega-dag tests")
        env.setdefault(f"GIT_{who}_EMAIL", "tests@vega-dag.invalid")
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), hook, "--verbose"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def committed_project(root: Path, step: str) -> Path:
    drift_project(root, step)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def test_hooks_file_declares_both_hooks() -> None:
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert "- id: vega-dag-drift\n" in text
    assert "- id: vega-dag-drift-system\n" in text
    assert text.count("entry: vega-dag drift") == 2


def test_a_clean_change_passes(tmp_path: Path, nondet_plugin: Path) -> None:
    root = committed_project(tmp_path / "proj", "clean")
    (root / "lib/clock.py").write_text((root / "lib/clock.py").read_text() + "\nZ = 3\n")
    git(root, "add", "-A")
    proc = try_repo(root, nondet_plugin)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed" in proc.stdout
    assert "No drift in 3 modules and 1 bundles" in proc.stdout


def test_a_nondeterministic_compile_step_fails_naming_the_module(
    tmp_path: Path, nondet_plugin: Path
) -> None:
    root = committed_project(tmp_path / "proj", "clean")
    # The injected step: a timestamp in lib/clock.py's compiled output.
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"clean"', '"timestamp"'))
    (root / "lib/clock.py").write_text((root / "lib/clock.py").read_text() + "\nZ = 3\n")
    git(root, "add", "-A")
    proc = try_repo(root, nondet_plugin)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Failed" in proc.stdout
    assert "✗ lib/clock.py: compiled output drifts" in proc.stdout
    assert "modules: lib/clock.py" in proc.stdout


def test_a_commit_without_python_changes_skips_the_hook(
    tmp_path: Path, nondet_plugin: Path
) -> None:
    root = committed_project(tmp_path / "proj", "timestamp")
    (root / "README.md").write_text("docs only\n")
    git(root, "add", "-A")
    proc = try_repo(root, nondet_plugin)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(no files to check)Skipped" in proc.stdout


def test_the_python_hook_installs_vega_dag_as_users_get_it(
    tmp_path: Path, nondet_plugin: Path
) -> None:
    """`language: python`: pre-commit builds vega-dag from the repository into its own venv."""
    root = committed_project(tmp_path / "proj", "clean")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"clean"', '"set-order"'))
    (root / "lib/clock.py").write_text((root / "lib/clock.py").read_text() + "\nZ = 3\n")
    git(root, "add", "-A")
    proc = try_repo(root, nondet_plugin, hook="vega-dag-drift")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "vega-dag build drift" in proc.stdout
    assert "✗ lib/clock.py: compiled output drifts" in proc.stdout
