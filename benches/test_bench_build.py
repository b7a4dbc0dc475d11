"""Build benchmarks: whole `vega-dag build` processes, beside their peers.

Groups (see docs/performance.md):
- build-217-incremental: the generated 217-module API with 3 modules changed
  (also with the import check off, ``*_no_import_check``, one-shot and with
  the daemon: what the check costs).
- build-217-bodies: the same project with 3 module bodies changed (code that
  runs at import: the import check imports the routes whose closures hold
  them), with the check on and off, one-shot and with the daemon.
- build-20k-noop / build-20k-10changed: the generated 20,000-module project.
  Each of these three also runs with the build daemon (`*_daemon`): the same
  `vega-dag build` command, handed to `vega-dag daemon start`'s process;
  build-217-incremental also runs as a user runs it (`*_auto`): nothing
  started by hand, the first build starts the daemon, the rounds are the
  builds after it. The one-shot rows set VEGA_DAG_DAEMON=0.
- build-real-cold: a cold build of a real 15,576-module code base (ansible
  10.7.0 from PyPI) against `python -m compileall -j0 --invalidation-mode
  checked-hash` over the same files.
- graph-real-cold: cold import-graph construction of that code base against
  `ruff analyze graph`.

Every process is started from the interpreter's own bin directory, not a
version-manager shim, so the figures are the tool's own start-up.

With VEGA_BENCH_20K_BUILT=DIR (the generated 20,000-module project, seed 0,
already built: ``benches/generate_project.py DIR --modules 20000`` then
``vega-dag build DIR``) the 20,000-module rows copy it instead of generating
and building it cold for each tree.

With VEGA_BENCH_REFERENCE=DIR (a checkout's ``python/`` directory holding
its own built ``_core`` extension: e.g. the tree before a change) the rows
on the generated projects also run with that tree's vega-dag, in the same
run, on projects of their own: the ``[reference]`` rows beside ``[this]``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from benches.conftest import SMOKE
from benches.generate_project import GeneratedProject, generate, touch_modules

BIN = Path(sys.executable).parent
VEGA = str(BIN / "vega-dag")
BIG = 300 if SMOKE else 20_000


def reference_command(python_dir: Path) -> str:
    """A console script like ``vega-dag``'s that imports vega_dag from ``python_dir``.

    PYTHONPATH is set inside it, so the processes it starts (the daemon) run
    that tree too.
    """
    script = Path(tempfile.mkdtemp(prefix="vega-bench-reference-")) / "vega-dag"
    where = str(python_dir.resolve())
    # The tree's own launcher's start-up: the console script pip writes for a
    # [project.scripts] entry point imports re; launcher/scripts/vega-dag does not.
    pyproject = python_dir.resolve().parent / "pyproject.toml"
    pip_launcher = pyproject.is_file() and "[project.scripts]" in pyproject.read_text()
    imports = "os, re, sys" if pip_launcher else "os, sys"
    script.write_text(
        f"#!{sys.executable}\nimport {imports}\nos.environ['PYTHONPATH'] = {where!r}\n"
        f"sys.path.insert(0, {where!r})\nfrom vega_dag.entry import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    return str(script)


#: tree → its ``vega-dag`` command (see the module docstring)
COMMANDS = {"this": VEGA}
if os.environ.get("VEGA_BENCH_REFERENCE"):
    COMMANDS["reference"] = reference_command(Path(os.environ["VEGA_BENCH_REFERENCE"]))
#: a generated project's root → the command of the tree it is measured with
_VEGA_OF: dict[Path, str] = {}


def vega_of(project: GeneratedProject) -> str:
    return _VEGA_OF.get(project.root, VEGA)


#: The one-shot rows build in their own process: no daemon started by the first build.
ONE_SHOT = {**os.environ, "VEGA_DAG_DAEMON": "0"}


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ONE_SHOT)


def run_attached(*cmd: str) -> None:
    """Handed to the daemon started by hand (and never starting one)."""
    env = {**os.environ, "VEGA_DAG_DAEMON": "attach"}
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)


def run_as_a_user(*cmd: str) -> None:
    """The environment as a user has it: a build may start the project's daemon."""
    env = {k: v for k, v in os.environ.items() if k not in ("VEGA_DAG_DAEMON", "CI")}
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)


