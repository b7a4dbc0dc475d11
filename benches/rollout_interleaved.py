#!/usr/bin/env python3
"""Deploy and rollback from two trees, interleaved on one fleet.

    python benches/rollout_interleaved.py OTHER/python [--rounds N] [--regions 24]

The generated 217-module project and its fleet are started by this tree.
Three columns: ``this`` (this tree as a user runs it: the build daemon its
first deploy starts serves what it serves, the rollback included),
``one-shot`` (this tree with ``VEGA_DAG_DAEMON=0``) and ``other`` (the other
tree, one-shot: it never talks to this tree's daemon). Each round, for each
column in turn (ABC then CBA, so a load that changes during the run weighs on
all alike): change 3 modules, ``vega-dag deploy -q`` with that column's
command (timed), then ``vega-dag rollback -q`` with it, timed as
``benches/test_bench_rollout.py`` times it (``benches/rollback_observer.py``:
from the command's start until every region answers with the previous
deployment, and the command has exited; ``--poll`` observes throughout, as
before). The regions are this tree's for all, so what differs is the
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
from benches.generate_project import as_a_fleet, generate, touch_modules
from benches.rollback_observer import timed
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet

VEGA = [sys.executable, "-c", "from vega_dag.entry import main; main()"]


def env_of(column: str, tree: str) -> dict[str, str]:
    """The environment a column's commands run in: its tree, and whether a daemon may serve."""
    env = {**os.environ, "PYTHONPATH": tree}
    if column == "this":
        env.pop("VEGA_DAG_DAEMON", None)  # as a user runs it: the daemon the deploys start
    else:
        # The one-shot path (and the other tree never talks to this tree's daemon).
        env["VEGA_DAG_DAEMON"] = "0"
    return env


def run(column: str, tree: str, *args: str) -> str:
    proc = subprocess.run([*VEGA, *args], env=env_of(column, tree), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{tree}: vega-dag {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("other", type=Path, help="the other tree's python/ directory")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--regions", type=int, default=24)
    parser.add_argument(
        "--poll", action="store_true", help="observe every region while the rollback runs"
    )
    args = parser.parse_args()
    here = str(Path(vega_dag.__file__).resolve().parent.parent)
    #: column → the tree its commands import vega_dag from
    trees = {"this": here, "one-shot": here, "other": str(args.other.resolve())}
    project = generate(Path(tempfile.mkdtemp(prefix="vega-rollout-")) / "api", 217, seed=0)
    root = project.root
    as_a_fleet(root, args.regions)
    config = load_config(root)
    times: dict[str, dict[str, list[float]]] = {t: {"deploy": [], "rollback": []} for t in trees}
    try:
        run("this", here, "deploy", "-q", str(root))
        regions = LocalFleet(config).regions()
        out = json.loads(run("this", here, "build", "--json", str(root)))
        path = sorted(p for p in out["routes"] if "{" not in p)[0]
        seed = 100
        for i in range(args.rounds):
            # ABC, then CBA: a load that changes during the run weighs on all alike.
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                tree = trees[name]
                before = json.loads(run(name, tree, "status", "--json", str(root)))
                previous = before["regions"][0]["deployment"]
                touch_modules(project, 3, seed=seed)
                seed += 1
                started = time.perf_counter()
                run(name, tree, "deploy", "-q", str(root))
                times[name]["deploy"].append(time.perf_counter() - started)
                command = [*VEGA, "rollback", "-q", "--path", str(root)]
                seconds, code = timed(
                    command, env_of(name, tree), regions, path, previous, poll=args.poll
                )
                if code:
                    raise SystemExit(f"{name}: rollback failed")
                times[name]["rollback"].append(seconds)
                print(
                    f"round {i} {name}: deploy {times[name]['deploy'][-1]:.3f}s, "
                    f"rollback {times[name]['rollback'][-1]:.3f}s",
                    flush=True,
                )
    finally:
        LocalFleet(config).down()
        # The build daemon the first deploy started, so that none outlives the run.
        subprocess.run(
            [*VEGA, "daemon", "stop", str(root)], env=env_of("this", here), capture_output=True
        )
    for row in ("rollback", "deploy"):
        medians = {}
        for name in trees:
            values = times[name][row]
            medians[name] = statistics.median(values)
            print(
                f"{row:8s} {name:8s} median {medians[name] * 1000:7.0f} ms  "
                f"min {min(values) * 1000:7.0f}  max {max(values) * 1000:7.0f}  (n={len(values)})"
            )
        for name in ("this", "one-shot"):
            print(f"{row:8s} {name}/other = {medians[name] / medians['other']:.2f}")


if __name__ == "__main__":
    main()
