"""Live-traffic gates through real regions: traffic from wrk (loopback, bounded in time).

One 2-region fleet (canary fra, then iad) for the module; each test deploys a
variant of one route, /api/work, while wrk drives both regions, and checks
what the bake made of it: the printed or ``--json`` verdict, the pointers and
the history.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rollout.helpers import cli_env, stop_fleet, vega, vega_json, write_project
from vega_dag.config import BakeConfig, load_config
from vega_dag.regions.fleet import LocalFleet, request_many
from vega_dag.rollout.bake import WindowReader, judge, window_records

#: Answers after ``DELAY``. In "racy" mode it holds one of a pool of 4 (as a
#: database pool would): a request that finds all 4 taken fails. A gate's
#: probes are at most 4 in flight (rollout.probes), so they always pass. In
#: "flaky" mode one request in five with a query string fails: users send
#: them (wrk's ``?q=1``), the gate's probes of ``/api/work`` do not.
WORK = """\
import asyncio

from lib.mode import DELAY, MODE

busy = 0
served = 0


async def app(scope, receive, send):
    global busy, served
    busy += 1
    served += 1
    try:
        exhausted = busy > 4
        await asyncio.sleep(DELAY)
    finally:
        busy -= 1
    status = 500 if MODE == "racy" and exhausted else 200
    if MODE == "flaky" and scope["query_string"] and served % 5 == 0:
        status = 503
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": MODE.encode()})
"""
BAKE = """
[tool.vega.health.bake]
{settings}
"""


def set_mode(root: Path, mode: str, delay: float) -> None:
    (root / "lib" / "mode.py").write_text(f"MODE = {mode!r}\nDELAY = {delay!r}\n")


def set_bake(root: Path, settings: str) -> None:
    text = (root / "pyproject.toml").read_text().partition("\n[tool.vega.health.bake]")[0]
    (root / "pyproject.toml").write_text(text + BAKE.format(settings=settings))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    root = write_project(
        tmp_path_factory.mktemp("bake") / "proj", regions=2, extra={"api/work.py": WORK}
    )
    set_mode(root, "ok", 0.01)
    try:
        vega_json("deploy", str(root))
        urls = {r.name: r.url for r in LocalFleet(load_config(root)).regions()}
        yield root, urls
    finally:
        stop_fleet(root)


@contextlib.contextmanager
def traffic(urls: list[str], connections: int = 4, seconds: int = 40) -> Iterator[None]:
    """wrk at each URL's /api/work?q=1 (one thread), stopped on exit."""
    binary = shutil.which("wrk")
    if binary is None:
        pytest.fail("wrk is not installed (make test-deps installs it)")
    procs = [
        subprocess.Popen(
            [binary, "-t1", f"-c{connections}", f"-d{seconds}s", url + "/api/work?q=1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for url in urls
    ]
    try:
        time.sleep(0.5)  # connected and answering before the deploy starts
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def deploy_json(root: Path) -> tuple[int, dict]:
    proc = vega("deploy", str(root), "--json")
    return proc.returncode, json.loads(proc.stdout)


def serving(root: Path) -> dict[str, str]:
    return {r["name"]: r["deployment"] for r in vega_json("status", str(root))["regions"]}


def test_a_route_failing_only_under_concurrency_is_caught_by_the_bake(fleet) -> None:
    root, urls = fleet
    before = serving(root)
    set_mode(root, "racy", 0.01)
    set_bake(root, "bake_s = 2\nmin_requests = 30")
    # The baseline region has traffic all along; the canary gets more than 4
    # requests at once only after its gate's probes have passed.
    with traffic([urls["iad"]]):
        proc = subprocess.Popen(
            [sys.executable, "-c", "from vega_dag.cli import main; main()", "deploy", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**cli_env(), "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        out = []
        for line in proc.stdout:
            out.append(line)
            if "Canary passed" in line:
                break
        with traffic([urls["fra"]], connections=8):
            rest, err = proc.communicate(timeout=120)
    text = "".join(out) + rest + err
    assert proc.returncode == 1, text
    assert "✓ Canary passed in fra" in text  # the probes saw nothing wrong
    assert "error rate regressed" in text and "two-proportion z=" in text, text
    assert "↩ Rolled back 1 region(s) automatically" in text
    assert serving(root) == before
    latest = vega_json("history", str(root))[0]
    assert latest["status"] == "rolled-back"
    reasons = [e["reason"] for e in latest["events"]]
    back = [r for r in reasons if r.startswith("auto-rollback")]
    # Under load the canary can be slower as well: the error regression must be among the reasons.
    assert back and "error rate regressed" in back[0] and "baseline iad" in back[0], reasons


def test_a_slower_canary_fails_and_one_within_noise_passes(fleet) -> None:
    root, urls = fleet
    before = serving(root)
    set_bake(root, "bake_s = 2\nmin_requests = 30")
    with traffic(list(urls.values())):
        set_mode(root, "ok", 0.05)  # 5× the baseline's 10 ms
        code, out = deploy_json(root)
        assert code == 1, out
        assert out["status"] == "rolled-back"
        verdict = out["bakes"][0]
        assert verdict["wave"] == 0 and not verdict["passed"], verdict
        assert verdict["baseline"]["kind"] == "regions" and verdict["baseline"]["regions"] == [
            "iad"
        ]
        assert verdict["new"]["p50_ms"] > 40 and verdict["base"]["p50_ms"] < 30, verdict
        assert verdict["mann_whitney"]["p"] < 0.01 and verdict["mann_whitney"]["u"] > 0
        assert "latency regressed" in verdict["problems"][0]
        assert serving(root) == before

        set_mode(root, "same", 0.01)  # another version, as fast
        code, out = deploy_json(root)
        assert code == 0, out
        assert [b["passed"] for b in out["bakes"]] == [True, True], out["bakes"]
        first, last = out["bakes"]
        assert first["new"]["requests"] >= 30 and first["base"]["requests"] >= 30
        # The last wave has no region left on the old deployment: its own traffic before.
        assert last["baseline"]["kind"] == "before" and last["baseline"]["regions"] == ["iad"]
        assert first["seconds"] >= 2
        assert set(serving(root).values()) == {out["deployment"]}


def test_too_little_traffic_follows_the_configured_rule(fleet) -> None:
    root, _ = fleet
    before = serving(root)
    set_mode(root, "quiet", 0.01)
    set_bake(root, 'bake_s = 1\nmin_requests = 50\ntoo_few = "fail"')
    keys = [n["key"] for n in vega_json("plan", str(root))["nodes"]]
    assert keys[-5:] == ["gate:0", "bake:0", "promote:1", "gate:1", "bake:1"]
    code, out = deploy_json(root)
    assert code == 1 and out["status"] == "rolled-back", out
    verdict = out["bakes"][0]
    assert verdict["rule"] == "fail" and "too few requests" in verdict["problems"][0]
    assert serving(root) == before

    set_bake(root, 'bake_s = 1\nmin_requests = 50\ntoo_few = "extend"\nmax_bake_s = 2.5')
    code, out = deploy_json(root)
    assert code == 1, out
    verdict = out["bakes"][0]
    assert verdict["rule"] == "extend, then fail", verdict
    assert 2.5 <= verdict["seconds"] < 4 and verdict["extended_s"] >= 1.5
    assert serving(root) == before


def test_the_watch_after_the_last_wave_rolls_back_a_regression(fleet) -> None:
    root, urls = fleet
    before = serving(root)
    set_bake(root, "watch_s = 2\nmin_requests = 30")
    with traffic(list(urls.values())):
        set_mode(root, "flaky", 0.01)
        code, out = deploy_json(root)
    assert code == 1, out
    assert out["status"] == "rolled-back"
    assert [g["passed"] for g in out["gates"]] == [True, True]
    (verdict,) = out["bakes"]
    assert verdict["wave"] is None and verdict["baseline"]["kind"] == "before"
    assert verdict["baseline"]["regions"] == ["fra", "iad"]
    assert "error rate regressed" in verdict["problems"][0], verdict
    assert verdict["new"]["error_rate"] > 0.15 and verdict["two_proportions"]["p"] < 0.01
    assert {r["outcome"] for r in out["regions"]} == {"rolled-back"}
    assert serving(root) == before


def test_the_window_read_while_holding_is_what_the_logs_hold(fleet) -> None:
    """A bake's reader and the regions' log files: the same samples, the same verdict (wrk)."""
    root, urls = fleet
    fleet_dir = LocalFleet(load_config(root)).dir
    with traffic(list(urls.values()), seconds=10):
        since = time.time()
        judged = WindowReader(fleet_dir, ["fra"], since)
        others = WindowReader(fleet_dir, ["iad"], since)
        for _ in range(6):  # as a bake of 1.5 s reads while it holds
            time.sleep(0.25)
            judged.read()
            others.read()
        until = time.time()
        request_many([(url + "/__vega/flush", "POST", b"{}") for url in urls.values()])
        judged.read()
        others.read()
        new, base = judged.records(since, until), others.records(since, until)
        from_files = (
            window_records(fleet_dir, ["fra"], since, until),
            window_records(fleet_dir, ["iad"], since, until),
        )
    judged.close()
    others.close()

    def key(records: list) -> list[tuple]:
        return sorted(
            (r.ts, r.region, r.deployment, r.route, r.status, r.duration_ms) for r in records
        )

    assert len(new) > 30 and len(base) > 30
    assert (key(new), key(base)) == (key(from_files[0]), key(from_files[1]))
    settings = BakeConfig(bake_s=1.5, min_requests=30)
    assert judge(new, base, settings, ["/api/work"]) == judge(*from_files, settings, ["/api/work"])
