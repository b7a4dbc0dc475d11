#!/usr/bin/env python3
"""The 217-module build as a user runs it, beside another tree's, interleaved.

    python -m benches.auto_interleaved N REFERENCE_PYTHON_DIR

Two copies of the generated 217-module project, one built with this tree's
``vega-dag``, one with the tree at REFERENCE_PYTHON_DIR (a checkout's
``python/`` holding its built extension). Nothing is started by hand: the first
build of each starts its daemon. Each of N rounds times ``python3 -c pass``,
then changes the same 3 shared modules in both copies and builds each in turn
(pytest-benchmark runs its rows one after another, and a loaded machine's load
drifts between them). Prints each row's median and min whole-process time, the
daemon's own build time, and the ratio to ``python3 -c pass``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benches.generate_project import generate, touch_modules
from benches.test_bench_build import reference_command

VEGA = str(Path(sys.executable).parent / "vega-dag")
AS_A_USER = {k: v for k, v in os.environ.items() if k not in ("VEGA_DAG_DAEMON", "CI")}
ONE_SHOT = {**os.environ, "VEGA_DAG_DAEMON": "0"}


def main(rounds: int, reference: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="vega-auto-interleaved-"))
    trees = {"this": VEGA, "reference": reference_command(reference)}
    projects = {name: generate(base / name, 217, seed=0) for name in trees}
    for name, vega in trees.items():
        root = str(projects[name].root)
        subprocess.run([vega, "build", "-q", root], check=True, env=AS_A_USER)  # starts it
        deadline = time.monotonic() + 60
        status = [vega, "daemon", "status", root]
        while subprocess.run(status, stdout=subprocess.DEVNULL, env=ONE_SHOT).returncode:
            assert time.monotonic() < deadline, f"{name}: the first build started no daemon"
            time.sleep(0.05)
    walls: dict[str, list[float]] = {"python3 -c pass": [], **{name: [] for name in trees}}
    own: dict[str, list[float]] = {name: [] for name in trees}
    try:
        for i in range(rounds):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            walls["python3 -c pass"].append(time.perf_counter() - start)
            for name, vega in trees.items():
                touch_modules(projects[name], 3, seed=70_000 + i)
                start = time.perf_counter()
                out = subprocess.run(
                    [vega, "build", "--json", str(projects[name].root)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=AS_A_USER,
                )
                walls[name].append(time.perf_counter() - start)
                own[name].append(json.loads(out.stdout)["seconds"])
    finally:
        for name, vega in trees.items():
            root = str(projects[name].root)
            subprocess.run([vega, "daemon", "stop", root], stdout=subprocess.DEVNULL, env=ONE_SHOT)
    unit = statistics.median(walls["python3 -c pass"])
    for name, times in walls.items():
        line = f"{name:16s} median {statistics.median(times) * 1000:7.1f} ms"
        line += f"  min {min(times) * 1000:7.1f} ms  ({statistics.median(times) / unit:.2f}x pass)"
        if name in own:
            line += f"  the daemon's build {statistics.median(own[name]) * 1000:.1f} ms"
        print(line)


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