def built(project: GeneratedProject) -> GeneratedProject:
    run(vega_of(project), "build", "-q", str(project.root))
    return project


@pytest.fixture(scope="module", params=list(COMMANDS))
def tree(request: pytest.FixtureRequest) -> str:
    return request.param


def generated(tmp_path_factory: pytest.TempPathFactory, name: str, modules: int, tree: str):
    prebuilt = os.environ.get("VEGA_BENCH_20K_BUILT")
    if prebuilt and modules == 20_000:
        return copied(Path(prebuilt), tmp_path_factory.mktemp(f"{name}-{tree}") / "api", tree)
    project = generate(tmp_path_factory.mktemp(f"{name}-{tree}") / "api", modules, seed=0)
    _VEGA_OF[project.root] = COMMANDS[tree]
    return built(project)


def copied(source: Path, dest: Path, tree: str) -> GeneratedProject:
    """A copy of ``source`` (VEGA_BENCH_20K_BUILT: the generated 20,000-module project,
    seed 0, built once, ``.vega`` and all), instead of a cold build per tree.

    The cold build imports each of the 3,000 routes for the import check and
    takes most of an hour on a loaded machine; every tree reads the copy's
    state (the trees of one run share the state format). The copy is brought
    up to date by one build before the rounds, as ``built`` does.
    """
    subprocess.run(["cp", "-a", str(source), str(dest)], check=True)
    shared = sorted(
        p for p in dest.rglob("*.py") if p.relative_to(dest).parts[0] not in ("api", ".vega")
    )
    project = GeneratedProject(
        root=dest,
        modules=20_000,
        seed=0,
        routes=sorted((dest / "api").rglob("*.py")),
        shared=shared,
        route_urls={},
        edges=[],
        cycles=[],
    )
    _VEGA_OF[project.root] = COMMANDS[tree]
    return built(project)


@pytest.fixture(scope="module")
def p217(tmp_path_factory: pytest.TempPathFactory, tree: str) -> GeneratedProject:
    return generated(tmp_path_factory, "p217", 217, tree)


@pytest.fixture(scope="module")
def p20k(tmp_path_factory: pytest.TempPathFactory, tree: str) -> GeneratedProject:
    return generated(tmp_path_factory, "p20k", BIG, tree)


def changing(project: GeneratedProject, count: int, first_seed: int = 1):
    """A pedantic setup that makes `count` real edits before each round."""
    seeds = itertools.count(first_seed)

    def setup():
        touch_modules(project, count, seed=next(seeds))
        return (vega_of(project), "build", "-q", str(project.root)), {}

    return setup


@pytest.mark.benchmark(group="build-217-incremental")
def test_build_217_three_changed(benchmark, p217: GeneratedProject):
    benchmark.pedantic(run, setup=changing(p217, 3), rounds=3 if SMOKE else 15)


@pytest.fixture(scope="module")
def p217_unchecked(tmp_path_factory: pytest.TempPathFactory) -> GeneratedProject:
    """The same project with the build's import check off: its cost is the difference."""
    project = generate(tmp_path_factory.mktemp("p217u") / "api", 217, seed=0)
    with (project.root / "pyproject.toml").open("a") as f:
        f.write("\n[tool.vega.import_check]\nenabled = false\n")
    return built(project)


@pytest.mark.benchmark(group="build-217-incremental")
def test_build_217_three_changed_no_import_check(benchmark, p217_unchecked: GeneratedProject):
    benchmark.pedantic(run, setup=changing(p217_unchecked, 3), rounds=3 if SMOKE else 15)


_BODY_EDIT = re.compile(r"^_BODY_EDIT = \d+\n", re.MULTILINE)


