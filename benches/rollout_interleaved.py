#!/usr/bin/env python3
"""Deploy and rollback from two trees, interleaved on one fleet.

    python benches/rollout_interleaved.py OTHER/python [--rounds N] [--regions 24]

The generated 217-module project and its fleet are started by this tree.
Each round, for each tree in turn (ABBA order, so a load that changes during
the run weighs on both alike): change 3 modules, ``vega-dag deploy -q`` with
that tree's command (timed), then ``vega-dag rollback -q`` with it, timed as
``benches/test_bench_rollout.py`` times it (from the command's start until
every region answers with the previous deployment, and the command has
exited). The regions are this tree's for both, so what differs is the
commands' own work: their start-up, their waits, their probes. Prints each
row's median, min and max, and the ratios of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import vega_dag
from benches.generate_project import generate, touch_modules
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet, request_many

VEGA = [sys.executable, "-c", "from vega_dag.entry import main; main()"]


def run(tree: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": tree}
    proc = subprocess.run([*VEGA, *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{tree}: vega-dag {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def timed_rollback(tree: str, root: Path, regions: list, path: str, previous: str) -> float:
    env = {**os.environ, "PYTHONPATH": tree}
    started = time.perf_counter()
    proc = subprocess.Popen([*VEGA, "rollback", "-q", "--path", str(root)], env=env)
    pending = {r.name: r for r in regions}
    while pending:
        asked = list(pending.values())
        answers = request_many([(r.url + path, "GET", None) for r in asked], timeout=5.0)
        for r, answer in zip(asked, answers, strict=True):
            if not isinstance(answer, OSError) and answer[1].get("x-vega-deployment") == previous:
                del pending[r.name]
        if pending:
            time.sleep(0.002)
    if proc.wait():
        raise SystemExit(f"{tree}: rollback failed")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("other", type=Path, help="the other tree's python/ directory")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--regions", type=int, default=24)
    args = parser.parse_args()
    trees = {
        "this": str(Path(vega_dag.__file__).resolve().parent.parent),
        "other": str(args.other.resolve()),
    }
    project = generate(Path(tempfile.mkdtemp(prefix="vega-rollout-")) / "api", 217, seed=0)
    root = project.root
    text = (root / "pyproject.toml").read_text()
    # Latency and timeouts loosened: a shared machine's p99 measures its neighbours.
    text = text.replace("p99_ms = 250", "p99_ms = 60000\nload_timeout_s = 60")
    text = text.replace("timeout_s = 2.0", "timeout_s = 10.0")
    text += (
        f"\n[tool.vega.rollout]\nregions = {args.regions}\n"
        'waves = [["fra"], ["iad", "sfo", "lhr"], ["*"]]\n'
    )
    (root / "pyproject.toml").write_text(text)
    config = load_config(root)
    times: dict[str, dict[str, list[float]]] = {t: {"deploy": [], "rollback": []} for t in trees}
    try:
        run(trees["this"], "deploy", "-q", str(root))
        regions = LocalFleet(config).regions()
        out = json.loads(run(trees["this"], "build", "--json", str(root)))
        path = sorted(p for p in out["routes"] if "{" not in p)[0]
        seed = 100
        for i in range(args.rounds):
            order = ["this", "other"] if i % 2 == 0 else ["other", "this"]
            for name in order:
                tree = trees[name]
                before = json.loads(run(tree, "status", "--json", str(root)))
                previous = before["regions"][0]["deployment"]
                touch_modules(project, 3, seed=seed)
                seed += 1
                started = time.perf_counter()
                run(tree, "deploy", "-q", str(root))
                times[name]["deploy"].append(time.perf_counter() - started)
                times[name]["rollback"].append(timed_rollback(tree, root, regions, path, previous))
                print(
                    f"round {i} {name}: deploy {times[name]['deploy'][-1]:.3f}s, "
                    f"rollback {times[name]['rollback'][-1]:.3f}s",
                    flush=True,
                )
    finally:
        LocalFleet(config).down()
        # The build daemon the first deploy started, so that none outlives the run.
        env = {**os.environ, "PYTHONPATH": trees["this"]}
        subprocess.run([*VEGA, "daemon", "stop", str(root)], env=env, capture_output=True)
    for row in ("rollback", "deploy"):
        medians = {}
        for name in trees:
            values = times[name][row]
            medians[name] = statistics.median(values)
            print(
                f"{row:8s} {name:5s} median {medians[name] * 1000:7.0f} ms  "
                f"min {min(values) * 1000:7.0f}  max {max(values) * 1000:7.0f}  (n={len(values)})"
            )
        print(f"{row:8s} this/other = {medians['this'] / medians['other']:.2f}")


if __name__ == "__main__":
    main()
