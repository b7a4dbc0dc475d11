"""Rollout benchmarks: whole `vega-dag` processes against 24 local regions.

Groups (see docs/performance.md):
- rollback-24: `vega-dag rollback` measured from the command's start until
  every region answers a route with the previous deployment's header
  (goal ≤ 0.25 s).
- deploy-217-incremental-24: `vega-dag deploy` of the generated 217-module
  project with 3 modules changed, to 24 regions: build, prefetch, canary,
  waves and gates (goal ≤ 1.5 s).

Each row runs the command as a user runs it (the console script's entry,
one-shot build). With VEGA_BENCH_REFERENCE=DIR (a checkout's ``python/``
directory, holding the same ``_core`` extension: e.g. the tree before a
change) every row is also measured with that tree's vega-dag, in the same
run, on its own project and fleet: the ``[reference]`` rows.
VEGA_BENCH_ROUNDS=N measures N rounds (default 3). With VEGA_BENCH_SMOKE=1
both run once against 3 regions.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vega_dag
from benches.conftest import SMOKE
from benches.generate_project import GeneratedProject, generate, touch_modules
from benches.rollback_observer import timed
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet

REGIONS = 3 if SMOKE else 24
ROUNDS = 1 if SMOKE else int(os.environ.get("VEGA_BENCH_ROUNDS") or 3)
#: tree name → the directory its vega_dag package is imported from
TREES = {"this": str(Path(vega_dag.__file__).resolve().parent.parent)}
if os.environ.get("VEGA_BENCH_REFERENCE"):
    TREES["reference"] = str(Path(os.environ["VEGA_BENCH_REFERENCE"]).resolve())
#: What the `vega-dag` console script runs.
VEGA = [sys.executable, "-c", "from vega_dag.entry import main; main()"]


@pytest.fixture(scope="module", params=sorted(TREES, reverse=True))
def tree(request: pytest.FixtureRequest) -> str:
    return request.param


def vega(tree: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": TREES[tree]}
    proc = subprocess.run([*VEGA, *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


@pytest.fixture(scope="module")
def fleet_project(tmp_path_factory: pytest.TempPathFactory, tree: str):
    project = generate(tmp_path_factory.mktemp(f"rollout-{tree}") / "api", 217, seed=0)
    text = (project.root / "pyproject.toml").read_text()
    # The gates run in full; their latency threshold (and the load timeout)
    # are loosened because a shared 2-core machine's p99 measures its
    # neighbours, not the routes.
    text = text.replace("p99_ms = 250", "p99_ms = 2000\nload_timeout_s = 60")
    waves = '[["fra"], ["iad", "sfo", "lhr"], ["*"]]'
    text += f"\n[tool.vega.rollout]\nregions = {REGIONS}\nwaves = {waves}\n"
    (project.root / "pyproject.toml").write_text(text)
    try:
        vega(tree, "deploy", "-q", str(project.root))
        yield project
    finally:
        LocalFleet(load_config(project.root)).down()


def _probe_path(tree: str, project: GeneratedProject) -> str:
    out = json.loads(vega(tree, "build", "--json", str(project.root)))
    return sorted(p for p in out["routes"] if "{" not in p)[0]


@pytest.mark.benchmark(group="rollback-24")
def test_rollback_24_regions(benchmark, tree: str, fleet_project: GeneratedProject) -> None:
    root = fleet_project.root
    fleet = LocalFleet(load_config(root))
    regions = fleet.regions()
    path = _probe_path(tree, fleet_project)
    env = {**os.environ, "PYTHONPATH": TREES[tree]}
    seeds = itertools.count(100)
    previous: dict[str, str] = {}

    def setup():
        before = json.loads(vega(tree, "deploy", "--json", str(root)))["deployment"]
        touch_modules(fleet_project, 3, seed=next(seeds))
        vega(tree, "deploy", "-q", str(root))
        previous["id"] = before
        return (), {}

    def rollback() -> None:
        command = [*VEGA, "rollback", "-q", "--path", str(root)]
        _, code = timed(command, env, regions, path, previous["id"])
        assert code == 0

    benchmark.pedantic(rollback, setup=setup, rounds=ROUNDS, iterations=1)


@pytest.mark.benchmark(group="deploy-217-incremental-24")
def test_incremental_deploy_24_regions(
    benchmark, tree: str, fleet_project: GeneratedProject
) -> None:
    seeds = itertools.count(1)
    root = str(fleet_project.root)

    def setup():
        touch_modules(fleet_project, 3, seed=next(seeds))
        return (), {}

    benchmark.pedantic(
        lambda: vega(tree, "deploy", "-q", root), setup=setup, rounds=ROUNDS, iterations=1
    )