def changing_bodies(project: GeneratedProject, count: int, first_seed: int = 1):
    """A pedantic setup that edits the module body of ``count`` shared modules each round.

    Code that runs at import changes, so the import check must import every
    route whose closure holds one (the other edits change only function bodies).
    """
    seeds = itertools.count(first_seed)

    def setup():
        seed = next(seeds)
        for path in random.Random(seed).sample(project.touchable, count):
            text = _BODY_EDIT.sub("", path.read_text())
            path.write_text(text + f"_BODY_EDIT = {seed}\n")
        return (vega_of(project), "build", "-q", str(project.root)), {}

    return setup


@pytest.mark.benchmark(group="build-217-bodies")
def test_build_217_three_bodies_changed(benchmark, p217: GeneratedProject):
    benchmark.pedantic(run, setup=changing_bodies(p217, 3), rounds=3 if SMOKE else 10)


@pytest.mark.benchmark(group="build-217-bodies")
def test_build_217_three_bodies_changed_no_import_check(
    benchmark, p217_unchecked: GeneratedProject
):
    benchmark.pedantic(run, setup=changing_bodies(p217_unchecked, 3), rounds=3 if SMOKE else 10)


@pytest.mark.benchmark(group="build-217-bodies")
def test_build_217_three_bodies_changed_daemon(benchmark, daemon_217: GeneratedProject):
    setup = changing_bodies(daemon_217, 3, first_seed=10_000)
    benchmark.pedantic(run_attached, setup=setup, rounds=3 if SMOKE else 10)


@pytest.mark.benchmark(group="build-20k-noop")
def test_build_20k_noop(benchmark, p20k: GeneratedProject):
    benchmark.pedantic(
        run,
        args=(vega_of(p20k), "build", "-q", str(p20k.root)),
        rounds=3 if SMOKE else 10,
        warmup_rounds=1,
    )


@pytest.mark.benchmark(group="build-20k-10changed")
def test_build_20k_ten_changed(benchmark, p20k: GeneratedProject):
    benchmark.pedantic(run, setup=changing(p20k, 10), rounds=3 if SMOKE else 10)


# -- the same, handed to the build daemon (`vega-dag daemon start`) ---------------


@pytest.fixture
def daemon_217(p217: GeneratedProject):
    with build_daemon(p217):
        yield p217


@pytest.fixture
def daemon_20k(p20k: GeneratedProject):
    with build_daemon(p20k):
        yield p20k


@contextlib.contextmanager
def build_daemon(project: GeneratedProject):
    vega = vega_of(project)
    run(vega, "daemon", "start", str(project.root))
    try:
        run_attached(vega, "build", "-q", str(project.root))  # the daemon's first build reads all
        yield
    finally:
        run(vega, "daemon", "stop", str(project.root))


@pytest.mark.benchmark(group="build-217-incremental")
def test_build_217_three_changed_daemon(benchmark, daemon_217: GeneratedProject):
    # Other edits than the one-shot run's: every round compiles for real.
    benchmark.pedantic(
        run_attached, setup=changing(daemon_217, 3, first_seed=10_000), rounds=3 if SMOKE else 15
    )


@pytest.fixture
def daemon_217_unchecked(p217_unchecked: GeneratedProject):
    with build_daemon(p217_unchecked):
        yield p217_unchecked


@pytest.mark.benchmark(group="build-217-incremental")
def test_build_217_three_changed_daemon_no_import_check(
    benchmark, daemon_217_unchecked: GeneratedProject
):
    benchmark.pedantic(
        run_attached,
        setup=changing(daemon_217_unchecked, 3, first_seed=10_000),
        rounds=3 if SMOKE else 15,
    )


@pytest.mark.benchmark(group="build-20k-noop")
def test_build_20k_noop_daemon(benchmark, daemon_20k: GeneratedProject):
    benchmark.pedantic(
        run_attached,
        args=(vega_of(daemon_20k), "build", "-q", str(daemon_20k.root)),
        rounds=3 if SMOKE else 10,
        warmup_rounds=1,
    )


