"""Metrics and request logs of real regions, under traffic from wrk (loopback, bounded in time)."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.rollout.helpers import get, stop_fleet, vega, vega_json, write_project
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet, fleet_dir
from vega_dag.regions.request_log import FLUSH_SECONDS, log_path, records

OBSERVE = """
[tool.vega.observe]
log_max_bytes = 4096
log_backups = 2
"""
#: Fails only when asked to (the gate's probes pass).
EXTRA = {
    "api/boom.py": (
        "def handler(request):\n"
        "    if request.query.get('fail'):\n"
        "        raise RuntimeError('boom')\n"
        "    return {'ok': True}\n"
    )
}
VEGA_DAG = str(Path(sys.executable).parent / "vega-dag")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory):
    """(project, deployment, region → URL) of a deployed 2-region project; stopped at the end."""
    root = write_project(tmp_path_factory.mktemp("observe") / "proj", regions=2, extra=EXTRA)
    with open(root / "pyproject.toml", "a") as f:
        f.write(OBSERVE)
    try:
        out = vega_json("deploy", str(root))
        urls = {r.name: r.url for r in LocalFleet(load_config(root)).regions()}
        yield root, out["deployment"], urls
    finally:
        stop_fleet(root)


def wrk(url: str, seconds: int = 1) -> int:
    """Requests wrk completed against ``url`` in ``seconds`` (one thread, two connections)."""
    binary = shutil.which("wrk")
    if binary is None:
        pytest.fail("wrk is not installed (make test-deps installs it)")
    out = subprocess.run(
        [binary, "-t1", "-c2", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 20,
    )
    assert out.returncode == 0, out.stderr
    return int(re.search(r"(\d+) requests in", out.stdout).group(1))


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    status, _, body = get(url, "/__vega/metrics")
    assert status == 200, body
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_logged(root: Path, region: str, request_id: str, timeout: float = 10.0) -> dict:
    fleet = fleet_dir(load_config(root))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in records(fleet, [region]):
            if record["request_id"] == request_id:
                return record
        time.sleep(0.1)
    raise AssertionError(f"no record of {request_id} in {region}'s request log")


def test_metrics_name_route_deployment_and_status_class(deployed) -> None:
    root, deployment, urls = deployed
    sent = wrk(urls["fra"] + "/api/items/7")
    assert sent > 0
    assert get(urls["fra"], "/api/boom?fail=1")[0] == 500
    assert get(urls["fra"], "/nowhere")[0] == 404

    samples = scrape(urls["fra"])
    ok = dict(region="fra", deployment=deployment, route="/api/items/{id}", status_class="2xx")
    # wrk's requests, and the gate's probes before them.
    assert sample(samples, "vega_requests_total", **ok) >= sent
    boom = dict(region="fra", deployment=deployment, route="/api/boom", status_class="5xx")
    assert sample(samples, "vega_requests_total", **boom) >= 1
    missing = dict(region="fra", deployment=deployment, route="(none)", status_class="4xx")
    assert sample(samples, "vega_requests_total", **missing) == 1
    latency = dict(region="fra", deployment=deployment, route="/api/items/{id}")
    count = sample(samples, "vega_request_duration_seconds_count", **latency)
    assert count == sample(samples, "vega_request_duration_seconds_bucket", **latency, le="+Inf")
    assert count >= sent
    # The front's own: its pointer's generation and the worker it loaded.
    pointer = vega_json("status", str(root))["regions"][0]
    assert pointer["name"] == "fra"
    generation = sample(samples, "vega_pointer_generation", region="fra")
    assert generation == pointer["generation"]
    assert sample(samples, "vega_worker_loads_total", region="fra", outcome="loaded") >= 1
    assert sample(samples, "vega_worker_failures_total", region="fra") == 0
    # Another region counts its own traffic only.
    other = scrape(urls["iad"])
    assert sample(other, "vega_requests_total", **{**ok, "region": "iad"}) < sent


def test_request_ids_are_honoured_or_made(deployed) -> None:
    _, _, urls = deployed
    _, headers, _ = _request(urls["fra"] + "/api", {"X-Request-Id": "given-123"})
    assert headers["x-request-id"] == "given-123"
    made = {_request(urls["fra"] + "/api", {})[1]["x-request-id"] for _ in range(3)}
    assert len(made) == 3 and all(made)


def _request(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def test_request_log_records_and_rotation(deployed) -> None:
    root, deployment, urls = deployed
    wrk(urls["iad"] + "/api/items/3")
    _request(urls["iad"] + "/api/items/9?x=1", {"X-Request-Id": "log-check-1"})
    record = wait_logged(root, "iad", "log-check-1")
    assert record["region"] == "iad"
    assert record["deployment"] == deployment
    assert record["route"] == "/api/items/{id}"
    assert record["path"] == "/api/items/9"
    assert record["method"] == "GET"
    assert record["status"] == 200
    assert 0 < record["duration_ms"] < 5000
    assert record["ts"] == pytest.approx(time.time(), abs=30)
    # wrk's second of traffic is past 4 KiB twice over: rotated, two backups kept, none beyond.
    path = log_path(fleet_dir(load_config(root)), "iad")
    assert Path(f"{path}.1").exists() and Path(f"{path}.2").exists()
    assert not Path(f"{path}.3").exists()
    for p in (path, Path(f"{path}.1"), Path(f"{path}.2")):
        assert p.stat().st_size < 4096 + 256 * 400  # rotated after the write that passed it


def test_logs_command_filters_and_errors(deployed) -> None:
    root, deployment, urls = deployed
    _request(urls["fra"] + "/api/boom?fail=1", {"X-Request-Id": "boom-1"})
    wait_logged(root, "fra", "boom-1")
    proc = vega("logs", str(root), "--region", "fra", "--route", "/api/boom", "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines and {r["route"] for r in lines} == {"/api/boom"}
    assert 500 in {r["status"] for r in lines}
    assert "boom-1" in {r["request_id"] for r in lines}
    assert [r["ts"] for r in lines] == sorted(r["ts"] for r in lines)
    # The readable form, and a deployment no record names.
    proc = vega("logs", str(root), "--region", "fra", "--route", "/api/boom")
    assert f"fra {deployment} GET /api/boom 500 " in proc.stdout
    proc = vega("logs", str(root), "--deployment", "dpl_none")
    assert proc.returncode == 0 and proc.stdout == ""
    proc = vega("logs", str(root), "--region", "xyz")
    assert proc.returncode == 2
    assert "unknown region 'xyz'" in proc.stderr and "Traceback" not in proc.stderr


def test_logs_follow_prints_new_records(deployed) -> None:
    root, deployment, urls = deployed
    follower = subprocess.Popen(
        [VEGA_DAG, "logs", str(root), "--follow", "--json", "--region", "iad"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)  # it has opened the log (and looks only at what comes after)
        _request(urls["iad"] + "/api", {"X-Request-Id": "follow-1"})
        _request(urls["fra"] + "/api", {"X-Request-Id": "follow-other-region"})
        deadline = time.monotonic() + 10 + FLUSH_SECONDS
        assert follower.stdout is not None
        seen = []
        while time.monotonic() < deadline:
            record = json.loads(follower.stdout.readline())
            seen.append(record["request_id"])
            if record["request_id"] == "follow-1":
                assert record["region"] == "iad" and record["deployment"] == deployment
                break
        assert "follow-1" in seen and "follow-other-region" not in seen
    finally:
        follower.terminate()
        follower.wait(10)


def test_status_reports_the_last_minute(deployed) -> None:
    root, _, urls = deployed
    for _ in range(3):
        assert get(urls["fra"], "/api/boom?fail=1")[0] == 500
    rows = {r["name"]: r for r in vega_json("status", str(root))["regions"]}
    traffic = rows["fra"]["traffic"]
    assert traffic["requests"] > 0 and traffic["errors"] >= 3
    assert 0 < traffic["error_rate"] < 1
    assert traffic["p99_ms"] is not None and traffic["p99_ms"] > 0
    assert 0 < traffic["window_s"] <= 120
    table = vega("status", str(root)).stdout
    assert "p99" in table and "err" in table


def test_metrics_off_and_the_log_flushed_when_the_region_stops(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", regions=1)
    with open(root / "pyproject.toml", "a") as f:
        f.write("\n[tool.vega.observe]\nmetrics = false\n")
    try:
        vega_json("deploy", str(root))
        (info,) = LocalFleet(load_config(root)).regions()
        assert get(info.url, "/__vega/metrics")[0] == 404
        assert vega_json("status", str(root))["regions"][0]["traffic"] is None
        status, headers, _ = _request(info.url + "/api", {"X-Request-Id": "last-words"})
        assert status == 200 and headers["x-request-id"] == "last-words"
    finally:
        stop_fleet(root)  # at once: the record is still in the worker's buffer
    fleet = fleet_dir(load_config(root))
    assert "last-words" in {r["request_id"] for r in records(fleet, ["fra"])}


def test_nothing_recorded_when_both_are_off() -> None:
    import asyncio

    from vega_dag.regions.serving import WorkerHost

    async def main() -> None:
        host = WorkerHost(lambda scope, receive, send: None)  # type: ignore[arg-type,return-value]
        host.on_message(
            {"op": "serve", "region": "fra", "deployment": "dpl_x", "log": "/nonexistent/x",
             "observe": {"metrics": False, "request_log": False}},
            b"",
            None,
        )  # fmt: skip
        assert host.observer is None and host.deployment == "dpl_x"

    asyncio.run(main())


def _set_observe(url: str, **changes: bool) -> dict:
    from vega_dag.regions.fleet import request

    status, _, body, _ = request(
        url + "/__vega/observe", "POST", json.dumps(changes).encode(), timeout=10
    )
    assert status == 200, body
    return json.loads(body)


def test_observe_turned_off_and_on_at_run_time(deployed) -> None:
    """``POST /__vega/observe``: the region records what it says from the next request on."""
    root, deployment, urls = deployed
    url = urls["iad"]
    route = dict(region="iad", deployment=deployment, route="/api/items/{id}", status_class="2xx")
    try:
        assert _set_observe(url, metrics=False, request_log=False)["observe"]["metrics"] is False
        assert get(url, "/__vega/metrics")[0] == 404
        _, headers, _ = _request(url + "/api/items/1", {"X-Request-Id": "while-off"})
        assert "x-request-id" not in headers  # nothing recorded, nothing stamped
        _set_observe(url, metrics=True, request_log=True)
        before = sample(scrape(url), "vega_requests_total", **route)
        _request(url + "/api/items/2", {"X-Request-Id": "back-on"})
        # Counted again, from the counts the worker kept while off.
        assert sample(scrape(url), "vega_requests_total", **route) == before + 1
        wait_logged(root, "iad", "back-on")
        logged = {r["request_id"] for r in records(fleet_dir(load_config(root)), ["iad"])}
        assert "while-off" not in logged
        # Only the log off: counted, not logged.
        _set_observe(url, request_log=False)
        _request(url + "/api/items/3", {"X-Request-Id": "log-off"})
        assert sample(scrape(url), "vega_requests_total", **route) == before + 2
    finally:
        _set_observe(url, metrics=True, request_log=True)
    time.sleep(FLUSH_SECONDS + 0.5)
    logged = {r["request_id"] for r in records(fleet_dir(load_config(root)), ["iad"])}
    assert "log-off" not in logged


def test_observe_endpoint_refuses_what_it_does_not_know(deployed) -> None:
    from vega_dag.regions.fleet import request

    _, _, urls = deployed
    for body in (b"{}", b'{"metrics": "no"}', b'{"sampling": true}', b"[1]", b"nope"):
        status, _, answer, _ = request(urls["fra"] + "/__vega/observe", "POST", body, timeout=10)
        assert status == 400, body
        assert json.loads(answer)["error"] == "expected {metrics: bool, request_log: bool}"


def test_a_worker_follows_observe_changes(tmp_path: Path) -> None:
    import asyncio

    from vega_dag.regions.serving import WorkerHost

    log = tmp_path / "fra.jsonl"

    def tell(host: WorkerHost, op: str, **observe: bool) -> None:
        host.on_message(
            {"op": op, "region": "fra", "deployment": "dpl_x", "log": str(log),
             "observe": {"metrics": True, "request_log": True, **observe}},
            b"",
            None,
        )  # fmt: skip

    async def main() -> None:
        host = WorkerHost(lambda scope, receive, send: None)  # type: ignore[arg-type,return-value]
        tell(host, "serve", metrics=False, request_log=False)
        assert host.observer is None
        tell(host, "observe", request_log=False)
        observer = host.observer
        assert observer is not None and observer.counting and observer.log is None
        observer.record("dpl_x", "/api", 200, 0.001, {}, "a")
        tell(host, "observe", metrics=False, request_log=False)
        assert host.observer is None
        tell(host, "observe")
        assert host.observer is observer and observer.log is not None
        observer.record("dpl_x", "/api", 200, 0.001, {"method": "GET", "path": "/api"}, "b")
        # The counts went on from where they were; the log holds what came after it was on.
        assert sum(observer._cells["dpl_x", "/api", 2][:-1]) == 2
        host.close()
        assert [json.loads(line)["request_id"] for line in log.read_text().splitlines()] == ["b"]

    asyncio.run(main())
