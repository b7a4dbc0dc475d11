"""Serving benchmarks: one local region against the same route under plain uvicorn.

The route is examples/shop-api's ``/api/health`` (a sync ``handler``). The
peer is that very handler behind a Starlette endpoint under ``uvicorn
--workers 1`` (a region serves a deployment with one worker process), once
as a ``def`` endpoint (Starlette runs it in a thread, as a region runs sync
handlers) and once as an ``async def`` one (inline on the event loop), in the
same run. Everything is on loopback and stops by itself.

Groups (see README, "Performance"):
- serve-keepalive: one GET on a kept-alive connection (goal ≤ 1 ms plus the
  handler's own time: ``test_handler_alone`` calls it in-process).
- serve-fresh-connection: one GET on a new connection.
- serve-throughput: ``wrk -t2 -c16 -d8s``; requests per second in each
  benchmark's extra_info (``requests_per_s``), ratios printed by
  benches/report.py (goal ≥ 0.8× uvicorn with the same worker count).
- serve-observe: ``wrk -t2 -c16 -d3s`` through one region with its metrics
  and request log turned on and off at run time, interleaved round by round
  with an off-vs-off control (goal: on ≥ 0.95× off; ``on_over_off`` and the
  control's ``off2_over_off`` in extra_info).

With VEGA_BENCH_SMOKE=1 each runs once, wrk for one second.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vega_dag
from benches.conftest import SMOKE
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet, request

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shop-api"
PATH = "/api/health"
ENV = {**os.environ, "PYTHONPATH": str(Path(vega_dag.__file__).resolve().parent.parent)}
WRK_SECONDS = 1 if SMOKE else 8
WRK_ROUNDS = 1 if SMOKE else 3
WRK = ["-t2", "-c16", f"-d{WRK_SECONDS}s"]

#: The peer: the example's own handler, rendered as the region's runtime does.
REFERENCE_APP = """
import json
import sys

sys.path.insert(0, {root!r})

from api.health.index import handler
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


def health(request):
    return Response(json.dumps(handler(request)).encode(), media_type="application/json")


async def health_async(request):
    return Response(json.dumps(handler(request)).encode(), media_type="application/json")


