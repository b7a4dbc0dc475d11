"""The bake's statistics, log window and verdicts, without regions (rollout.bake)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from vega_dag.config import BakeConfig
from vega_dag.rollout.bake import (
    BakeContext,
    LogRecord,
    bake,
    judge,
    mann_whitney_greater,
    select_baseline,
    two_proportions_greater,
    watch,
    window_records,
)


def test_mann_whitney_matches_the_textbook_example() -> None:
    # scipy's documented example (males vs females, asymptotic with continuity
    # correction): U=17, two-sided p=0.11134688653314041, so one-sided half of it.
    u, p = mann_whitney_greater([19, 22, 16, 29, 24], [20, 11, 17, 12])
    assert u == 17
    assert p == pytest.approx(0.11134688653314041 / 2, rel=1e-9)


def test_mann_whitney_u_counts_pairs_and_ties_and_agrees_with_a_permutation_test() -> None:
    rng = random.Random(7)
    a = [rng.choice(range(12)) + 1 for _ in range(40)]  # many ties
    b = [rng.choice(range(12)) for _ in range(50)]
    u, p = mann_whitney_greater(a, b)
    assert u == sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    # An independent check of the tie-corrected variance: the permutation p-value.
    pooled = a + b
    count = 0
    trials = 3000
    for _ in range(trials):
        rng.shuffle(pooled)
        x, y = pooled[: len(a)], pooled[len(a) :]
        if sum((i > j) + 0.5 * (i == j) for i in x for j in y) >= u:
            count += 1
    assert p == pytest.approx(count / trials, abs=0.02)
    # Equal samples: no evidence; all values equal: p is 1.
    assert mann_whitney_greater([1.0, 2.0], [1.0, 2.0])[1] > 0.5
    assert mann_whitney_greater([3.0] * 5, [3.0] * 5)[1] == 1.0


def test_two_proportions() -> None:
    z, p = two_proportions_greater(30, 100, 20, 100)
    assert z == pytest.approx(1.63299, abs=1e-4)
    assert p == pytest.approx(0.05124, abs=1e-4)
    assert two_proportions_greater(0, 100, 0, 100) == (0.0, 1.0)


def records(deployment: str, route: str, durations: list[float], errors: int = 0) -> list:
    return [
        LogRecord(1.0, "fra", deployment, route, 500 if i < errors else 200, d)
        for i, d in enumerate(durations)
    ]


def test_judge_latency_needs_significance_and_a_real_margin() -> None:
    rng = random.Random(1)
    settings = BakeConfig(bake_s=1, min_requests=100)
    base = records("old", "/a", [5 + rng.random() for _ in range(300)])
    slow = records("new", "/a", [9 + rng.random() for _ in range(300)])
    new, old, figures, problems, enough = judge(slow, base, settings, ["/a"])
    assert enough and figures["latency_p"] < 1e-6
    assert new.p50_ms > 9 and old.p50_ms < 6
    assert problems and "latency regressed" in problems[0] and "U=" in problems[0]
    # 0.2 ms slower on 5 ms is significant with 300 each, and within the margin.
    close = records("new", "/a", [5.2 + rng.random() for _ in range(300)])
    assert judge(close, base, settings, ["/a"])[3] == []
    same = records("new", "/a", [5 + rng.random() for _ in range(300)])
    assert judge(same, base, settings, ["/a"])[3] == []


def test_judge_errors_and_too_few_and_routes() -> None:
    settings = BakeConfig(bake_s=1, min_requests=50)
    base = records("old", "/a", [1.0] * 200, errors=1)
    bad = records("new", "/a", [1.0] * 200, errors=20)
    problems = judge(bad, base, settings, ["/a"])[3]
    assert problems and "error rate regressed: 10.00% vs 0.50%" in problems[0]
    # Another route's requests are not judged when the changed ones are logged.
    other = records("new", "/b", [1.0] * 200, errors=200)
    assert judge(records("new", "/a", [1.0] * 60) + other, base, settings, ["/a"])[3] == []
    # Too few on either side: no verdict.
    assert judge(records("new", "/a", [1.0] * 10), base, settings, ["/a"])[4] is False
    assert judge(bad, base[:10], settings, ["/a"])[4] is False
    # Without a baseline, only the absolute error rate.
    problems = judge(bad, None, settings, ["/a"])[3]
    assert problems and "no baseline" in problems[0]


def test_baseline_selection() -> None:
    assert select_baseline(["fra"], ["iad", "sfo"], 100.0, 5.0).regions == ("iad", "sfo")
    before = select_baseline(["iad"], [], 100.0, 5.0)
    assert before.kind == "before" and before.window == (95.0, 100.0)
    assert select_baseline(["iad"], [], None, 5.0) is None


def write_log(
    fleet: Path, region: str, rows: list[tuple[float, str, int, float]], partial: bool = False
) -> None:
    path = fleet / "logs" / "requests" / f"{region}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for ts, deployment, status, ms in rows:
            record = {
                "ts": ts,
                "region": region,
                "deployment": deployment,
                "method": "GET",
                "path": "/a",
                "route": "/a",
                "status": status,
                "duration_ms": ms,
                "request_id": "x",
            }
            f.write(json.dumps(record) + "\n")
        if partial:
            f.write('{"ts": 200.5, "partial')  # a line still being written


def test_window_records_reads_back_across_a_rotation(tmp_path: Path) -> None:
    # 20,000 lines of old traffic (more than one block), then the window.
    write_log(tmp_path, "fra", [(float(i) / 100, "old", 200, 1.0) for i in range(20000)])
    path = tmp_path / "logs" / "requests" / "fra.jsonl"
    path.rename(path.with_name("fra.jsonl.1"))
    rows = [(200.0 + i / 100, "new", 200, 2.0) for i in range(100)]
    write_log(tmp_path, "fra", rows, partial=True)
    got = window_records(tmp_path, ["fra"], 199.5, 201.0)
    assert [r.deployment for r in got].count("old") == 50  # 199.5 … 199.99
    assert [r.deployment for r in got].count("new") == 100
    assert window_records(tmp_path, ["nowhere"], 0, 1) == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def context(tmp_path: Path, clock: Clock, **settings: object) -> BakeContext:
    return BakeContext(
        tmp_path,
        "new",
        BakeConfig(**settings),  # type: ignore[arg-type]
        flush=lambda names: None,
        clock=clock.time,
        sleep=clock.sleep,
    )


def test_too_few_fails_or_extends_up_to_the_limit(tmp_path: Path) -> None:
    clock = Clock()
    write_log(tmp_path, "fra", [(1000.5 + i / 100, "new", 200, 1.0) for i in range(20)])
    write_log(tmp_path, "iad", [(1000.5 + i / 100, "old", 200, 1.0) for i in range(200)])
    ctx = context(tmp_path, clock, bake_s=2, min_requests=50, too_few="fail")
    verdict = bake(ctx, 0, ["fra"], ["iad"], ["/a"], 2.0)
    assert not verdict.passed and verdict.rule == "fail"
    assert "too few requests to judge in 2.0s: new 20 of at least 50" in verdict.problems[0]
    # Extend: the window grows in 1 s steps up to max_bake_s, then fails.
    clock.now = 2000.0
    ctx = context(tmp_path, clock, bake_s=2, min_requests=50, too_few="extend", max_bake_s=5)
    verdict = bake(ctx, 0, ["fra"], ["iad"], ["/a"], 2.0)
    assert verdict.rule == "extend, then fail" and verdict.seconds == pytest.approx(5.0)
    assert verdict.extended_s == pytest.approx(3.0)
    # Traffic that arrives during the extension is judged.
    clock.now = 3000.0
    write_log(tmp_path, "fra", [(3002.5 + i / 1000, "new", 200, 1.0) for i in range(100)])
    write_log(tmp_path, "iad", [(3000.5 + i / 1000, "old", 200, 1.0) for i in range(100)])
    verdict = bake(ctx, 0, ["fra"], ["iad"], ["/a"], 2.0)
    assert verdict.passed and verdict.rule == "extend" and verdict.seconds == pytest.approx(3.0)
    assert verdict.to_json()["new"]["requests"] == 100


def test_watch_judges_against_the_traffic_before_the_deploy(tmp_path: Path) -> None:
    clock = Clock()
    rng = random.Random(3)
    # Before the first move at 1000: the old deployment, 5 ms, no errors; then
    # the new one, 20 ms (not compared with another window: bounded by p99_ms),
    # and one request in 10 failing.
    write_log(tmp_path, "fra", [(990 + i / 50, "old", 200, 5 + rng.random()) for i in range(500)])
    rows = [(1000 + i / 50, "new", 500 if i % 10 == 0 else 200, 20.0) for i in range(500)]
    write_log(tmp_path, "fra", rows)
    ctx = context(tmp_path, clock, bake_s=2, watch_s=6, min_requests=20)
    ctx.first_move = 1000.0
    verdicts = watch(ctx, ["fra"], ["/a"])
    assert len(verdicts) == 1 and not verdicts[0].passed
    verdict = verdicts[0]
    assert verdict.baseline.kind == "before" and verdict.u is None
    (problem,) = verdict.problems  # the first window's 101 requests, 11 failed
    assert problem.startswith("error rate regressed: 10.89% vs 0.00% (+10.89% > 1.00% allowed)")
    assert f"two-proportion z={verdict.z:.2f} p={verdict.errors_p:.3g} < 0.01" in problem
    # Latency against another window: only the gate's bound.
    clock.now = 1000.0
    ctx.p99_ms = 15.0
    assert "live p99 20ms > 15ms" in watch(ctx, ["fra"], ["/a"])[0].problems[0]


def test_watch_windows_and_a_quiet_one_joining_the_next(tmp_path: Path) -> None:
    clock = Clock()
    # Nothing in the first 2 s, then enough: one verdict over 4 s, then one over 2 s.
    write_log(tmp_path, "fra", [(998 + i / 100, "old", 200, 1.0) for i in range(200)])
    write_log(tmp_path, "fra", [(1002 + i / 100, "new", 200, 1.0) for i in range(400)])
    ctx = context(tmp_path, clock, bake_s=2, watch_s=6, min_requests=50)
    ctx.first_move = 1000.0
    verdicts = watch(ctx, ["fra"], ["/a"])
    assert [round(v.seconds, 3) for v in verdicts] == [4.0, 2.0]
    assert [v.passed for v in verdicts] == [True, True], [v.problems for v in verdicts]


def test_the_bake_reads_the_regions_logs_with_their_own_names(tmp_path: Path) -> None:
    from vega_dag.regions import request_log, serving
    from vega_dag.rollout import bake as module

    assert module.NO_ROUTE == serving.NO_ROUTE
    assert module.FLUSH_SECONDS == request_log.FLUSH_SECONDS
    logs = request_log.log_dir(tmp_path)
    logs.mkdir(parents=True)
    for name in ("fra.jsonl", "fra.jsonl.1", "fra.jsonl.2", "fra.jsonl.lock", "iad.jsonl"):
        (logs / name).write_text("")
    assert module.region_files(tmp_path, "fra") == request_log.region_files(tmp_path, "fra")
    assert len(module.region_files(tmp_path, "fra")) == 3


def test_reading_a_bake_imports_neither_prometheus_client_nor_asyncio() -> None:
    """A deploy that bakes reads log files: the regions' serving stack is not its cost."""
    import subprocess
    import sys

    code = (
        "import sys; import vega_dag.rollout.bake; "
        "print(sorted(m for m in ('asyncio', 'prometheus_client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_window_records_bisects_lines_out_of_order_by_a_flush(tmp_path: Path) -> None:
    # Two workers' buffers of a second each, interleaved: times go back by up to 1 s.
    rows = []
    for second in range(0, 600, 2):
        rows += [(second + 1 + i / 100, "a", 200, 1.0) for i in range(100)]
        rows += [(second + i / 100, "b", 200, 1.0) for i in range(100)]
    write_log(tmp_path, "fra", rows)
    got = window_records(tmp_path, ["fra"], 300.0, 310.0)
    assert len(got) == sum(1 for ts, *_ in rows if 300.0 <= ts <= 310.0) == 1001
