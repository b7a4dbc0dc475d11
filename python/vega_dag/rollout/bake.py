"""Live-traffic gates: a wave's gate holds for a bake and judges the traffic its regions serve.

The probes of a gate (``health``) are sequential, a few per route: they miss
what only real traffic shows (a route that fails under concurrent requests, a
handler slower for every user by a few milliseconds). Once a wave's probes
pass, its gate holds for ``[tool.vega.health.bake] bake_s`` and then compares
the requests the new deployment served in the wave's regions with the
*baseline*'s, from the regions' request logs (``regions.request_log``: the
raw per-request durations a rank test needs; histograms would not do):

- latency: Mann-Whitney U, one-sided (is the new deployment's latency
  stochastically greater?), normal approximation with the tie correction;
  it fails only when significant (p < ``alpha``) *and* the new median is
  slower by a real margin (``latency_tolerance`` of the baseline's median and
  at least ``latency_tolerance_ms``): with thousands of requests a rank test
  finds differences no user would notice;
- errors (5xx): a one-sided two-proportion z-test, failing when significant
  and higher by ``error_tolerance``;
- the minimum-sample guard: fewer than ``min_requests`` on either side is no
  verdict: ``too_few = "fail"`` fails the gate, ``"extend"`` keeps baking
  (the window grows) until there are enough or ``max_bake_s`` has passed.

The window is read while the gate holds (``WindowReader``: each region's
log followed from the window's start, across rotations, every
``_READ_STEP`` and a last time just before the hold ends), so that after it
only the regions' flush and their last moments' records are read: the bake
adds its configured time and little more. What it judges is what reading
the files after the flush (``window_records``) gives; a log it cannot
follow (a rotation dropped a file it was still in) is read that way.

The baseline (``select_baseline``) is the same routes in the same window,
served by a deployment other than the new one:

- ``regions``: the regions still on the previous deployment (the canary and
  every wave but the last);
- ``before``: when no region is left on it (the last wave, the watch), the
  same regions over a window as long, just before the canary's pointer moved;
- ``traffic`` (for traffic weights inside a region, not implemented here):
  the same regions and window, the requests the old deployment answered
  there. The collection needs nothing more: a baseline's records are those of
  its regions and window whose deployment is not the new one.

After the last wave an optional watch (``watch_s``) keeps judging in windows
of ``bake_s`` (the whole watch when that is 0 or longer); a regression fails
the deploy, which rolls back as any failed gate does (``rollout.rollback``'s
``reverse``, the same path as ``vega-dag rollback``).

The numbers behind each verdict (samples, error rates, p50/p99, U and its
p-value, z and its p-value, the rule applied) are printed by ``deploy``, in
its ``--json``, and in the history's reason of an automatic rollback.

Scipy is not used: the two tests are a few lines each (``math.erfc`` is the
normal tail), and scipy would add ~40 MB and a slow import to every deploy.
"""

from __future__ import annotations

import math
import os
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from vega_dag.config import BakeConfig
from vega_dag.regions.request_log import FLUSH_SECONDS, NO_ROUTE, region_files

#: Bytes read at a time when a log is read forward through a window.
_BLOCK = 64 * 1024
#: A log's lines are in the order their workers wrote them out, each a buffer
#: of up to a flush interval: a line is at most this much older than any line
#: written before it (the flush interval, and a loop that was busy).
_DISORDER = FLUSH_SECONDS + 0.5
#: How often an extended bake looks again.
_EXTEND_STEP = 1.0
#: While a bake holds, its window is read this often (what the regions wrote
#: since), and a last time this long before the hold ends: after it, only the
#: last moments' records are read.
_READ_STEP = 0.25
_LAST_READ = 0.05
#: Records a reader keeps per region (a long bake of heavy traffic): past it,
#: that region's window is read from its files after the hold, as it was.
_MAX_HELD = 1_000_000
#: The "before" baseline is as long as the window judged, which may end later
#: than planned (a late wake-up): read this much more of it while holding.
_BEFORE_SLACK = 1.0