app = Starlette(routes=[Route("/api/health", health), Route("/async/api/health", health_async)])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_answering(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if request(url, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve") / "shop-api"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".vega", "__pycache__"))
    return root


@pytest.fixture(scope="module")
def region(project: Path):
    """The URL of a one-region fleet serving the example (metrics and request log on)."""
    yield from _one_region(project)


def _one_region(project: Path, extra: str = ""):
    text = (project / "pyproject.toml").read_text()
    text = text.replace('waves = [["fra"], ["iad", "sfo", "lhr"], ["*"]]', 'waves = [["fra"]]')
    text = text.replace("[tool.vega.rollout]", "[tool.vega.rollout]\nregions = 1")
    (project / "pyproject.toml").write_text(text + extra)
    cli = [sys.executable, "-c", "from vega_dag.cli import main; main()"]
    proc = subprocess.run(
        [*cli, "deploy", "-q", str(project)], env=ENV, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    fleet = LocalFleet(load_config(project))
    try:
        (info,) = fleet.regions()
        _wait_answering(info.url + PATH)
        yield info.url
    finally:
        fleet.down()


@pytest.fixture(scope="module")
def uvicorn_url(project: Path, tmp_path_factory: pytest.TempPathFactory):
    """The URL of ``uvicorn --workers 1`` serving the same handler."""
    app_dir = tmp_path_factory.mktemp("reference")
    (app_dir / "reference_app.py").write_text(REFERENCE_APP.format(root=str(project)))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "reference_app:app", "--app-dir", str(app_dir),
         "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
        env=ENV,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_answering(url + PATH)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        pytest.fail("wrk is not installed: run `make bench-deps`")
    return path


def _kept_alive(benchmark, url: str, prefix: str = "") -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def get() -> None:
        conn.request("GET", prefix + PATH)
        response = conn.getresponse()
        response.read()
        assert response.status == 200

    get()  # the connection is open before the first timed request
    try:
        if SMOKE:
            benchmark.pedantic(get, rounds=1, iterations=1)
        else:
            benchmark.pedantic(get, rounds=300, iterations=1, warmup_rounds=20)
    finally:
        conn.close()


def _fresh(benchmark, url: str) -> None:
    def get() -> None:
        assert request(url + PATH, timeout=10)[0] == 200

    get()
    benchmark.pedantic(get, rounds=1 if SMOKE else 200, iterations=1)


def _throughput(benchmark, wrk: str, url: str) -> None:
    rates: list[float] = []

    def run() -> None:
        out = subprocess.run(
            [wrk, *WRK, url + PATH], capture_output=True, text=True, timeout=WRK_SECONDS + 30
        )
        assert out.returncode == 0, out.stderr
        assert "Non-2xx" not in out.stdout and "Socket errors" not in out.stdout, out.stdout
        rates.append(float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout).group(1)))

    benchmark.pedantic(run, rounds=WRK_ROUNDS, iterations=1)
    benchmark.extra_info["requests_per_s"] = round(sorted(rates)[len(rates) // 2], 1)
    benchmark.extra_info["wrk"] = " ".join(WRK)


@pytest.mark.benchmark(group="serve-keepalive")
def test_region_kept_alive(benchmark, region: str) -> None:
    _kept_alive(benchmark, region)


@pytest.mark.benchmark(group="serve-keepalive")
def test_uvicorn_kept_alive(benchmark, uvicorn_url: str) -> None:
    _kept_alive(benchmark, uvicorn_url)


@pytest.mark.benchmark(group="serve-keepalive")
def test_uvicorn_async_kept_alive(benchmark, uvicorn_url: str) -> None:
    _kept_alive(benchmark, uvicorn_url, "/async")


@pytest.mark.benchmark(group="serve-keepalive")
def test_handler_alone(benchmark, project: Path) -> None:
    """The route's own time: its handler called and the answer rendered, in this process."""
    sys.path.insert(0, str(project))
    try:
        from api.health.index import handler  # type: ignore[import-not-found]

        benchmark(lambda: json.dumps(handler(None)).encode())
    finally:
        sys.path.remove(str(project))
        for name in [m for m in sys.modules if m.split(".")[0] in ("api", "lib")]:
            del sys.modules[name]


@pytest.mark.benchmark(group="serve-fresh-connection")
def test_region_fresh_connection(benchmark, region: str) -> None:
    _fresh(benchmark, region)


@pytest.mark.benchmark(group="serve-fresh-connection")
def test_uvicorn_fresh_connection(benchmark, uvicorn_url: str) -> None:
    _fresh(benchmark, uvicorn_url)


@pytest.mark.benchmark(group="serve-throughput")
def test_region_wrk(benchmark, wrk: str, region: str) -> None:
    _throughput(benchmark, wrk, region)


@pytest.mark.benchmark(group="serve-throughput")
def test_uvicorn_wrk(benchmark, wrk: str, uvicorn_url: str) -> None:
    _throughput(benchmark, wrk, uvicorn_url)


@pytest.mark.benchmark(group="serve-throughput")
def test_uvicorn_async_wrk(benchmark, wrk: str, uvicorn_url: str) -> None:
    _throughput(benchmark, wrk, uvicorn_url + "/async")


def _worker_pid(url: str) -> int:
    """The pid of the worker serving ``url``'s region (its only loaded one, after one deploy)."""
    status = json.loads(request(url + "/__vega/status")[2])
    (pid,) = [w["pid"] for w in status["workers"] if w["ready"]]
    return pid


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _set_observe(url: str, on: bool) -> None:
    """Metrics and request log on or off in the running region (``POST /__vega/observe``)."""
    body = json.dumps({"metrics": on, "request_log": on}).encode()
    status, _, answer, _ = request(url + "/__vega/observe", "POST", body, timeout=10)
    assert status == 200, answer


#: The legs of one round: "on", and "off" twice (the second is the A/A control).
LEGS = ("on", "off", "off2")
#: Every order of the legs, one per round in turn: no leg always runs first or after another.
ORDERS = list(itertools.permutations(LEGS))
OBSERVE_WRK = ["-t2", "-c16", "-d1s" if SMOKE else "-d3s"]


@pytest.mark.benchmark(group="serve-observe")
def test_region_observe_cost_wrk(benchmark, wrk: str, region: str) -> None:
    """One region, its metrics and request log turned on and off at run time, wrk on each.

    Each round runs three legs in one of the six orders: on, off, and off
    again (the A/A control). The figures are the medians over rounds of each
    round's on/off and off2/off ratios: the same region, worker and port
    every time, so what differs within a round is the recording and the
    noise, and the control shows how big the noise is.
    """
    rates: dict[str, list[float]] = {leg: [] for leg in LEGS}
    cpu: dict[str, list[float]] = {leg: [] for leg in LEGS}
    worker = _worker_pid(region)

    def leg(side: str) -> None:
        _set_observe(region, side == "on")
        before = _cpu_seconds(worker)
        out = subprocess.run(
            [wrk, *OBSERVE_WRK, region + PATH], capture_output=True, text=True, timeout=60
        )
        used = _cpu_seconds(worker) - before
        assert out.returncode == 0, out.stderr
        assert "Non-2xx" not in out.stdout and "Socket errors" not in out.stdout, out.stdout
        rate = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
        count = re.search(r"(\d+) requests in", out.stdout)
        assert rate is not None and count is not None, out.stdout
        rates[side].append(float(rate.group(1)))
        cpu[side].append(used / int(count.group(1)) * 1e6)

    def run() -> None:
        for side in ORDERS[len(rates["on"]) % len(ORDERS)]:
            leg(side)

    rounds = 1 if SMOKE else int(os.environ.get("VEGA_BENCH_OBSERVE_ROUNDS", "12"))
    try:
        benchmark.pedantic(run, rounds=rounds, iterations=1)
    finally:
        _set_observe(region, True)  # as the other rows of this module expect it
    assert _worker_pid(region) == worker  # one worker throughout: nothing restarted

    def median_ratio(values: dict[str, list[float]], top: str, bottom: str) -> float:
        return statistics.median(a / b for a, b in zip(values[top], values[bottom], strict=True))

    # Goal ≥ 0.95: metrics and request log cost at most 5% of the throughput.
    benchmark.extra_info["on_over_off"] = round(median_ratio(rates, "on", "off"), 3)
    # The noise floor: the same setting (off) twice in one round.
    benchmark.extra_info["off2_over_off"] = round(median_ratio(rates, "off2", "off"), 3)
    for side in LEGS:
        benchmark.extra_info[f"requests_per_s_{side}"] = round(statistics.median(rates[side]), 1)
    # The worker's CPU time per request: what the load of a shared machine disturbs least.
    benchmark.extra_info["worker_cpu_on_over_off"] = round(median_ratio(cpu, "on", "off"), 3)
    benchmark.extra_info["worker_cpu_off2_over_off"] = round(median_ratio(cpu, "off2", "off"), 3)
    for side in LEGS:
        benchmark.extra_info[f"worker_cpu_us_per_request_{side}"] = round(
            statistics.median(cpu[side]), 1
        )
    benchmark.extra_info["rounds"] = {side: rates[side] for side in LEGS}
    benchmark.extra_info["wrk"] = " ".join(OBSERVE_WRK)


def _observing_host(log: Path):
    """A worker's WorkerHost around a minimal route, as the front's ``serve`` sets it up."""
    from vega_dag.regions.serving import WorkerHost

    async def route(scope: dict, receive, send) -> None:
        scope["vega.route"] = PATH  # as the router names the pattern it matched
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"ok": true}'})  # fmt: skip

    host = WorkerHost(route)

    def observe(on: bool) -> None:
        host.on_message(
            {"op": "serve", "region": "fra", "deployment": "dpl_bench", "log": str(log),
             "observe": {"metrics": on, "request_log": on}},
            b"",
            None,
        )  # fmt: skip

    return host, observe


@pytest.mark.benchmark(group="serve-observe")
def test_observe_cost_in_process(benchmark, tmp_path: Path) -> None:
    """The worker's own CPU time per request with metrics and request log on, and off.

    The route answers at once, so what is left is the worker's wrapper:
    request id, the stamped headers, the counts and the log record (its
    buffered writes included). In process, interleaved: the shared machine's
    load disturbs this far less than wrk, and ``on_minus_off_us`` over wrk's
    ``worker_cpu_us_per_request_off`` is the share of a real request.
    """
    import asyncio

    count = 200 if SMOKE else 20_000
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    headers = [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    async def main() -> None:
        host, observe = _observing_host(tmp_path / "fra.jsonl")

        async def side(name: str) -> None:
            observe(name == "on")
            started = time.process_time()
            for _ in range(count):
                scope = {"type": "http", "method": "GET", "path": PATH, "headers": headers}
                await host(scope, receive, send)
            cpu[name].append((time.process_time() - started) / count * 1e6)

        def sides() -> list[str]:
            return ["on", "off"] if len(cpu["on"]) % 2 == 0 else ["off", "on"]

        for _ in range(1 if SMOKE else 9):
            for name in sides():
                await side(name)
        host.close()

    benchmark.pedantic(lambda: asyncio.run(main()), rounds=1, iterations=1)
    on, off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    benchmark.extra_info["cpu_us_per_request_on"] = round(on, 2)
    benchmark.extra_info["cpu_us_per_request_off"] = round(off, 2)
    benchmark.extra_info["on_minus_off_us"] = round(on - off, 2)
    benchmark.extra_info["requests_per_side"] = count
