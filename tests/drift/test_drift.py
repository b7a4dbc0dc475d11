"""``vega-dag drift``: clean builds pass; every injected nondeterminism is found and named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.drift.conftest import drift_project, git, vega


def drift_json(
    root: Path, site: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict]:
    proc = vega("drift", "--json", *args, str(root), cwd=root, site=site, env=env)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize("step", [None, "clean"])
def test_clean_project_passes(tmp_path: Path, nondet_plugin: Path, step: str | None) -> None:
    root = drift_project(tmp_path / "proj", step)
    # Built first, so every output is also compared with the store's record.
    assert vega("build", "-q", str(root), cwd=root, site=nondet_plugin).returncode == 0
    code, report = drift_json(root, nondet_plugin, "--all")
    assert code == 0, report
    assert report["ok"] is True
    assert report["drifts"] == []
    assert report["scope"] == "all"
    assert report["modules_checked"] == 5
    assert report["bundles_checked"] == 2
    assert report["compared_with_store"] == 7
    assert "TZ=Pacific/Chatham" in report["conditions"]["b"]


@pytest.mark.parametrize("step", ["timestamp", "random", "set-order"])
def test_injected_nondeterminism_fails_and_names_the_module(
    tmp_path: Path, nondet_plugin: Path, step: str
) -> None:
    root = drift_project(tmp_path / "proj", step)
    code, report = drift_json(root, nondet_plugin, "--all")
    assert code == 1, report
    assert report["ok"] is False
    by_name = {d["name"]: d for d in report["drifts"]}
    # Exactly the marked module, and the one bundle that holds it.
    assert set(by_name) == {"lib/clock.py", "/api/time"}
    module = by_name["lib/clock.py"]
    assert module["kind"] == "module"
    assert module["outputs"]["a"] != module["outputs"]["b"]
    variable = {"timestamp": "BUILT_AT", "random": "SALT", "set-order": "ORDER"}[step]
    # The code dump diff shows the constant that differs, in both builds.
    text = "\n".join(module["difference"])
    assert text.startswith("--- a\n+++ b")
    assert f"'{variable}'" in next(line for line in module["difference"] if "  names" in line)
    removed = [line for line in module["difference"] if line.startswith("-  consts")]
    added = [line for line in module["difference"] if line.startswith("+  consts")]
    assert len(removed) == len(added) == 1
    assert removed[0][1:] != added[0][1:]
    bundle = by_name["/api/time"]
    assert bundle["kind"] == "bundle"
    assert bundle["file"] == "api/time.py"
    assert bundle["modules"] == ["lib/clock.py"]
    assert any("entry lib/clock.pyc (from lib/clock.py)" in line for line in bundle["difference"])

    human = vega("drift", "--all", str(root), cwd=root, site=nondet_plugin)
    assert human.returncode == 1
    assert "✗ lib/clock.py: compiled output drifts" in human.stdout
    assert "modules: lib/clock.py" in human.stdout


def test_drift_against_the_store(tmp_path: Path, nondet_plugin: Path) -> None:
    """An input the two builds share but the user's build did not (an env var) is caught."""
    root = drift_project(tmp_path / "proj", "env-leak")
    built = vega(
        "build", "-q", str(root), cwd=root, site=nondet_plugin, env={"NONDET_FLAVOUR": "x"}
    )
    assert built.returncode == 0, built.stderr
    code, report = drift_json(root, nondet_plugin, "--all", env={"NONDET_FLAVOUR": "y"})
    assert code == 1
    module = next(d for d in report["drifts"] if d["name"] == "lib/clock.py")
    assert module["outputs"]["a"] == module["outputs"]["b"] != module["outputs"]["store"]
    assert module["difference"][:2] == ["--- a", "+++ store"]
    assert any("'y'" in line for line in module["difference"])
    assert any("'x'" in line for line in module["difference"])
    # Same environment as the build: no drift.
    code, report = drift_json(root, nondet_plugin, "--all", env={"NONDET_FLAVOUR": "x"})
    assert code == 0, report


