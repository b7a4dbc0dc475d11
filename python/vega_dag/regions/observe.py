"""What a region records of the traffic it serves: Prometheus metrics and the request log.

Requests never pass through a region's front (it hands each connection to
the worker), so each worker counts its own requests: by route pattern, status
class and deployment, and a latency histogram by route. The counts are plain
ints and floats in dicts, exposed through a ``prometheus_client`` registry of
the worker's own by a custom collector, not the library's ``Counter`` and
``Histogram``: those take a lock per increment (three per request), and every
increment here happens on the worker's one event-loop thread. Nor the
library's multiprocess mode: workers are forked by a loader shared by every
region of the host (its environment is not the region's), and a per-process
registry costs the request path two dict lookups and three additions. The front
keeps the region's own metrics (worker loads and failures, the pointer's
generation, switches) and answers ``/__vega/metrics``: its registry, merged
with each live worker's samples, fetched over the handoff channel at scrape
time.

For ``vega-dag status`` the front also samples its workers' totals every
``SAMPLE_SECONDS`` and answers the last minute's error rate and p99 from the
difference between now and a sample a minute old (``Window``), as
``rate()`` and ``histogram_quantile()`` would over a scrape of each.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from itertools import accumulate
from typing import TYPE_CHECKING

import msgspec
from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from vega_dag.regions.request_log import RequestLogWriter

# The *_created samples double every family's size and no query here reads them.
disable_created_metrics()

#: Latency buckets (seconds): sub-millisecond handlers to a 10 s timeout.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUESTS = "vega_requests"
LATENCY = "vega_request_duration_seconds"
#: How often the front samples its workers' totals for the live window.
SAMPLE_SECONDS = 5.0
#: The live window ``status`` reports.
WINDOW_SECONDS = 60.0
#: An incoming X-Request-Id longer than this is replaced by one of ours.
MAX_REQUEST_ID = 128

_STATUS_CLASS = {n: f"{n}xx" for n in range(1, 6)}


class RequestRecord(msgspec.Struct, gc=False):
    """One line of a region's request log (a Struct: encoded faster than a dict).

    Untracked by the garbage collector (only strings and numbers in it): up to
    FLUSH_RECORDS of them wait for a flush, and gc would walk them all.
    """

    ts: float
    region: str
    deployment: str
    method: str
    path: str
    route: str
    status: int
    duration_ms: float
    request_id: str


class RequestObserver:
    """A worker's metrics and request log (either may be off)."""

    def __init__(self, region: str, settings: dict, log_file: str | None) -> None:
        self.region = region
        self.log_file = log_file
        self.registry: CollectorRegistry | None = None
        #: whether requests are counted now (the registry stays once made: counts survive off/on)
        self.counting = False
        self.log: RequestLogWriter | None = None
        #: (deployment, route, status // 100) → requests per latency bucket (not
        #: cumulative; +Inf last), then their sum of seconds. One dict for both
        #: families: one lookup per request; the requests of a key are its buckets' sum.
        self._cells: dict[tuple[str, str, int], list[float]] = {}
        # Ids of our own: unique per worker (a random prefix) and cheap (a counter).
        self._id_prefix = os.urandom(4).hex().encode() + b"-"
        self._next_id = 0
        self.configure(settings)

    @property
    def active(self) -> bool:
        return self.counting or self.log is not None

    def configure(self, settings: dict) -> None:
        """Record what ``settings`` say from now on (the front may change them at run time)."""
        self.counting = bool(settings.get("metrics", True))
        if self.counting and self.registry is None:
            self.registry = CollectorRegistry(auto_describe=False)
            self.registry.register(self)
        logging = bool(settings.get("request_log", True)) and bool(self.log_file)
        if logging and self.log is None:
            from pathlib import Path

            from vega_dag.regions.request_log import RequestLogWriter

            assert self.log_file is not None
            self.log = RequestLogWriter(
                Path(self.log_file),
                int(settings.get("log_max_bytes", 16 * 1024 * 1024)),
                int(settings.get("log_backups", 3)),
            )
        elif not logging and self.log is not None:
            self.log.close()  # what it holds goes to the file first
            self.log = None

    def request_id(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The request's ``X-Request-Id`` if it sent a usable one, else a new one."""
        for name, value in headers:
            if name == b"x-request-id":
                if 0 < len(value) <= MAX_REQUEST_ID and value.isascii():
                    return value
                break
        self._next_id += 1
        return b"%s%x" % (self._id_prefix, self._next_id)

    def record(
        self,
        deployment: str,
        route: str,
        status: int,
        seconds: float,
        scope: dict,
        request_id: str,
    ) -> None:
        if self.counting:
            key = (deployment, route, status // 100)
            cells = self._cells.get(key)
            if cells is None:
                cells = self._cells[key] = [0.0] * (len(BUCKETS) + 2)
            cells[bisect_left(BUCKETS, seconds)] += 1
            cells[-1] += seconds
        log = self.log
        if log is not None:
            log.add(
                RequestRecord(
                    time.time(),
                    self.region,
                    deployment,
                    scope.get("method", ""),
                    scope.get("path", ""),
                    route,
                    status,
                    # Microseconds, in milliseconds: cheaper than round() and as short.
                    int(seconds * 1e6) / 1000,
                    request_id,
                )
            )

    def collect(self) -> Iterable[Metric]:
        """The registry's view of the counts (prometheus_client's custom collector protocol)."""
        requests = CounterMetricFamily(
            REQUESTS,
            "Requests answered, by route pattern, status class and deployment.",
            labels=["region", "deployment", "route", "status_class"],
        )
        by_route: dict[tuple[str, str], list[float]] = {}
        for (deployment, route, klass), cells in sorted(self._cells.items()):
            name = _STATUS_CLASS.get(klass, "other")
            requests.add_metric([self.region, deployment, route, name], sum(cells[:-1]))
            into = by_route.setdefault((deployment, route), [0.0] * len(cells))
            into[:] = [a + b for a, b in zip(into, cells, strict=True)]
        latency = HistogramMetricFamily(
            LATENCY,
            "Time from a request's start to its response's end, by route pattern.",
            labels=["region", "deployment", "route"],
        )
        bounds = [floatToGoString(b) for b in BUCKETS] + ["+Inf"]
        for (deployment, route), cells in by_route.items():
            cumulative = list(accumulate(cells[:-1]))
            latency.add_metric(
                [self.region, deployment, route],
                list(zip(bounds, cumulative, strict=True)),
                cells[-1],
            )
        return [requests, latency]

    def families(self) -> list[dict]:
        """This worker's samples, as plain data for the front (``op: metrics``)."""
        if self.registry is None or not self.counting:
            return []
        return [
            {
                "name": m.name,
                "help": m.documentation,
                "type": m.type,
                "samples": [[s.name, s.labels, s.value] for s in m.samples],
            }
            for m in self.registry.collect()
        ]

    def flush(self) -> None:
        if self.log is not None:
            self.log.flush()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


# -- the front ------------------------------------------------------------------
def merged_exposition(registry: CollectorRegistry, worker_families: list[list[dict]]) -> bytes:
    """The text exposition of ``registry`` and every worker's families, one family per name."""
    from prometheus_client import generate_latest

    families: dict[str, Metric] = {}
    for metric in registry.collect():
        families[metric.name] = metric
    for worker in worker_families:
        for fam in worker:
            into = families.get(fam["name"])
            if into is None:
                into = families[fam["name"]] = Metric(fam["name"], fam["help"], fam["type"])
            for name, labels, value in fam["samples"]:
                into.add_sample(name, labels, value)

    class _Merged:
        def collect(self) -> Iterable[Metric]:
            return list(families.values())

    out = CollectorRegistry(auto_describe=False)
    out.register(_Merged())
    return generate_latest(out)


#: (requests, 5xx, cumulative count per bucket) of one deployment in one worker
Totals = tuple[float, float, list[float]]


def totals(families: list[dict], pid: int) -> dict[tuple[int, str], Totals]:
    """A worker's totals by (pid, deployment): what the live window subtracts."""
    out: dict[tuple[int, str], list] = {}

    def entry(deployment: str) -> list:
        return out.setdefault((pid, deployment), [0.0, 0.0, [0.0] * (len(BUCKETS) + 1)])

    for fam in families:
        if fam["name"] == REQUESTS:
            for name, labels, value in fam["samples"]:
                if name == REQUESTS + "_total":
                    e = entry(labels["deployment"])
                    e[0] += value
                    if labels["status_class"] == "5xx":
                        e[1] += value
        elif fam["name"] == LATENCY:
            for name, labels, value in fam["samples"]:
                if name == LATENCY + "_bucket":
                    le = float(labels["le"])
                    i = BUCKETS.index(le) if le in BUCKETS else len(BUCKETS)
                    entry(labels["deployment"])[2][i] += value
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def quantile(q: float, cumulative: list[float]) -> float | None:
    """``histogram_quantile(q, …)`` over ``BUCKETS`` (seconds), None without observations."""
    total = cumulative[-1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(BUCKETS, cumulative, strict=False):
        if count >= rank:
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return BUCKETS[-1]  # in the +Inf bucket: the highest finite bound, as Prometheus answers


class Window:
    """Samples of a region's worker totals, and the last minute's traffic from them."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, dict[tuple[int, str], Totals]]] = deque()
        self.since = time.monotonic()

    def add(self, sample: dict[tuple[int, str], Totals], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.samples.append((now, sample))
        while len(self.samples) > 2 and self.samples[1][0] <= now - WINDOW_SECONDS:
            self.samples.popleft()

    def traffic(self, current: dict[tuple[int, str], Totals], now: float | None = None) -> dict:
        """Requests, 5xx, error rate and p99 since a sample ≥ a minute old (or the start)."""
        now = time.monotonic() if now is None else now
        base: dict[tuple[int, str], Totals] = {}
        start = self.since
        for t, sample in self.samples:
            if t <= now - WINDOW_SECONDS:
                base, start = sample, t
        by_deployment: dict[str, _Sum] = {}
        region = _Sum()
        for key, (requests, errors, buckets) in current.items():
            old = base.get(key)
            if old is not None and old[0] <= requests:  # else a new worker: from zero
                requests, errors = requests - old[0], errors - old[1]
                buckets = [b - o for b, o in zip(buckets, old[2], strict=True)]
            by_deployment.setdefault(key[1], _Sum()).add(requests, errors, buckets)
            region.add(requests, errors, buckets)
        return {
            **region.summary(),
            "window_s": round(min(now - start, WINDOW_SECONDS * 2), 1),
            "by_deployment": {d: acc.summary() for d, acc in sorted(by_deployment.items())},
        }


class _Sum:
    """Requests, 5xx and cumulative bucket counts, added up."""

    def __init__(self) -> None:
        self.requests = 0.0
        self.errors = 0.0
        self.buckets = [0.0] * (len(BUCKETS) + 1)

    def add(self, requests: float, errors: float, buckets: list[float]) -> None:
        self.requests += requests
        self.errors += errors
        self.buckets = [a + b for a, b in zip(self.buckets, buckets, strict=True)]

    def summary(self) -> dict:
        p99 = quantile(0.99, self.buckets)
        return {
            "requests": int(self.requests),
            "errors": int(self.errors),
            "error_rate": round(self.errors / self.requests, 4) if self.requests else None,
            "p99_ms": round(p99 * 1000, 2) if p99 is not None else None,
        }
