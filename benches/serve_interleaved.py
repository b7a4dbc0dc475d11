#!/usr/bin/env python3
"""One region of two checkouts, wrk interleaved: ``python benches/serve_interleaved.py OTHER N``.

OTHER is the ``python/`` directory of another checkout (with its built
``_core`` extension), e.g. a worktree of main; this checkout is the other
side. Each side deploys examples/shop-api to a one-region fleet of its own,
run by its own code (``PYTHONPATH``); then N rounds of ``wrk -t2 -c16 -d5s``
``/api/health`` go to each region in turn (ABBA), so that a machine whose load
changes during the run weighs on both alike. Prints each side's median
requests per second and the CPU time per request of its region's processes
(front and workers), which a shared machine's load disturbs least.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
EXAMPLE = HERE / "examples" / "shop-api"
WRK = ["wrk", "-t2", "-c16", "-d5s"]


def cli(python_path: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": python_path, "VEGA_DAG_DAEMON": "0"}
    return subprocess.run(
        [sys.executable, "-c", "from vega_dag.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def start(base: Path, name: str, python_path: str) -> tuple[Path, str, list[int]]:
    root = base / name / "shop-api"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".vega", "__pycache__"))
    text = (root / "pyproject.toml").read_text()
    text = text.replace('waves = [["fra"], ["iad", "sfo", "lhr"], ["*"]]', 'waves = [["fra"]]')
    text = text.replace("[tool.vega.rollout]", "[tool.vega.rollout]\nregions = 1")
    text = text.replace("p99_ms = 250", "p99_ms = 5000")  # a loaded machine fails no gate
    text += "\n[tool.vega.import_check]\ntimeout_s = 120\n"
    (root / "pyproject.toml").write_text(text)
    proc = cli(python_path, "deploy", "-q", str(root))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    status = json.loads(cli(python_path, "status", str(root), "--json").stdout)
    url = status["regions"][0]["url"]
    import urllib.request

    with urllib.request.urlopen(url + "/__vega/status", timeout=10) as response:
        region = json.loads(response.read())
    pids = [region["pid"], *(w["pid"] for w in region["workers"] if w["ready"])]
    return root, url, pids


def main(other: str, rounds: int) -> None:
    sides = {"other": other, "this": str(HERE / "python")}
    base = Path(tempfile.mkdtemp(prefix="vega-serve-ab-"))
    started: dict[str, tuple[Path, str, list[int]]] = {}
    rates: dict[str, list[float]] = {s: [] for s in sides}
    cpu: dict[str, list[float]] = {s: [] for s in sides}
    try:
        for name, path in sides.items():
            started[name] = start(base, name, path)
        order = list(sides)
        for i in range(rounds):
            for name in order if i % 2 == 0 else order[::-1]:
                _, url, pids = started[name]
                before = cpu_seconds(pids)
                out = subprocess.run(
                    [*WRK, url + "/api/health"], capture_output=True, text=True, timeout=60
                )
                used = cpu_seconds(pids) - before
                count = int(re.search(r"(\d+) requests in", out.stdout).group(1))
                rates[name].append(float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)[1]))
                cpu[name].append(used / count * 1e6)
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        print(f"{rounds} rounds of {' '.join(WRK)} each, load average at the end {load}")
        for name, path in sides.items():
            print(
                f"{name:>5} ({path}): {statistics.median(rates[name]):8.1f} req/s median "
                f"(min {min(rates[name]):.1f}, max {max(rates[name]):.1f}); "
                f"region CPU {statistics.median(cpu[name]):6.1f} µs/request median "
                f"(min {min(cpu[name]):.1f}, max {max(cpu[name]):.1f})"
            )
    finally:
        for name, (root, _, _) in started.items():
            cli(sides[name], "regions", "down", str(root))
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 6)
