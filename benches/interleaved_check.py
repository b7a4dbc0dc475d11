#!/usr/bin/env python3
"""The import check's cost, the same edits interleaved: ``python benches/interleaved_check.py N``.

Four copies of the generated 217-module project: one-shot and with the build
daemon, each with ``[tool.vega.import_check]`` on and off. Each of N rounds
changes 3 shared modules' function bodies in every copy (the same edit) and
builds each copy once, in turn, so that a machine whose load changes during
the run weighs on every row alike (pytest-benchmark runs its rows one after
another). Prints each row's median, min and max whole-process time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from generate_project import generate, touch_modules

VEGA = str(Path(sys.executable).parent / "vega-dag")
ONE_SHOT = {**os.environ, "VEGA_DAG_DAEMON": "0"}
ATTACH = {**os.environ, "VEGA_DAG_DAEMON": "attach"}


def main(rounds: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="vega-interleaved-"))
    projects = {}
    try:
        for mode in ("one-shot", "daemon"):
            for check in (True, False):
                project = generate(base / f"{mode}-{check}" / "api", 217, seed=0)
                if not check:
                    with (project.root / "pyproject.toml").open("a") as f:
                        f.write("\n[tool.vega.import_check]\nenabled = false\n")
                build = [VEGA, "build", "-q", str(project.root)]
                subprocess.run(build, check=True, env=ONE_SHOT, stdout=subprocess.DEVNULL)
                if mode == "daemon":
                    start = [VEGA, "daemon", "start", str(project.root)]
                    subprocess.run(start, check=True, env=ONE_SHOT, stdout=subprocess.DEVNULL)
                    subprocess.run(build, check=True, env=ATTACH, stdout=subprocess.DEVNULL)
                projects[(mode, check)] = (project, [])
        for seed in range(1, rounds + 1):
            for (mode, _), (project, times) in projects.items():
                touch_modules(project, 3, seed=seed)
                env = ATTACH if mode == "daemon" else ONE_SHOT
                started = time.perf_counter()
                subprocess.run(
                    [VEGA, "build", "-q", str(project.root)],
                    check=True,
                    env=env,
                    stdout=subprocess.DEVNULL,
                )
                times.append((time.perf_counter() - started) * 1000)
    finally:
        for (mode, _), (project, _) in projects.items():
            if mode == "daemon":
                stop = [VEGA, "daemon", "stop", str(project.root)]
                subprocess.run(stop, env=ONE_SHOT, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)
    for (mode, check), (_, times) in projects.items():
        print(
            f"{mode:9} check {'on ' if check else 'off'}  median {statistics.median(times):6.0f} ms"
            f"  min {min(times):5.0f}  max {max(times):5.0f}  n={len(times)}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
