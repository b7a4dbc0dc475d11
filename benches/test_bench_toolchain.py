"""Toolchain-upgrade benchmarks: the suite a team runs before accepting an upgrade.

Groups (see docs/performance.md):
- upgrade-example / upgrade-real: a cold `vega-dag build` of examples/shop-api,
  and of a real code base from PyPI, under the old and the new version of a compile step
  (python-minifier), side by side; the real code base is Django 5.1.4 (879
  modules; pip's own wheel was the first candidate, but its vendored six.moves
  imports modules that do not exist as files). Each step version's venv is installed
  before timing (a one-off cost per machine).
- upgrade-drift-example / upgrade-drift-real: `vega-dag toolchain bisect` over
  the two versions (cache hits by then), which writes the report of the
  outputs that drift: .benchmarks/upgrade-<name>.json and .md. The drifting
  sets are also in each benchmark's extra_info, printed by benches/report.py.
- drift-hook: `vega-dag drift` on the example with 20 changed modules (what the
  pre-commit hook runs; goal ≤ 0.35 s), beside an incremental `vega-dag build` of
  the same change, each one-shot (VEGA_DAG_DAEMON=0) and with the project's
  daemon running (as a user's second and later commands run). With
  VEGA_BENCH_REFERENCE=DIR (a checkout's ``python/`` directory with its own
  built ``_core``, e.g. main before a change) the same rows also run with that
  tree, on a project of its own: ``[reference-…]`` beside ``[this-…]``.

With VEGA_BENCH_SMOKE=1 the real code base is click, and each runs once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benches.conftest import SMOKE
from benches.realcode import unpacked_wheel
from benches.test_bench_build import reference_command

BIN = Path(sys.executable).parent
VEGA = str(BIN / "vega-dag")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shop-api"
REPORTS = Path(__file__).resolve().parent.parent / ".benchmarks"
#: The upgrade under review: python-minifier OLD → NEW.
STEP = "python-minifier"
OLD, NEW = "2.9.0", "2.11.3"
UPGRADE_CODEBASE = ("click", "8.1.7") if SMOKE else ("Django", "5.1.4")
ROUNDS = 1 if SMOKE else 3


def run(*cmd: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode in ok, proc.stderr + proc.stdout
    return proc


def with_step(root: Path, version: str) -> None:
    """Point the project's compile_steps at ``STEP==version``."""
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text() if pyproject.exists() else '[project]\nname = "bench"\n'
    lines = [ln for ln in text.splitlines() if not ln.startswith("compile_steps")]
    if "[tool.vega]" not in lines:
        lines.append("[tool.vega]")
    at = lines.index("[tool.vega]") + 1
    lines.insert(at, f'compile_steps = ["{STEP}=={version}"]')
    pyproject.write_text("\n".join(lines) + "\n")


def copy_project(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".vega", "__pycache__"))
    return dest


@pytest.fixture(scope="module")
def upgrade_projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("upgrade")
    example = copy_project(EXAMPLE, base / "shop-api")
    code = unpacked_wheel(*UPGRADE_CODEBASE)
    real = base / UPGRADE_CODEBASE[0]
    real.mkdir()
    for path in sorted(code.rglob("*.py")):
        target = real / path.relative_to(code)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    projects = {"example": example, "real": real}
    # Install both step versions' venvs once, outside any timing.
    for root in projects.values():
        for version in (OLD, NEW):
            with_step(root, version)
            run(VEGA, "build", "-q", str(root))
    return projects


def cold_build(root: Path, version: str):
    def setup():
        with_step(root, version)
        shutil.rmtree(root / ".vega", ignore_errors=True)
        return (VEGA, "build", "-q", str(root)), {}

    return setup


@pytest.mark.parametrize("name", ["example", "real"])
@pytest.mark.parametrize("version", [OLD, NEW])
def test_build_with_step_version(benchmark, upgrade_projects, name: str, version: str) -> None:
    benchmark.group = f"upgrade-{name}"
    benchmark.extra_info["step"] = f"{STEP}=={version}"
    benchmark.pedantic(run, setup=cold_build(upgrade_projects[name], version), rounds=ROUNDS)