@pytest.mark.benchmark(group="build-20k-10changed")
def test_build_20k_ten_changed_daemon(benchmark, daemon_20k: GeneratedProject):
    benchmark.pedantic(
        run_attached, setup=changing(daemon_20k, 10, first_seed=10_000), rounds=3 if SMOKE else 10
    )


@pytest.fixture
def auto_217(p217: GeneratedProject):
    root = p217.root.resolve()
    vega = vega_of(p217)
    run_as_a_user(vega, "build", "-q", str(root))  # starts the daemon, builds here
    deadline = time.monotonic() + 60
    # Asked through the tree's own command: trees may name their sockets differently.
    status = [vega, "daemon", "status", str(root)]
    while subprocess.run(status, stdout=subprocess.DEVNULL, env=ONE_SHOT).returncode != 0:
        assert time.monotonic() < deadline, "the first build started no daemon"
        time.sleep(0.05)
    try:
        run_as_a_user(vega, "build", "-q", str(root))  # the daemon's first build reads everything
        yield p217
    finally:
        run(vega, "daemon", "stop", str(root))


@pytest.mark.benchmark(group="build-217-incremental")
def test_build_217_three_changed_auto(benchmark, auto_217: GeneratedProject):
    setup = changing(auto_217, 3, first_seed=20_000)
    benchmark.pedantic(run_as_a_user, setup=setup, rounds=3 if SMOKE else 15)


@pytest.mark.benchmark(group="build-217-incremental")
def test_python_startup_beside_build_217(benchmark):
    """The interpreter's own start-up, the goal's unit (40 ms ≈ 2.7× `python3 -c pass`)."""
    benchmark.pedantic(run, args=(sys.executable, "-c", "pass"), rounds=3 if SMOKE else 15)


# -- a real code base, cold ------------------------------------------------------


@pytest.fixture(scope="module")
def real_tree(real_py_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the real code base's Python files (peers write into it)."""
    src_root = next(p for p in real_py_files[0].parents if (p / ".unpacked").exists())
    dest = tmp_path_factory.mktemp("real") / "tree"
    for path in real_py_files:
        target = dest / path.relative_to(src_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return dest


def without(root: Path, name: str):
    def setup():
        if name == "__pycache__":
            for cache in root.rglob("__pycache__"):
                shutil.rmtree(cache)
        else:
            shutil.rmtree(root / name, ignore_errors=True)

    return setup


@pytest.mark.benchmark(group="build-real-cold")
def test_vega_build_real_cold(benchmark, real_tree: Path):
    benchmark.pedantic(
        run,
        args=(VEGA, "build", "-q", str(real_tree)),
        setup=without(real_tree, ".vega"),
        rounds=1 if SMOKE else 3,
    )


@pytest.mark.benchmark(group="build-real-cold")
def test_compileall_real_cold(benchmark, real_tree: Path):
    cmd = (
        sys.executable,
        "-m",
        "compileall",
        "-q",
        "-j0",
        "--invalidation-mode",
        "checked-hash",
        str(real_tree),
    )
    benchmark.pedantic(
        run, args=cmd, setup=without(real_tree, "__pycache__"), rounds=1 if SMOKE else 3
    )


@pytest.mark.benchmark(group="graph-real-cold")
def test_vega_graph_real_cold(benchmark, real_tree: Path, tmp_path: Path):
    out = tmp_path / "graph.dot"
    benchmark.pedantic(
        run,
        args=(VEGA, "graph", str(real_tree), "-o", str(out)),
        setup=without(real_tree, ".vega"),
        rounds=1 if SMOKE else 5,
    )
    assert out.read_text().startswith("digraph")


@pytest.mark.benchmark(group="graph-real-cold")
def test_ruff_analyze_graph_real_cold(benchmark, real_tree: Path):
    ruff = shutil.which("ruff") or str(BIN / "ruff")
    benchmark.pedantic(
        run, args=(ruff, "analyze", "graph", str(real_tree)), rounds=1 if SMOKE else 5
    )
