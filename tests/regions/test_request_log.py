"""The request log's writer (buffered, rotated by size, several writers) and the live window."""

from __future__ import annotations

from pathlib import Path

import pytest

from vega_dag.regions.observe import BUCKETS, Window, quantile
from vega_dag.regions.request_log import RequestLogWriter, log_path, records, region_files


def record(i: int, writer: str) -> dict:
    return {"ts": float(i), "region": "fra", "deployment": writer, "route": "/r", "n": i}


def test_two_writers_rotate_one_file_by_size(tmp_path: Path) -> None:
    path = log_path(tmp_path, "fra")
    a = RequestLogWriter(path, max_bytes=4096, backups=2)
    b = RequestLogWriter(path, max_bytes=4096, backups=2)
    for i in range(400):
        (a if i % 2 else b).add(record(i, "a" if i % 2 else "b"))
        if i % 10 == 9:  # each flushes its own lines: a whole number of them, in one write
            a.flush()
            b.flush()
    a.close()
    b.close()
    files = region_files(tmp_path, "fra")
    assert [p.name for p in files] == ["fra.jsonl.2", "fra.jsonl.1", "fra.jsonl"]
    assert all(p.stat().st_size < 4096 + 1024 for p in files)
    kept = list(records(tmp_path, ["fra"]))
    numbers = [r["n"] for r in kept]
    # The newest records, none lost or doubled between rotations, in time order.
    assert numbers == list(range(400 - len(numbers), 400))
    assert len(numbers) > 100
    assert {r["deployment"] for r in kept} == {"a", "b"}


def test_no_backups_truncates(tmp_path: Path) -> None:
    path = log_path(tmp_path, "iad")
    writer = RequestLogWriter(path, max_bytes=4096, backups=0)
    for i in range(200):
        writer.add(record(i, "a"))
    writer.close()
    assert [p.name for p in region_files(tmp_path, "iad")] == ["iad.jsonl"]


def test_records_merge_regions_by_time_and_filter(tmp_path: Path) -> None:
    for region, numbers in (("fra", [1, 4, 5]), ("iad", [2, 3, 6])):
        writer = RequestLogWriter(log_path(tmp_path, region), 1 << 20, 1)
        for n in numbers:
            writer.add({**record(n, f"dpl_{n % 2}"), "region": region})
        writer.close()
    merged = list(records(tmp_path, ["fra", "iad"]))
    assert [r["n"] for r in merged] == [1, 2, 3, 4, 5, 6]
    assert [r["n"] for r in records(tmp_path, ["fra", "iad"], deployment="dpl_0")] == [2, 4, 6]
    assert list(records(tmp_path, ["fra"], route="/other")) == []


def cumulative(observations: list[float]) -> list[float]:
    out = [float(sum(1 for o in observations if o <= b)) for b in BUCKETS]
    return [*out, float(len(observations))]


def test_quantile_interpolates_within_a_bucket() -> None:
    assert quantile(0.99, cumulative([])) is None
    # 100 observations in (5 ms, 10 ms]: the p99 is 99% of the way through it.
    assert quantile(0.99, cumulative([0.007] * 100)) == pytest.approx(0.00995)
    assert quantile(0.99, cumulative([20.0] * 10)) == BUCKETS[-1]


def test_window_subtracts_a_sample_a_minute_old() -> None:
    window = Window()
    window.since = 0.0
    old = {(1, "dpl_a"): (100.0, 0.0, cumulative([0.001] * 100))}
    window.add(old, now=10.0)
    now = {(1, "dpl_a"): (150.0, 5.0, cumulative([0.001] * 100 + [0.2] * 50))}
    traffic = window.traffic(now, now=75.0)
    assert traffic["requests"] == 50 and traffic["errors"] == 5
    assert traffic["error_rate"] == 0.1
    assert 100 < traffic["p99_ms"] <= 250  # only the new, slow requests count
    assert traffic["window_s"] == 65.0
    assert traffic["by_deployment"]["dpl_a"]["requests"] == 50
    # A worker that appeared since (a new pid) counts from zero.
    fresh = {**now, (2, "dpl_b"): (7.0, 0.0, cumulative([0.001] * 7))}
    assert window.traffic(fresh, now=75.0)["by_deployment"]["dpl_b"]["requests"] == 7
