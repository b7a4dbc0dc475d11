"""A region's request log: one JSON line per request, rotated by size.

Every worker of a region (the deployment served now, and the one draining its
last responses after a switch) appends to the region's one file,
``<fleet>/logs/requests/<region>.jsonl``. A record is built on the request
path and kept in memory; the buffer goes to the file at least every
``FLUSH_SECONDS``, when it holds ``FLUSH_RECORDS``, and when the worker stops,
in one ``write`` of whole lines (O_APPEND: lines of two workers never mix).

Rotation is by size, as logging's RotatingFileHandler does it
(``.jsonl`` → ``.jsonl.1`` → … ``.jsonl.N``, the oldest dropped), but safe
for several writers: each flush holds an flock on ``<region>.jsonl.lock``,
and a writer whose file was renamed under it (another worker rotated) opens
the new one before it writes.

The reader side (``records``, ``follow``) is what ``vega-dag logs`` uses.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    import asyncio

#: Longest a record waits in memory before it is in the file.
FLUSH_SECONDS = 1.0
#: The ``route`` of a request no route matched (a 404), in records and metric labels.
NO_ROUTE = "(none)"
#: This many records are written at once, without waiting for the timer.
FLUSH_RECORDS = 256


def log_dir(fleet: Path) -> Path:
    return fleet / "logs" / "requests"


def log_path(fleet: Path, region: str) -> Path:
    return log_dir(fleet) / f"{region}.jsonl"


class RequestLogWriter:
    """The buffered, rotating writer of one region's request log (in a worker)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.pending: list[object] = []
        self.encoder = msgspec.json.Encoder()
        self._fd: int | None = None
        self._ino: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o644)

    def add(self, record: object) -> None:
        """Queue one record (a dict or a msgspec Struct) for the next flush."""
        # Encoded at the flush, all at once: the request path only appends.
        pending = self.pending
        pending.append(record)
        if len(pending) >= FLUSH_RECORDS:
            self.flush()
        elif self._timer is None:
            # Imported here, once per flush interval at most: a deploy's bake reads
            # these logs (rollout.bake) and need not import asyncio to do so.
            import asyncio

            with contextlib.suppress(RuntimeError):  # no running loop: flushed on close
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.pending:
            return
        # Taken before encoding: a flush from a signal handler never writes them twice.
        pending, self.pending = self.pending, []
        data = self.encoder.encode_lines(pending)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            try:
                fd = self._open()
                os.write(fd, data)
                if os.fstat(fd).st_size >= self.max_bytes:
                    self._rotate()
            finally:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
        except OSError as err:
            # A full disk must not take the region down: the records are lost, said once each time.
            print(f"vega-dag: request log {self.path}: {err}", flush=True)

    def _open(self) -> int:
        """The descriptor of the file now at ``path`` (reopened if another writer rotated it)."""
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            ino = None
        if self._fd is None or ino != self._ino:
            if self._fd is not None:
                os.close(self._fd)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            self._fd = os.open(self.path, flags, 0o644)
            self._ino = os.fstat(self._fd).st_ino
        return self._fd

    def _rotate(self) -> None:
        if self.backups == 0:
            os.truncate(self.path, 0)
            return
        for n in range(self.backups - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}.{n}", f"{self.path}.{n + 1}")
        os.replace(self.path, f"{self.path}.1")
        self._open()

    def close(self) -> None:
        """Flush, and let go of the file (the lock too: a log turned off at run time is dropped)."""
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1


# -- reading ------------------------------------------------------------------
def region_files(fleet: Path, region: str) -> list[Path]:
    """``region``'s log files, oldest first (``.N`` … ``.1``, then the current one)."""
    path = log_path(fleet, region)
    rotated = []
    for p in path.parent.glob(f"{region}.jsonl.*"):
        suffix = p.name.rpartition(".")[2]
        if suffix.isdigit():
            rotated.append((int(suffix), p))
    return [p for _, p in sorted(rotated, reverse=True)] + ([path] if path.exists() else [])


def logged_regions(fleet: Path) -> list[str]:
    return sorted(p.name.removesuffix(".jsonl") for p in log_dir(fleet).glob("*.jsonl"))


def _lines(path: Path) -> Iterator[dict]:
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):  # a line still being written is skipped
                    with contextlib.suppress(ValueError):
                        yield json.loads(line)
    except FileNotFoundError:
        return  # rotated away while being read


def _region_records(fleet: Path, region: str) -> list[dict]:
    """A region's records in time order.

    Sorted, not only concatenated: each worker appends what it buffered (up
    to a second of its requests) in one write, so two workers' lines interleave
    by the second, not by the request.
    """
    out = [rec for path in region_files(fleet, region) for rec in _lines(path)]
    out.sort(key=_ts)
    return out


def _ts(record: dict) -> float:
    ts = record.get("ts", 0.0)
    return ts if isinstance(ts, int | float) else 0.0


def matches(record: dict, deployment: str | None, route: str | None) -> bool:
    if deployment is not None and record.get("deployment") != deployment:
        return False
    return route is None or record.get("route") == route


def records(
    fleet: Path, regions: Iterable[str], deployment: str | None = None, route: str | None = None
) -> Iterator[dict]:
    """Every record of ``regions`` that passes the filters, all regions merged by time."""
    merged = heapq.merge(*(_region_records(fleet, r) for r in regions), key=_ts)
    return (rec for rec in merged if matches(rec, deployment, route))


class _Tail:
    """One region's log as it grows, across rotations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = None
        self.ino: int | None = None
        self.partial = b""
        with contextlib.suppress(FileNotFoundError):
            self.file = open(path, "rb")  # noqa: SIM115 - held across polls
            self.file.seek(0, os.SEEK_END)
            self.ino = os.fstat(self.file.fileno()).st_ino

    def read(self) -> list[dict]:
        out = self._drain()
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            return out
        if ino != self.ino:
            # Rotated: what was written to the old file before it moved is read above.
            if self.file is not None:
                self.file.close()
            self.file = open(self.path, "rb")  # noqa: SIM115
            self.ino = os.fstat(self.file.fileno()).st_ino
            self.partial = b""
            out += self._drain()
        return out

    def _drain(self) -> list[dict]:
        if self.file is None:
            return []
        data = self.partial + self.file.read()
        *lines, self.partial = data.split(b"\n")
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


def follow(
    fleet: Path,
    regions: list[str],
    deployment: str | None = None,
    route: str | None = None,
    poll: float = 0.2,
) -> Iterator[dict]:
    """The records written from now on, as they arrive (each poll's batch in time order)."""
    tails = [_Tail(log_path(fleet, r)) for r in regions]
    while True:
        batch = [rec for t in tails for rec in t.read() if matches(rec, deployment, route)]
        batch.sort(key=_ts)
        yield from batch
        time.sleep(poll)


def one_line(record: dict) -> str:
    """The readable form: time, region, deployment, method, path, status, duration, route, id."""
    ts = _ts(record)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
    return (
        f"{stamp} {record.get('region', '-')} {record.get('deployment', '-')} "
        f"{record.get('method', '-')} {record.get('path', '-')} {record.get('status', '-')} "
        f"{record.get('duration_ms', 0):.1f}ms {record.get('route') or '-'} "
        f"{record.get('request_id', '-')}"
    )