def test_only_the_working_tree_change_is_rebuilt(tmp_path: Path, nondet_plugin: Path) -> None:
    root = drift_project(tmp_path / "proj", "timestamp")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    # Nothing changed since HEAD: nothing to check, even with a leaky step.
    code, report = drift_json(root, nondet_plugin)
    assert code == 0
    assert (report["scope"], report["touched"], report["modules_checked"]) == ("change", [], 0)
    # A change to lib/util.py touches /api/hello only: the leaky module is not rebuilt.
    (root / "lib/util.py").write_text("def greet(name):\n    return f'hi {name}'\n")
    code, report = drift_json(root, nondet_plugin)
    assert code == 0, report
    assert report["touched"] == ["lib/util.py"]
    assert (report["modules_checked"], report["bundles_checked"]) == (3, 1)
    # Staged or untracked, a change to the leaky module is found.
    (root / "lib/clock.py").write_text((root / "lib/clock.py").read_text() + "\nX = 1\n")
    (root / "lib/extra.py").write_text("Y = 2\n")
    code, report = drift_json(root, nondet_plugin)
    assert code == 1
    assert report["touched"] == ["lib/clock.py", "lib/extra.py", "lib/util.py"]
    assert {d["name"] for d in report["drifts"]} == {"lib/clock.py", "/api/time"}


def test_without_git_the_change_is_since_the_last_build(
    tmp_path: Path, nondet_plugin: Path
) -> None:
    root = drift_project(tmp_path / "proj", None)
    assert vega("build", "-q", str(root), cwd=root).returncode == 0
    (root / "api/hello.py").write_text((root / "api/hello.py").read_text() + "\n# edited\n")
    code, report = drift_json(root, nondet_plugin)
    assert code == 0, report
    assert report["touched"] == ["api/hello.py"]
    assert report["bundles_checked"] == 1


def test_a_pinned_toolchain_that_is_not_active_fails(tmp_path: Path, nondet_plugin: Path) -> None:
    root = drift_project(
        tmp_path / "proj",
        "clean",
        '[tool.vega.toolchain]\npython = "3.10"\nsteps = {clean = "2"}\n',
    )
    proc = vega("drift", "--all", str(root), cwd=root, site=nondet_plugin)
    assert proc.returncode == 2
    assert "the active toolchain differs from the pinned one" in proc.stderr
    assert "python: pinned 3.10, active 3." in proc.stderr
    assert "compile step clean: pinned 2, active 1" in proc.stderr
    assert "pyproject.toml [tool.vega.toolchain]" in proc.stderr
    # The build refuses it too.
    built = vega("build", str(root), cwd=root, site=nondet_plugin)
    assert built.returncode == 1
    assert "python: pinned 3.10" in built.stderr


def test_a_project_that_does_not_build_is_an_error_not_drift(tmp_path: Path) -> None:
    root = drift_project(tmp_path / "proj", None)
    (root / "lib/util.py").write_text("def greet(name:\n")
    proc = vega("drift", "--all", str(root), cwd=root)
    assert proc.returncode == 2
    assert "lib/util.py:1" in proc.stderr


@pytest.mark.skipif(
    shutil.which("diffoscope") is None, reason="diffoscope is not installed (make test-deps)"
)
def test_diffoscope_output_is_added_when_installed(tmp_path: Path, nondet_plugin: Path) -> None:
    root = drift_project(tmp_path / "proj", "random")
    code, report = drift_json(root, nondet_plugin, "--all")
    assert code == 1
    bundle = next(d for d in report["drifts"] if d["kind"] == "bundle")
    text = "\n".join(bundle["diffoscope"])
    assert "lib/clock.pyc" in text
    human = vega("drift", "--all", str(root), cwd=root, site=nondet_plugin)
    assert "    diffoscope:" in human.stdout