@pytest.mark.parametrize("name", ["example", "real"])
def test_upgrade_drift_report(benchmark, upgrade_projects, name: str) -> None:
    root = upgrade_projects[name]
    with_step(root, OLD)
    prefix = REPORTS / f"upgrade-{name}"
    cmd = (
        VEGA,
        "toolchain",
        "bisect",
        STEP,
        str(root),
        "--good",
        OLD,
        "--versions",
        f"{OLD},{NEW}",
        "--report",
        str(prefix),
        "--json",
    )
    benchmark.group = f"upgrade-drift-{name}"
    proc = benchmark.pedantic(run, args=cmd, kwargs={"ok": (0, 1)}, rounds=ROUNDS)
    result = json.loads(proc.stdout)
    benchmark.extra_info.update(
        upgrade=f"{STEP} {OLD} → {NEW}",
        first_drifting=result["first_drifting"],
        drifting_modules=len(result["drifting_modules"]),
        drifting_bundles=len(result["drifting_bundles"]),
        modules=len(result["builds"][0]["modules"]),
        report=str(prefix) + ".md",
    )


#: tree → its ``vega-dag`` command (see the module docstring)
TREES = {"this": VEGA}
if os.environ.get("VEGA_BENCH_REFERENCE"):
    TREES["reference"] = reference_command(Path(os.environ["VEGA_BENCH_REFERENCE"]))
#: mode → VEGA_DAG_DAEMON
MODES = {"one-shot": "0", "daemon": "1"}


def run_env(*cmd: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTHONDONTWRITEBYTECODE")}
    full.update(env)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=full)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


@pytest.fixture(scope="module")
def hook_projects(tmp_path_factory: pytest.TempPathFactory):
    """tree → the example in a git repository, built, with 20 modules changed (staged)."""
    projects = {}
    for tree, vega in TREES.items():
        root = copy_project(EXAMPLE, tmp_path_factory.mktemp(f"hook-{tree}") / "shop-api")
        git = ("git", "-c", "user.email=b@example.com", "-c", "user.name=bench", "-C", str(root))
        # As a project keeps it: the build's own directory is not part of the change.
        (root / ".gitignore").write_text(".vega/\n")
        run(*git, "init", "-q")
        run(*git, "add", "-A")
        run(*git, "commit", "-qm", "base")
        run_env(vega, "build", "-q", str(root), env={"VEGA_DAG_DAEMON": "0"})
        # 10 shared modules (not the dependency layer under .vega/) and 10 routes.
        shared = sorted(
            p for p in root.rglob("*.py") if p.relative_to(root).parts[0] not in ("api", ".vega")
        )
        routes = sorted((root / "api").rglob("*.py"))
        for path in shared[:10] + routes[:10]:
            path.write_text(path.read_text() + "\n# an edit\n")
        run(*git, "add", "-A")
        projects[tree] = root
    yield projects
    for tree, root in projects.items():
        subprocess.run([TREES[tree], "daemon", "stop", str(root)], capture_output=True, check=False)


def hook_command(projects: dict[str, Path], tree: str, mode: str, *args: str):
    root, env = projects[tree], {"VEGA_DAG_DAEMON": MODES[mode]}
    cmd = (TREES[tree], *args, str(root))
    if mode == "daemon":
        # The daemon started and warm (its first answer prepares the next), untimed.
        run_env(TREES[tree], "daemon", "start", str(root), env=env)
        run_env(*cmd, env=env)
    return cmd, env, root


@pytest.mark.benchmark(group="drift-hook")
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("tree", list(TREES))
def test_drift_hook_20_changed(benchmark, hook_projects, tree: str, mode: str) -> None:
    cmd, env, _ = hook_command(hook_projects, tree, mode, "drift")
    proc = benchmark.pedantic(run_env, args=cmd, kwargs={"env": env}, rounds=ROUNDS * 3)
    assert "No drift" in proc.stdout


@pytest.mark.benchmark(group="drift-hook")
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("tree", list(TREES))
def test_build_20_changed(benchmark, hook_projects, tree: str, mode: str) -> None:
    cmd, env, root = hook_command(hook_projects, tree, mode, "build", "-q")
    changed = sorted(p for p in root.rglob("*.py") if "# an edit\n" in p.read_text())
    assert len(changed) == 20
    rounds = iter(range(1_000_000))

    def setup():
        # A fresh edit of the same 20 modules each round: 20 real compiles.
        n = next(rounds)
        for path in changed:
            path.write_text(path.read_text() + f"# round {n}\n")
        return cmd, {"env": env}

    benchmark.pedantic(run_env, setup=setup, rounds=ROUNDS * 3)