class LogRecord(msgspec.Struct, gc=False):
    """The fields of a request-log line a verdict reads.

    Untracked by the garbage collector (strings and numbers only): a window
    holds thousands, and a collection would walk them all.
    """

    ts: float
    region: str
    deployment: str
    route: str
    status: int
    duration_ms: float


_decoder = msgspec.json.Decoder(LogRecord)
_decode_one = _decoder.decode


# -- the tests ----------------------------------------------------------------
def _upper_tail(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney_greater(a: list[float], b: list[float]) -> tuple[float, float]:
    """(U of ``a``, one-sided p) that ``a``'s values are stochastically greater than ``b``'s.

    The normal approximation with the tie correction and a continuity
    correction of 0.5, as ``scipy.stats.mannwhitneyu(a, b, alternative="greater",
    method="asymptotic")`` computes it.
    """
    n1, n2 = len(a), len(b)
    if not n1 or not n2:
        raise ValueError("both samples must be non-empty")
    pooled = sorted([*a, *b])
    n = n1 + n2
    # A value's tied ranks are lo+1 … hi (bisection in the pooled order): its
    # rank is their mean. C-level sorting and bisection, not a Python loop.
    rank_sum_a = (sum(bisect_left(pooled, v) + bisect_right(pooled, v) for v in a) + n1) / 2
    ties = float(sum(t**3 - t for t in Counter(pooled).values() if t > 1))
    u = rank_sum_a - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        return u, 1.0  # every value equal: no evidence either way
    z = (u - mean - 0.5) / math.sqrt(variance)
    return u, _upper_tail(z)


def two_proportions_greater(e1: int, n1: int, e2: int, n2: int) -> tuple[float, float]:
    """(z, one-sided p) that proportion ``e1/n1`` is greater than ``e2/n2`` (pooled z-test)."""
    if not n1 or not n2:
        raise ValueError("both samples must be non-empty")
    pooled = (e1 + e2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0  # no errors on either side (or only errors)
    z = (e1 / n1 - e2 / n2) / se
    return z, _upper_tail(z)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0…1) of a non-empty list."""
    return _nearest_rank(sorted(values), q)


def _nearest_rank(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# -- reading a window of the request logs -------------------------------------
def _first_ts(block: bytes) -> float | None:
    """The time of the first whole line of ``block`` (which may start mid-line)."""
    start = block.find(b"\n") + 1
    end = block.find(b"\n", start)
    while 0 < start <= end:
        try:
            return _decode_one(block[start:end]).ts
        except msgspec.DecodeError:
            start, end = end + 1, block.find(b"\n", end + 1)
    return None


def _ts_after(f: BinaryIO, offset: int) -> float | None:
    """The time of the first whole line starting after ``offset`` (None: none there)."""
    f.seek(max(0, offset - 1))
    # From one byte before: a line that starts exactly at ``offset`` counts.
    head = f.read(8192) if offset else b"\n" + f.read(8192)
    return _first_ts(head)


def _start_offset(f: BinaryIO, size: int, since: float) -> int:
    """An offset before every line of ``since`` or later: bisection on the lines' times.

    The lines are sorted but for ``_DISORDER``, so the search looks for
    ``since - _DISORDER``: every line before the offset found is older than ``since``.
    """
    target = since - _DISORDER
    lo, hi = 0, size
    while hi - lo > 16384:
        mid = (lo + hi) // 2
        ts = _ts_after(f, mid)
        if ts is not None and ts < target:
            lo = mid
        else:
            hi = mid
    return lo


def _read_window(path: Path, since: float, until: float) -> bytes:
    """Whole lines of ``path`` that may hold ``since <= ts <= until`` (a few more around)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            offset = _start_offset(f, size, since)
            f.seek(offset)
            chunks = []
            while True:
                chunk = f.read(_BLOCK)
                if not chunk:
                    break
                chunks.append(chunk)
                tail = chunk[chunk.rfind(b"\n", 0, len(chunk) - 1) :]
                last = _first_ts(tail) if tail.endswith(b"\n") else None
                if last is not None and last > until + _DISORDER:
                    break  # the rest was written after the window
    except FileNotFoundError:
        return b""  # rotated away between the listing and the read
    data = b"".join(chunks)
    if offset:
        data = data[data.find(b"\n") + 1 :]  # the line the offset cut
    return data[: data.rfind(b"\n") + 1]


def _decode(data: bytes) -> list[LogRecord]:
    if not data:
        return []
    try:
        return _decoder.decode_lines(data)
    except msgspec.DecodeError:
        out = []
        for line in data.split(b"\n"):  # a damaged line costs only itself
            try:
                out.append(_decode_one(line))
            except msgspec.DecodeError:
                continue
        return out


def window_records(
    fleet: Path, regions: Iterable[str], since: float, until: float
) -> list[LogRecord]:
    """Every request the regions logged with ``since <= ts <= until``.

    Each file (rotated ones too) is bisected to the window's start, then read
    forward to its end: a window costs what it holds, not the log's size.
    """
    out: list[LogRecord] = []
    for region in regions:
        files = region_files(fleet, region)  # oldest first
        for i, path in enumerate(files):
            newer = files[i + 1] if i + 1 < len(files) else None
            if newer is not None and _file_starts_before(newer, since):
                continue  # the window begins in a newer file
            for record in _decode(_read_window(path, since, until)):
                if since <= record.ts <= until:
                    out.append(record)
    return out


class _Tail:
    """One region's log read forward from ``since``, a little at a time, across rotations.

    What it has read stays decoded (``records``: every line of ``since`` or
    later), so that a bake reads its window while it holds and, once the
    regions have flushed, only what they wrote since the last look. With an
    ``until`` it stops at the first line later than ``until + _DISORDER``, as
    ``window_records`` does (a window in the past: the "before" baseline).
    It gives up (``lost``: the caller reads the files instead) when it cannot
    follow the log: a rotation dropped a file it had not finished, a file was
    truncated under it, or it holds more than ``_MAX_HELD`` records.
    """

    def __init__(self, fleet: Path, region: str, since: float, until: float = math.inf) -> None:
        self.fleet = fleet
        self.region = region
        self.since = since
        self.until = until
        self.records: list[LogRecord] = []
        self.lost = False
        #: read up to a line past ``until + _DISORDER``: nothing later belongs to the window
        self.done = False
        self._file: BinaryIO | None = None
        self._partial = b""
        #: the first bytes read from a bisected offset may be the end of a line
        self._cut = False

    def read(self) -> None:
        """Decode what the log holds past the last read (all of it, the first time)."""
        if self.done or self.lost:
            return
        try:
            if self._file is None and not self._open_first():
                return  # no log yet: the region has logged nothing
            while not self._drain():
                following = self._following()
                if following is None:
                    return  # the current file: the rest is not written yet
                # Rotated after the read above: the file is complete now (writes and
                # rotations hold the log's lock), so what came since is read first.
                if self._drain():
                    return
                self._partial = b""  # a line cut at the end of a rotated file is damaged
                self._switch(following, 0)
        except OSError:
            self.lost = True
        finally:
            if self.lost and self._file is not None:
                self._file.close()
                self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open_first(self) -> bool:
        files = region_files(self.fleet, self.region)  # oldest first
        for i, path in enumerate(files):
            newer = files[i + 1] if i + 1 < len(files) else None
            if newer is not None and _file_starts_before(newer, self.since):
                continue  # the window begins in a newer file
            try:
                f = open(path, "rb", buffering=0)  # noqa: SIM115 - held across reads
            except FileNotFoundError:
                continue  # rotated away between the listing and the open
            offset = _start_offset(f, f.seek(0, os.SEEK_END), self.since)
            self._switch(f, offset)
            return True
        return False

    def _switch(self, f: BinaryIO, offset: int) -> None:
        if self._file is not None:
            self._file.close()
        self._file = f
        f.seek(offset)
        self._cut = offset > 0

    def _drain(self) -> bool:
        """Decode the current file to its end; whether the window is complete."""
        assert self._file is not None
        data = self._file.read()
        if not data:
            return False
        data = self._partial + data
        start = data.find(b"\n") + 1 if self._cut else 0
        if self._cut and start == 0:
            self._partial = data  # still inside the line the offset cut
            return False
        self._cut = False
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        if end <= start:
            return False
        since = self.since
        got = [r for r in _decode(data[start:end]) if r.ts >= since]
        self.records += got
        if len(self.records) > _MAX_HELD:
            self.records = []
            self.lost = True
            return True
        if self.until < math.inf:
            before_last = data.rfind(b"\n", start, end - 1)
            last = _first_ts(b"\n" + data[max(start, before_last + 1) : end])
            self.done = last is not None and last > self.until + _DISORDER
        return self.done

    def _following(self) -> BinaryIO | None:
        """The next file to read once the current one is read (None: it is the current log)."""
        assert self._file is not None
        held = os.fstat(self._file.fileno())
        if held.st_size < self._file.tell():
            self.lost = True  # truncated (no backups are kept): what was in it is gone
            raise OSError("truncated")
        files = region_files(self.fleet, self.region)
        try:
            if files and os.stat(files[-1]).st_ino == held.st_ino:
                return None
            at = [os.stat(p).st_ino for p in files].index(held.st_ino)
        except (FileNotFoundError, ValueError):
            raise OSError("rotated away") from None  # files between it and the oldest kept
        if at + 1 >= len(files):
            return None  # renamed, its successor not created yet
        return open(files[at + 1], "rb", buffering=0)


class WindowReader:
    """The records some regions log from ``since`` on, read while a bake holds.

    ``records(lo, hi)`` is what ``window_records`` would read at that moment
    (the test suite compares the two on a real region's traffic); a region
    whose log could not be followed, or a window this reader does not cover,
    is read from the files then.
    """

    def __init__(
        self, fleet: Path, regions: Iterable[str], since: float, until: float = math.inf
    ) -> None:
        self.fleet = fleet
        self.regions = tuple(regions)
        self.since = since
        self.until = until
        self.tails = [_Tail(fleet, r, since, until) for r in self.regions]

    def read(self) -> None:
        for tail in self.tails:
            tail.read()

    def covers(self, lo: float, hi: float) -> bool:
        return self.since <= lo and hi <= self.until

    def records(self, lo: float, hi: float) -> list[LogRecord]:
        out: list[LogRecord] = []
        for tail in self.tails:
            if tail.lost or not self.covers(lo, hi):
                out += window_records(self.fleet, [tail.region], lo, hi)
            else:
                out += [r for r in tail.records if lo <= r.ts <= hi]
        return out

    def close(self) -> None:
        for tail in self.tails:
            tail.close()


def _file_starts_before(path: Path, since: float) -> bool:
    """Whether every line of ``since`` or later is in ``path`` or after it."""
    try:
        with open(path, "rb") as f:
            ts = _ts_after(f, 0)
    except FileNotFoundError:
        return False
    return ts is not None and ts < since - _DISORDER


# -- baselines and verdicts ---------------------------------------------------
@dataclass(frozen=True)
class Baseline:
    """Where the baseline's requests come from: regions and a window."""

    #: "regions" | "before" (| "traffic", with weights inside a region)
    kind: str
    regions: tuple[str, ...]
    #: (since, until) as wall-clock times; None: the judged window itself
    window: tuple[float, float] | None = None

    def describe(self) -> str:
        names = (
            ", ".join(self.regions) if len(self.regions) <= 4 else f"{len(self.regions)} regions"
        )
        if self.kind == "before":
            return f"{names} before the deploy"
        return names


def select_baseline(
    judged: list[str], on_previous: list[str], first_move: float | None, length: float
) -> Baseline | None:
    """The baseline of a window of ``length`` seconds in the ``judged`` regions.

    ``on_previous``: the regions still on the previous deployment now;
    ``first_move``: when the deploy's first pointer moved. Weights inside a
    region would add the "traffic" case here (the judged regions themselves).
    """
    if on_previous:
        return Baseline("regions", tuple(on_previous))
    if first_move is not None:
        return Baseline("before", tuple(judged), (first_move - length, first_move))
    return None


@dataclass
class Side:
    """One side of a verdict: requests, errors, latency."""

    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @classmethod
    def of(cls, records: list[LogRecord]) -> Side:
        if not records:
            return cls()
        durations = sorted([r.duration_ms for r in records])  # once for both
        return cls(
            len(records),
            sum(1 for r in records if r.status >= 500),
            round(_nearest_rank(durations, 0.5), 3),
            round(_nearest_rank(durations, 0.99), 3),
        )

    def to_json(self) -> dict[str, Any]:
        rate = self.error_rate
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": None if rate is None else round(rate, 5),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        }

    def text(self) -> str:
        if not self.requests:
            return "0 requests"
        rate = self.error_rate or 0.0
        return (
            f"n={self.requests}, errors {rate:.2%}, "
            f"p50 {self.p50_ms:.1f}ms, p99 {self.p99_ms:.1f}ms"
        )


@dataclass
class BakeVerdict:
    #: the wave's index, or None for the watch after the last wave
    wave: int | None
    regions: list[str]
    baseline: Baseline | None
    #: seconds judged (the bake, extensions included)
    seconds: float
    new: Side
    base: Side
    #: the routes judged ("*": every route both sides served)
    routes: list[str]
    u: float | None = None
    latency_p: float | None = None
    z: float | None = None
    errors_p: float | None = None
    #: the minimum-sample rule applied: "", "fail", "extend", "extend, then fail"
    rule: str = ""
    extended_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    #: wall time of the whole bake: the hold, then flushing, reading and judging
    elapsed_s: float = 0.0
    #: milliseconds of the last look: past the hold, flushing, reading, judging, CPU
    costs_ms: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        if self.wave is None:
            return "watch"
        return "canary" if self.wave == 0 else f"wave {self.wave}"

    def numbers(self) -> str:
        """The verdict's figures in one line (deploy's output, history's reason)."""
        against = "no baseline"
        if self.baseline is not None:
            against = f"baseline {self.baseline.describe()}: {self.base.text()}"
        parts = [f"new: {self.new.text()}", against]
        if self.u is not None:
            parts.append(f"U={self.u:.0f} p={self.latency_p:.3g}")
        if self.z is not None:
            parts.append(f"errors z={self.z:.2f} p={self.errors_p:.3g}")
        if self.rule:
            parts.append(f"too few requests: {self.rule}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "wave": self.wave,
            "regions": self.regions,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "extended_s": round(self.extended_s, 3),
            "elapsed_s": round(self.elapsed_s, 4),
            "costs_ms": self.costs_ms,
            "routes": self.routes,
            "baseline": None
            if self.baseline is None
            else {
                "kind": self.baseline.kind,
                "regions": list(self.baseline.regions),
                "window": None if self.baseline.window is None else list(self.baseline.window),
            },
            "new": self.new.to_json(),
            "base": self.base.to_json(),
            "mann_whitney": None
            if self.u is None
            else {"u": self.u, "p": self.latency_p, "alternative": "greater"},
            "two_proportions": None
            if self.z is None
            else {"z": round(self.z, 4), "p": self.errors_p, "alternative": "greater"},
            "rule": self.rule,
            "problems": self.problems,
        }


def judge(
    new: list[LogRecord],
    base: list[LogRecord] | None,
    settings: BakeConfig,
    routes: list[str],
    *,
    same_window: bool = True,
    p99_ms: float = math.inf,
) -> tuple[Side, Side, dict[str, Any], list[str], bool]:
    """(new side, baseline side, test figures, problems, enough samples) of one window.

    A baseline from another window (``same_window=False``: the traffic
    before the deploy) is compared on errors only: latency an hour (or on a
    local fleet, a deploy's own CPU work) apart says more about the machine
    than the code; the live p99 is held to ``p99_ms`` instead (the gate's
    bound for its probes), as it is without a baseline.
    """
    wanted = set(routes)
    # The changed routes when the log names them (a one-app project logs its
    # app's own pattern); else every route, never the router's 404s.
    if not any(r.route in wanted for r in new):
        wanted = {r.route for r in new} - {NO_ROUTE}
    new = [r for r in new if r.route in wanted]
    if base is not None:
        base = [r for r in base if r.route in wanted]
    new_side, base_side = Side.of(new), Side.of(base or [])
    figures: dict[str, Any] = {}
    enough = new_side.requests >= settings.min_requests and (
        base is None or base_side.requests >= settings.min_requests
    )
    if not enough:
        return new_side, base_side, figures, [], False
    problems = []
    if base is None or not same_window:
        assert new_side.p99_ms is not None
        if new_side.p99_ms > p99_ms:
            problems.append(
                f"live p99 {new_side.p99_ms:.0f}ms > {p99_ms:g}ms ([tool.vega.health] p99_ms; "
                f"{'no baseline' if base is None else 'no baseline in the same window'})"
            )
    if base is None:
        rate = new_side.error_rate or 0.0
        if rate > settings.max_error_rate:
            problems.append(
                f"error rate {rate:.2%} > {settings.max_error_rate:.2%} (no baseline to compare)"
            )
        return new_side, base_side, figures, problems, True
    if same_window:
        u, p_latency = mann_whitney_greater(
            [r.duration_ms for r in new], [r.duration_ms for r in base]
        )
        figures = {"u": u, "latency_p": p_latency}
        assert new_side.p50_ms is not None and base_side.p50_ms is not None
        slower = new_side.p50_ms - base_side.p50_ms
        margin = max(settings.latency_tolerance * base_side.p50_ms, settings.latency_tolerance_ms)
        if p_latency < settings.alpha and slower > margin:
            problems.append(
                f"latency regressed: p50 {new_side.p50_ms:.1f}ms vs {base_side.p50_ms:.1f}ms "
                f"(+{slower:.1f}ms > {margin:.1f}ms allowed), Mann-Whitney U={u:.0f} "
                f"p={p_latency:.3g} < {settings.alpha:g}"
            )
    z, p_errors = two_proportions_greater(
        new_side.errors, new_side.requests, base_side.errors, base_side.requests
    )
    figures.update(z=z, errors_p=p_errors)
    rate_new, rate_base = new_side.error_rate or 0.0, base_side.error_rate or 0.0
    if p_errors < settings.alpha and rate_new - rate_base > settings.error_tolerance:
        problems.append(
            f"error rate regressed: {rate_new:.2%} vs {rate_base:.2%} "
            f"(+{rate_new - rate_base:.2%} > {settings.error_tolerance:.2%} allowed), "
            f"two-proportion z={z:.2f} p={p_errors:.3g} < {settings.alpha:g}"
        )
    return new_side, base_side, figures, problems, True


@dataclass
class BakeContext:
    """What a bake needs from its deploy."""

    fleet: Path
    deployment: str
    settings: BakeConfig
    #: POSTs /__vega/flush to these regions (their buffered records go to the logs)
    flush: Callable[[list[str]], None]
    #: when the deploy's first pointer moved (the "before" baseline's end)
    first_move: float | None = None
    #: the live p99 bound without a baseline in the same window (``[tool.vega.health] p99_ms``)
    p99_ms: float = math.inf
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


def bake(
    context: BakeContext,
    wave: int | None,
    regions: list[str],
    on_previous: list[str],
    routes: list[str],
    seconds: float,
    *,
    since: float | None = None,
    final: bool = True,
) -> BakeVerdict:
    """Hold ``seconds`` (more, as the rule says), then judge the regions' live traffic.

    The window starts now (or at ``since``). Not ``final`` (a watch's window
    before its last), too few requests is no verdict: ``rule`` is "merge",
    and the caller judges the window again with the next one.
    """
    settings = context.settings
    began = time.perf_counter()
    now = context.clock()
    since = now if since is None else since
    until = now + seconds
    limit = until + max(0.0, settings.max_bake_s - (until - since))
    rule = ""
    # Read while holding: after the hold, only what the regions wrote last.
    judged = WindowReader(context.fleet, regions, since)
    others = WindowReader(context.fleet, on_previous, since)
    before: WindowReader | None = None
    try:
        while True:
            ahead = select_baseline(regions, on_previous, context.first_move, until - since)
            if ahead is not None and ahead.window is not None:
                lo, hi = ahead.window
                if before is None or not before.covers(lo - _BEFORE_SLACK, hi):
                    if before is not None:
                        before.close()
                    before = WindowReader(context.fleet, ahead.regions, lo - _BEFORE_SLACK, hi)
            held_read = _hold(context, until, [judged, others, before])
            now = context.clock()
            held, cpu = time.perf_counter(), time.thread_time()
            length = now - since
            baseline = select_baseline(regions, on_previous, context.first_move, length)
            context.flush(sorted({*regions, *(baseline.regions if baseline else ())}))
            flushed = time.perf_counter()
            judged.read()
            new = [r for r in judged.records(since, now) if r.deployment == context.deployment]
            base: list[LogRecord] | None = None
            if baseline is not None:
                lo, hi = baseline.window or (since, now)
                source = others if baseline.window is None else before
                if source is None or set(source.regions) != set(baseline.regions):
                    got = window_records(context.fleet, baseline.regions, lo, hi)
                else:
                    source.read()
                    got = source.records(lo, hi)
                base = [r for r in got if r.deployment != context.deployment]
            read = time.perf_counter()
            new_side, base_side, figures, problems, enough = judge(
                new,
                base,
                settings,
                routes,
                same_window=baseline is None or baseline.window is None,
                p99_ms=context.p99_ms,
            )
            if not enough and final and settings.too_few == "extend" and now < limit:
                rule = "extend"
                until = min(limit, now + _EXTEND_STEP)
                continue
            verdict = BakeVerdict(
                wave,
                list(regions),
                baseline,
                length,
                new_side,
                base_side,
                sorted(set(routes)) or ["*"],
                rule=rule,
                extended_s=max(0.0, length - seconds) if rule else 0.0,
                problems=problems,
                **figures,
            )
            done = time.perf_counter()
            verdict.elapsed_s = done - began
            # What the verdict cost after the hold (wall per step; CPU of this thread),
            # and the wall time spent reading the window while holding.
            verdict.costs_ms = {
                "oversleep": round(max(0.0, now - until) * 1000, 2),
                "flush": round((flushed - held) * 1000, 2),
                "read": round((read - flushed) * 1000, 2),
                "judge": round((done - read) * 1000, 2),
                "cpu": round((time.thread_time() - cpu) * 1000, 2),
                "read_while_holding": round(held_read * 1000, 2),
            }
            if enough:
                return verdict
            if not final:
                verdict.rule = "merge"
                return verdict
            verdict.rule = "extend, then fail" if rule else "fail"
            need = settings.min_requests
            short = [
                f"{name} {side.requests}"
                for name, side in (("new", new_side), ("baseline", base_side))
                if side.requests < need and (name == "new" or baseline is not None)
            ]
            verdict.problems.append(
                f"too few requests to judge in {length:.1f}s: {', '.join(short)} of at least "
                f"{need} each ([tool.vega.health.bake] too_few = {settings.too_few!r})"
            )
            return verdict
    finally:
        for reader in (judged, others, before):
            if reader is not None:
                reader.close()


def _hold(context: BakeContext, until: float, readers: list[WindowReader | None]) -> float:
    """Sleep until ``until``, reading the window as the regions write it; seconds spent reading."""
    spent = 0.0
    while True:
        left = until - context.clock()
        if left <= _LAST_READ + 0.001:  # (a wake-up a hair early is the last one too)
            if left > 0:
                context.sleep(left)
            return spent
        context.sleep(min(_READ_STEP, left - _LAST_READ))
        started = time.perf_counter()
        for reader in readers:
            if reader is not None:
                reader.read()
        spent += time.perf_counter() - started


def watch(context: BakeContext, regions: list[str], routes: list[str]) -> list[BakeVerdict]:
    """After the last wave: windows of ``bake_s`` over ``watch_s``; the first regression ends it.

    A window with too few requests is not judged alone: it joins the next
    one; the last follows the configured rule.
    """
    settings = context.settings
    end = context.clock() + settings.watch_s
    step = settings.bake_s if 0 < settings.bake_s < settings.watch_s else settings.watch_s
    verdicts: list[BakeVerdict] = []
    since: float | None = None
    while True:
        now = context.clock()
        since = now if since is None else since
        # A remainder shorter than half a window is added to the last one.
        last = end - now < step * 1.5
        seconds = (end - now) if last else step
        verdict = bake(context, None, regions, [], routes, seconds, since=since, final=last)
        if verdict.rule == "merge":
            continue
        verdicts.append(verdict)
        if not verdict.passed or last:
            return verdicts
        since = None
