"""A bake's cost: a deploy whose gates bake, beside the same deploy without a bake.

Group ``bake``: a small project (one route changed per deploy) on 3 local
regions, canary then one wave (two gates), wrk driving every region all along
(loopback, one thread and two connections each, bounded by the run). Each
round deploys twice, with ``[tool.vega.health.bake] bake_s = BAKE_S`` and
without, alternating which goes first (ABBA: the load drifts over a run).

Goal: a bake adds its configured time (BAKE_S per gate) and at most 50 ms more.
``extra_info``: each side's median deploy seconds, their difference minus the
configured bake time, and, measured inside the deploy (each verdict's
``elapsed_s``, the bake node's wall time), the bake's own overhead beyond its
hold: flushing the regions' request logs, reading the window back, the tests
(``costs_ms``: each step's wall time, and the CPU time of the thread that judged).

With VEGA_BENCH_REFERENCE=DIR (a checkout's ``python/`` directory holding
its built ``_core``), each round also deploys with a bake from that tree, in
the same fleet and traffic, its place in the round's order alternating too:
``reference_*`` figures beside this tree's, measured under the same load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vega_dag
from benches.conftest import SMOKE
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet

ROUNDS = 1 if SMOKE else 5
BAKE_S = 1.0
REGIONS = 3
#: tree name → the directory its vega_dag package is imported from
TREES = {"this": str(Path(vega_dag.__file__).resolve().parent.parent)}
if os.environ.get("VEGA_BENCH_REFERENCE"):
    TREES["reference"] = str(Path(os.environ["VEGA_BENCH_REFERENCE"]).resolve())
CLI = [sys.executable, "-c", "from vega_dag.cli import main; main()"]
PYPROJECT = """
[tool.vega.rollout]
canary = "fra"
waves = [["fra"], ["*"]]
regions = {regions}

[tool.vega.health]
p99_ms = 10000
min_samples = 3
"""
#: Verdicts are not what is measured: a worker switched to a second ago on a
#: loaded machine must not fail its canary on latency and end the deploy early.
BAKE = """
[tool.vega.health.bake]
bake_s = {bake_s}
min_requests = 20
latency_tolerance_ms = 100.0
"""
FILES = {
    "lib/__init__.py": "",
    "api/work.py": (
        "from lib.version import VERSION\n\n"
        "def handler(request):\n"
        '    return {"version": VERSION}\n'
    ),
}


def _deploy(root: Path, bake: bool, version: int, tree: str = "this") -> tuple[float, list[dict]]:
    (root / "lib" / "version.py").write_text(f"VERSION = {version}\n")
    text = PYPROJECT.format(regions=REGIONS) + (BAKE.format(bake_s=BAKE_S) if bake else "")
    (root / "pyproject.toml").write_text(text)
    started = time.perf_counter()
    proc = subprocess.run(
        [*CLI, "deploy", "--json", str(root)],
        env={**os.environ, "PYTHONPATH": TREES[tree]},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    bakes = json.loads(proc.stdout)["bakes"] if proc.stdout.startswith("{") else []
    # On a machine loaded past what wrk needs, a canary may see too few requests:
    # that bake still flushed, read and judged (its cost counts); the deploy rolls back.
    starved = bakes and all(b["passed"] or b["rule"] == "fail" for b in bakes)
    assert proc.returncode == 0 or starved, proc.stderr + proc.stdout
    return seconds, bakes


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("bake") / "proj"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    _deploy(root, False, 0)
    local = LocalFleet(load_config(root))
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.fail("wrk is not installed (make test-deps installs it)")
    # Bounded in time: longer than the run needs, stopped at its end.
    seconds = 30 if SMOKE else 300
    procs = [
        subprocess.Popen(
            [wrk, "-t1", "-c2", f"-d{seconds}s", r.url + "/api/work"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for r in local.regions()
    ]
    try:
        yield root
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        local.down()


@pytest.mark.benchmark(group="bake")
def test_deploy_bake_overhead(benchmark, project: Path) -> None:
    #: (tree, with a bake) of each deploy of a round; its order alternates round to round
    variants = [(tree, True) for tree in TREES] + [("this", False)]
    times: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
    overheads: dict[str, list[float]] = {tree: [] for tree in TREES}
    costs: dict[str, list[dict[str, float]]] = {tree: [] for tree in TREES}
    starved = dict.fromkeys(TREES, 0)
    version = iter(range(1, 1000))
    rounds = iter(range(1000))

    loads: list[float] = []

    def run() -> None:
        loads.append(os.getloadavg()[0])
        order = variants if next(rounds) % 2 == 0 else variants[::-1]
        for tree, bake in order:
            seconds, bakes = _deploy(project, bake, next(version), tree)
            times[tree, bake].append(seconds)
            if bake:
                assert bakes and all(b["passed"] or b["rule"] == "fail" for b in bakes), bakes
                starved[tree] += sum(1 for b in bakes if not b["passed"])
                overheads[tree].extend(b["elapsed_s"] - BAKE_S for b in bakes)
                costs[tree].extend(b["costs_ms"] for b in bakes)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    configured = 2 * BAKE_S  # two gates
    info = benchmark.extra_info
    info["bake_s_per_gate"] = BAKE_S
    info["load_1min_each_round"] = [round(x, 1) for x in loads]
    info["deploy_s_without"] = round(median(times["this", False]), 3)
    info["rounds_without"] = [round(t, 3) for t in times["this", False]]
    for tree in TREES:
        prefix = "" if tree == "this" else f"{tree}_"
        with_bake = times[tree, True]
        info[f"{prefix}deploy_s_with_bake"] = round(median(with_bake), 3)
        # Goal ≤ 0.05: what a bake adds beyond its configured time.
        info[f"{prefix}added_beyond_bake_s"] = round(
            median(with_bake) - median(times["this", False]) - configured, 3
        )
        info[f"{prefix}bake_node_overhead_ms_median"] = round(median(overheads[tree]) * 1000, 1)
        info[f"{prefix}bake_node_overhead_ms_max"] = round(max(overheads[tree]) * 1000, 1)
        for step in ("oversleep", "flush", "read", "judge", "cpu", "read_while_holding"):
            values = [c[step] for c in costs[tree] if step in c]
            if values:
                info[f"{prefix}bake_{step}_ms_median"] = median(values)
        info[f"{prefix}rounds_with_bake"] = [round(t, 3) for t in with_bake]
        info[f"{prefix}bakes_with_too_few_requests"] = starved[tree]
