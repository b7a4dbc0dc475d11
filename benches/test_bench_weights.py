"""A region splitting its requests 50/50 between two warm deployments, against one that does not.

One region serving examples/shop-api's ``/api/health``, deployed twice (the
second build changes one module). ``wrk -t2 -c16`` with a Lua script that
counts the ``x-vega-deployment`` of every response runs against the region
with its pointer at the second deployment alone (weight 100, the fast path),
then with the pointer at 50 % of it and 50 % of the first, interleaved round
by round (ABBA), in one benchmark (group serve-weights). extra_info: requests
per second of each, their ratio, the share the weighted rounds measured, and
the CPU time per request of the region's processes (front and both workers:
what a shared machine's load disturbs least). A split costs one more hand-off
for a kept-alive request that changes sides (half of them at 50 %).

With VEGA_BENCH_SMOKE=1 it runs once, wrk for one second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import vega_dag
from benches.conftest import SMOKE
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet, request
from vega_dag.rollout.pointers import Move, PointerStore

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shop-api"
PATH = "/api/health"
ENV = {**os.environ, "PYTHONPATH": str(Path(vega_dag.__file__).resolve().parent.parent)}
WRK_SECONDS = 1 if SMOKE else 8
WRK = ["-t2", "-c16", f"-d{WRK_SECONDS}s"]

#: Counts each response's deployment, over wrk's threads, printed at the end.
COUNT_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
  local d = headers["x-vega-deployment"] or "none"
  counts[d] = (counts[d] or 0) + 1
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do io.write(string.format("deployment %s %d\\n", k, v)) end
  end
end
"""


@pytest.fixture(scope="module")
def two_deployments(tmp_path_factory: pytest.TempPathFactory):
    """(region URL, pointer store path, first deployment, second deployment)."""
    root = tmp_path_factory.mktemp("weights") / "shop-api"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".vega", "__pycache__"))
    text = (root / "pyproject.toml").read_text()
    text = text.replace('waves = [["fra"], ["iad", "sfo", "lhr"], ["*"]]', 'waves = [["fra"]]')
    text = text.replace("[tool.vega.rollout]", "[tool.vega.rollout]\nregions = 1")
    # What is measured is serving: a loaded machine must not fail a deploy's gate.
    text = text.replace("p99_ms = 250", "p99_ms = 5000")
    (root / "pyproject.toml").write_text(text)
    cli = [sys.executable, "-c", "from vega_dag.cli import main; main()"]
    fleet = LocalFleet(load_config(root))
    try:
        ids = []
        for n in range(2):
            if n:
                health = root / "api" / "health" / "index.py"
                health.write_text(health.read_text() + "\n# the second build\n")
            proc = subprocess.run(
                [*cli, "deploy", "--json", str(root)], env=ENV, capture_output=True, text=True
            )
            assert proc.returncode == 0, proc.stderr + proc.stdout
            ids.append(re.search(r'"deployment": "(dpl_\w+)"', proc.stdout).group(1))
        (info,) = fleet.regions()
        yield info.url, fleet.db_path, ids[0], ids[1]
    finally:
        fleet.down()


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (/proc/PID/stat fields 14 and 15)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _region_pids(url: str) -> list[int]:
    status = json.loads(request(url + "/__vega/status", timeout=5)[2])
    return [status["pid"], *(w["pid"] for w in status["workers"] if w["ready"])]


def _point(url: str, db: Path, new: str, weight: int, baseline: str) -> None:
    store = PointerStore(db)
    try:
        p = store.pointer("fra")
        store.swap([Move("fra", p.generation, new, new, weight, baseline)], new, "bench", "bench")
    finally:
        store.close()
    status, _, body, _ = request(f"{url}/__vega/wait?deployment={new}&timeout=10", timeout=15)
    assert status == 200, body


@pytest.mark.benchmark(group="serve-weights")
def test_region_weighted_wrk(benchmark, two_deployments, tmp_path: Path) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.fail("wrk is not installed: run `make bench-deps`")
    url, db, old, new = two_deployments
    script = tmp_path / "count.lua"
    script.write_text(COUNT_LUA)
    rates: dict[int, list[float]] = {100: [], 50: []}
    cpu: dict[int, list[float]] = {100: [], 50: []}
    shares: list[float] = []

    def one(weight: int) -> None:
        _point(url, db, new, weight, old)
        pids = _region_pids(url)
        before = _cpu_seconds(pids)
        out = subprocess.run(
            [wrk, *WRK, "-s", str(script), url + PATH],
            capture_output=True,
            text=True,
            timeout=WRK_SECONDS + 30,
        )
        used = _cpu_seconds(pids) - before
        assert out.returncode == 0, out.stderr
        assert "Non-2xx" not in out.stdout and "Socket errors" not in out.stdout, out.stdout
        count = re.search(r"(\d+) requests in", out.stdout)
        assert count is not None, out.stdout
        cpu[weight].append(used / int(count.group(1)) * 1e6)
        rates[weight].append(float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout).group(1)))
        counts: dict[str, int] = {}
        for name, n in re.findall(r"^deployment (\S+) (\d+)$", out.stdout, flags=re.M):
            counts[name] = counts.get(name, 0) + int(n)
        if weight == 50:
            shares.append(counts.get(new, 0) / sum(counts.values()))
        else:
            assert set(counts) == {new}, counts

    def run() -> None:
        for weight in (100, 50) if len(rates[50]) % 2 == 0 else (50, 100):
            one(weight)

    benchmark.pedantic(run, rounds=1 if SMOKE else 4, iterations=1)
    full = sorted(rates[100])[len(rates[100]) // 2]
    split = sorted(rates[50])[len(rates[50]) // 2]
    benchmark.extra_info["requests_per_s_unweighted"] = round(full, 1)
    benchmark.extra_info["requests_per_s_weighted_50"] = round(split, 1)
    benchmark.extra_info["weighted_over_unweighted"] = round(split / full, 3)
    for weight, name in ((100, "unweighted"), (50, "weighted_50")):
        median = sorted(cpu[weight])[len(cpu[weight]) // 2]
        benchmark.extra_info[f"region_cpu_us_per_request_{name}"] = round(median, 1)
    benchmark.extra_info["new_share_at_50"] = [round(s, 4) for s in shares]
    benchmark.extra_info["rounds_unweighted"] = rates[100]
    benchmark.extra_info["rounds_weighted_50"] = rates[50]
    benchmark.extra_info["wrk"] = " ".join(WRK)
