#!/usr/bin/env python3
"""A rollback's fixed costs: `vega-dag rollback` with nothing to roll back, beside `python -c pass`.

    python benches/rollback_startup.py PROJECT DEPLOYMENT [--rounds N] [--reference OTHER/python]

PROJECT has a fleet and DEPLOYMENT is one no region serves any more (a
rolled-back one: ``vega-dag history``), so each command goes through its
start-up, the configuration, the pointer store, the deploy lock and the
regions' records, and says there is nothing to roll back. Rows, interleaved
(forward, then backward, each round): ``pass``; ``served`` (the project's
daemon answers: start one with ``vega-dag daemon start PROJECT``);
``one-shot`` (``VEGA_DAG_DAEMON=0``); with ``--reference``, the other tree
one-shot. Prints each row's median and min, and its ratio to ``pass``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

VEGA = [sys.executable, "-c", "from vega_dag.entry import main; main()"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    parser.add_argument("deployment")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--reference", help="another tree's python/ directory")
    args = parser.parse_args()
    rollback = [*VEGA, "rollback", args.deployment, "-q", "--path", args.project]
    rows: dict[str, tuple[list[str], dict[str, str]]] = {
        "pass": ([sys.executable, "-c", "pass"], {}),
        "served": (rollback, {"VEGA_DAG_DAEMON": "attach"}),
        "one-shot": (rollback, {"VEGA_DAG_DAEMON": "0"}),
    }
    if args.reference:
        rows["reference"] = (rollback, {"VEGA_DAG_DAEMON": "0", "PYTHONPATH": args.reference})
    times: dict[str, list[float]] = {name: [] for name in rows}
    for i in range(args.rounds):
        for name in list(rows) if i % 2 == 0 else list(reversed(rows)):
            command, env = rows[name]
            started = time.perf_counter()
            proc = subprocess.run(command, env={**os.environ, **env}, capture_output=True)
            times[name].append(time.perf_counter() - started)
            if proc.returncode:
                raise SystemExit(f"{name}: {proc.stderr.decode()}")
    floor = statistics.median(times["pass"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:10s} median {median * 1000:6.1f} ms  min {min(values) * 1000:6.1f}"
            f"  ({median / floor:.1f}x pass)"
        )


if __name__ == "__main__":
    main()
