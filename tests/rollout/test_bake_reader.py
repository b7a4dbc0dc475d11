"""A bake reads its window while it holds (``rollout.bake.WindowReader``): what the files hold.

Each test writes a region's log as its workers would (lines appended, a line
cut mid-write, rotations), reads it a little at a time, and checks the
reader's window against ``window_records`` reading the files afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.rollout.test_bake_units import Clock, context, write_log
from vega_dag.regions.request_log import RequestLogWriter, log_path
from vega_dag.rollout.bake import LogRecord, WindowReader, bake, judge, window_records


def key(records: list[LogRecord]) -> list[tuple]:
    return sorted((r.ts, r.region, r.deployment, r.route, r.status, r.duration_ms) for r in records)


def rows(start: float, count: int, deployment: str = "new", step: float = 0.01) -> list[tuple]:
    return [
        (start + i * step, deployment, 500 if i % 7 == 0 else 200, 1.0 + i % 5)
        for i in range(count)
    ]


def rotate(fleet: Path, region: str, backups: int) -> None:
    """What RequestLogWriter._rotate does: ``.N-1`` → ``.N`` … current → ``.1``."""
    path = log_path(fleet, region)
    for n in range(backups - 1, 0, -1):
        if Path(f"{path}.{n}").exists():
            os.replace(f"{path}.{n}", f"{path}.{n + 1}")
    os.replace(path, f"{path}.1")


def test_the_reader_follows_a_log_as_it_is_written_and_rotated(tmp_path: Path) -> None:
    write_log(tmp_path, "fra", rows(0.0, 20000, "old"))  # more than one bisection step
    reader = WindowReader(tmp_path, ["fra"], 150.0)
    reader.read()
    path = log_path(tmp_path, "fra")
    write_log(tmp_path, "fra", rows(200.0, 300))
    with open(path, "a") as f:
        f.write('{"ts": 203.5, "region": "fra", "deployment": "new", "rou')  # mid-write
    reader.read()
    with open(path, "a") as f:
        f.write('te": "/a", "status": 200, "duration_ms": 9.0}\n')
    rotate(tmp_path, "fra", 3)
    write_log(tmp_path, "fra", rows(204.0, 100))
    reader.read()
    # Twice between two reads: the reader finishes its file (now .2), then .1, then the current.
    rotate(tmp_path, "fra", 3)
    write_log(tmp_path, "fra", rows(206.0, 100))
    rotate(tmp_path, "fra", 3)
    write_log(tmp_path, "fra", rows(208.0, 100))
    reader.read()
    assert not reader.tails[0].lost
    got = reader.records(150.0, 300.0)
    assert key(got) == key(window_records(tmp_path, ["fra"], 150.0, 300.0))
    assert len(got) == 5000 + 300 + 1 + 300
    assert key(reader.records(204.5, 206.5)) == key(window_records(tmp_path, ["fra"], 204.5, 206.5))
    reader.close()


def test_a_log_the_reader_cannot_follow_is_read_from_the_files(tmp_path: Path) -> None:
    write_log(tmp_path, "fra", rows(100.0, 200))
    reader = WindowReader(tmp_path, ["fra", "iad"], 100.5)  # iad has no log yet
    reader.read()
    path = log_path(tmp_path, "fra")
    os.truncate(path, 0)  # log_backups = 0: the writer truncates
    write_log(tmp_path, "fra", rows(103.0, 50))
    write_log(tmp_path, "iad", rows(103.0, 70))
    reader.read()
    assert reader.tails[0].lost and not reader.tails[1].lost
    want = window_records(tmp_path, ["fra", "iad"], 100.5, 110.0)
    assert key(reader.records(100.5, 110.0)) == key(want) and len(want) == 120
    # Rotated past the oldest file kept while the reader was still in it.
    write_log(tmp_path, "sfo", rows(100.0, 100))
    reader = WindowReader(tmp_path, ["sfo"], 100.0)
    reader.read()
    for n in range(3):
        rotate(tmp_path, "sfo", 1)
        write_log(tmp_path, "sfo", rows(102.0 + n, 10))
    reader.read()
    assert reader.tails[0].lost
    assert key(reader.records(100.0, 110.0)) == key(window_records(tmp_path, ["sfo"], 100.0, 110.0))


def test_the_reader_matches_the_files_under_the_regions_own_writer(tmp_path: Path) -> None:
    # The writer the workers use, rotating every ~30 KB, two workers appending by turns.
    path = log_path(tmp_path, "fra")
    writers = [RequestLogWriter(path, 30_000, 20) for _ in range(2)]
    reader = WindowReader(tmp_path, ["fra"], 1000.0)
    for batch in range(40):
        for w, writer in enumerate(writers):
            for i in range(50):
                ts = 999.0 + batch * 0.5 + w * 0.3 + i / 200
                deployment = "new" if i % 3 else "old"
                writer.add({"ts": ts, "region": "fra", "deployment": deployment,
                            "method": "GET", "path": "/a", "route": "/a",
                            "status": 503 if i % 11 == 0 else 200, "duration_ms": i / 7,
                            "request_id": f"{batch}-{w}-{i}"})  # fmt: skip
            writer.flush()
        if batch % 3 == 0:
            reader.read()
    reader.read()
    for writer in writers:
        writer.close()
    assert len(list(path.parent.glob("fra.jsonl.*"))) > 5  # it rotated, often
    assert not reader.tails[0].lost
    got, want = reader.records(1000.0, 1015.0), window_records(tmp_path, ["fra"], 1000.0, 1015.0)
    assert key(got) == key(want) and len(want) > 3000


def test_a_window_in_the_past_is_read_up_to_its_end(tmp_path: Path) -> None:
    write_log(tmp_path, "fra", rows(100.0, 1000, "old"))  # 100 … 110
    reader = WindowReader(tmp_path, ["fra"], 102.0, 104.0)
    reader.read()
    assert reader.tails[0].done
    write_log(tmp_path, "fra", rows(111.0, 100))
    reader.read()  # nothing more is read: the window ended before
    assert max(r.ts for r in reader.tails[0].records) < 111.0
    assert key(reader.records(102.5, 104.0)) == key(window_records(tmp_path, ["fra"], 102.5, 104.0))
    # A window it does not cover is read from the files.
    assert key(reader.records(101.0, 104.0)) == key(window_records(tmp_path, ["fra"], 101.0, 104.0))


def test_a_bake_reads_while_it_holds_and_judges_what_the_files_hold(tmp_path: Path) -> None:
    clock = Clock()
    write_log(tmp_path, "iad", rows(990.0, 1000, "old"))

    def sleep(seconds: float) -> None:
        # Traffic arrives as the bake holds: what each region served meanwhile.
        start, clock.now = clock.now, clock.now + seconds
        count = round((clock.now - start) * 100)
        write_log(tmp_path, "fra", rows(start, count, "new"))
        write_log(tmp_path, "iad", rows(start, count, "old"))

    ctx = context(tmp_path, clock, bake_s=3, min_requests=50)
    ctx.sleep = sleep
    verdict = bake(ctx, 0, ["fra"], ["iad"], ["/a"], 3.0)
    assert verdict.passed and verdict.costs_ms["read_while_holding"] >= 0
    new = [r for r in window_records(tmp_path, ["fra"], 1000.0, 1003.0) if r.deployment == "new"]
    base = [r for r in window_records(tmp_path, ["iad"], 1000.0, 1003.0) if r.deployment != "new"]
    new_side, base_side, figures, problems, enough = judge(new, base, ctx.settings, ["/a"])
    assert (verdict.new, verdict.base, verdict.u, verdict.z) == (
        new_side,
        base_side,
        figures["u"],
        figures["z"],
    )
    assert enough and not problems and verdict.new.requests == 300 and verdict.base.requests == 300
