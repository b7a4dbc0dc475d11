"""Health gates: real HTTP probes of the changed routes in the promoted regions.

A gate passes only if, for every changed route:

- every probe's status is the expected one: ``health.expect_status`` for the
  paths configured in ``health.probes``; for a route without configured
  paths, a GET of the route's own path (parameters filled with ``1``) must
  not be a server error (a POST-only route answers 405, which proves it
  loaded and runs);
- every probe was answered by the new deployment (its ``x-vega-deployment``);
- the p99 latency is at most ``health.p99_ms``;
- at least ``health.min_samples`` probes completed: too few samples (probes
  that timed out or could not connect) is a failure of its own, never a pass.

A streamed response that does not end (server-sent events) is judged by its
status line and first chunk, its latency that of the first chunk (see
``probes``); the gate's summary counts them ("2 streamed").

Probes (``min_samples`` per probe path, exactly: a gate stops as soon as its
minimum is in) are dealt round-robin over the wave's regions, so every
promoted region is probed at least once. They go out from one thread, a few
at a time with the wave's regions interleaved (``probes``), each region's over
a connection kept alive, as browsers, API clients and load balancers do: a
region's first probe opens a connection, the next ones reuse it, so the gate
measures what users get on both (a stall on kept-alive connections is a p99
failure like any other). Plugins add checks (``vega_dag_health_checks``).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field

from vega_dag.config import HealthConfig
from vega_dag.manifest import RouteEntry
from vega_dag.manifest.schema import AppRouteEntry
from vega_dag.regions import DEPLOYMENT_HEADER
from vega_dag.regions.fleet import Connection, RegionInfo
from vega_dag.rollout.probes import probe_all

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::path\??)?\}")


@dataclass
class Probe:
    region: str
    route: str
    path: str
    status: int | None
    seconds: float
    error: str | None = None
    deployment: str | None = None
    #: answered on a connection an earlier probe had opened
    kept_alive: bool = False
    #: a streamed response, judged by its head and first chunk
    streamed: bool = False


class Connections:
    """Kept-alive connections, one per (prober thread, region); all closed on exit."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.opened: list[Connection] = []
        self.lock = threading.Lock()

    def to(self, url: str) -> Connection:
        mine = self.local.__dict__.setdefault("by_url", {})
        if url not in mine:
            mine[url] = Connection(url)
            with self.lock:
                self.opened.append(mine[url])
        return mine[url]

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self.opened:
            conn.close()


@dataclass
class RouteVerdict:
    route: str
    samples: int
    p99_ms: float | None
    statuses: dict[str, int]
    problems: list[str] = field(default_factory=list)


@dataclass
class GateReport:
    wave: int
    regions: list[str]
    routes: list[RouteVerdict]
    problems: list[str]
    #: probes answered on a connection kept alive from an earlier probe
    kept_alive: int = 0
    #: probes of streamed responses, taken at their first chunk
    streamed: int = 0

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def p99_ms(self) -> float | None:
        values = [r.p99_ms for r in self.routes if r.p99_ms is not None]
        return max(values) if values else None

    def summary(self, expect: int = 200) -> str:
        if not self.routes:
            return "no changed routes"
        probes = sum(sum(r.statuses.values()) for r in self.routes)
        p99 = f"p99 {self.p99_ms:.0f}ms" if self.p99_ms is not None else "no samples"
        streamed = f", {self.streamed} streamed (first chunk)" if self.streamed else ""
        return (
            f"{status_text(str(expect))}, {p99}, {probes} probes of {len(self.routes)} routes, "
            f"{self.kept_alive} kept-alive{streamed}"
        )

    def to_json(self) -> dict:
        return {
            "wave": self.wave,
            "regions": self.regions,
            "passed": self.passed,
            "problems": self.problems,
            "kept_alive": self.kept_alive,
            "streamed": self.streamed,
            "routes": [
                {"route": r.route, "samples": r.samples, "p99_ms": r.p99_ms, "statuses": r.statuses}
                for r in self.routes
            ],
        }


def p99(values: list[float]) -> float:
    """Nearest-rank 99th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def probe_paths(route: RouteEntry, health: HealthConfig) -> tuple[list[str], bool]:
    """(paths, configured): the configured probe paths, or the route's own path.

    A one-app project's route (``AppRouteEntry``) is probed at its own path
    only when that is a GET without parameters: any other needs a body, a
    method or a value only a configured probe knows.
    """
    configured = health.probes.get(route.pattern)
    if configured:
        return list(configured), True
    if isinstance(route, AppRouteEntry):
        plain = _PARAM.search(route.pattern) is None and {"GET", "*"} & set(route.methods)
        return ([route.pattern] if plain else []), False
    return [_PARAM.sub("1", route.pattern)], False


def probed_routes(
    routes: list[RouteEntry], health: HealthConfig, mount: str = "/"
) -> list[RouteEntry]:
    """The routes a gate probes: those with a probe path.

    When a one-app project's changed routes have none (only POSTs or routes
    with parameters changed, and no probes are configured), its app is
    probed at its mount path instead: the new deployment must answer there
    without a server error.
    """
    kept = [r for r in routes if probe_paths(r, health)[0]]
    apps = [r for r in routes if isinstance(r, AppRouteEntry)]
    if kept or not apps:
        return kept
    app = apps[0]
    return [AppRouteEntry(mount, app.module, "", app.entry, app.bundle, methods=["GET"])]


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 404: "Not Found", 500: "Error"}


def status_text(code: str) -> str:
    return f"{code} {_REASONS[int(code)]}" if code.isdigit() and int(code) in _REASONS else code


def run_gate(
    wave: int,
    regions: list[RegionInfo],
    routes: list[RouteEntry],
    deployment: str,
    health: HealthConfig,
    extra_checks: list | None = None,
) -> GateReport:
    jobs: list[tuple[RegionInfo, RouteEntry, str, bool]] = []
    offset = 0
    for route in routes:
        paths, configured = probe_paths(route, health)
        for path in paths:
            # min_samples per probe path, dealt round-robin from a moving
            # start, so a wide wave has every region probed without probing
            # every path in every region.
            for i in range(health.min_samples):
                jobs.append((regions[(offset + i) % len(regions)], route, path, configured))
            offset += health.min_samples
    for i in range(offset, len(regions)):  # a region no probe reached yet
        if routes:
            route = routes[i % len(routes)]
            paths, configured = probe_paths(route, health)
            jobs.append((regions[i], route, paths[0], configured))

    # A few at a time over kept-alive connections, regions interleaved (see
    # probes): latency is what is measured, and more at once than the machine
    # has cores would measure queueing instead.
    answers = probe_all(
        [(region.url, path) for region, _, path, _ in jobs], health.timeout_s, deployment
    )
    probes: list[tuple[Probe, bool]] = []
    for (region, route, path, configured), answer in zip(jobs, answers, strict=True):
        if isinstance(answer.error, TimeoutError):
            why = str(answer.error) or "timed out"
            probe = Probe(region.name, route.pattern, path, None, health.timeout_s, why)
        elif answer.error is not None or answer.response is None:
            err = answer.error
            probe = Probe(region.name, route.pattern, path, None, 0.0, f"unreachable: {err}")
        else:
            status, headers, _, seconds = answer.response
            probe = Probe(
                region.name,
                route.pattern,
                path,
                status,
                seconds,
                None,
                headers.get(DEPLOYMENT_HEADER),
                answer.kept_alive,
                answer.streamed,
            )
        probes.append((probe, configured))

    verdicts: dict[str, RouteVerdict] = {}
    problems: list[str] = []
    by_route: dict[str, list[tuple[Probe, bool]]] = {}
    for probe, configured in probes:
        by_route.setdefault(probe.route, []).append((probe, configured))
    for route in routes:
        results = by_route.get(route.pattern, [])
        done = [p for p, _ in results if p.status is not None]
        statuses: dict[str, int] = {}
        for p, _ in results:
            key = str(p.status) if p.status is not None else (p.error or "error").split(":")[0]
            statuses[key] = statuses.get(key, 0) + 1
        latency = p99([p.seconds for p in done]) * 1000 if done else None
        verdict = RouteVerdict(route.pattern, len(done), latency, statuses)
        for p, configured in results:
            bad = None
            if p.status is None:
                bad = p.error
            elif configured and p.status != health.expect_status:
                bad = f"status {p.status}, expected {health.expect_status}"
            elif not configured and p.status >= 500:
                bad = f"status {p.status} (a server error)"
            elif p.deployment != deployment:
                bad = f"answered by {p.deployment}, not {deployment}"
            if bad:
                verdict.problems.append(f"{p.region} {p.path}: {bad}")
        if len(done) < health.min_samples:
            verdict.problems.append(
                f"only {len(done)} of at least {health.min_samples} probes completed"
            )
        if latency is not None and latency > health.p99_ms:
            verdict.problems.append(f"p99 {latency:.0f}ms > {health.p99_ms:g}ms")
        verdicts[route.pattern] = verdict
        for text in dict.fromkeys(verdict.problems):
            problems.append(
                f"route {route.pattern}: {text} (samples {len(done)}, "
                f"p99 {'-' if latency is None else f'{latency:.0f}ms'})"
            )
    for check in extra_checks or []:
        for region in regions:
            for text in check(region.name, region.url, deployment, [r.pattern for r in routes]):
                problems.append(f"{region.name}: {text}")
    kept_alive = sum(p.kept_alive for p, _ in probes)
    streamed = sum(p.streamed for p, _ in probes)
    return GateReport(
        wave, [r.name for r in regions], list(verdicts.values()), problems, kept_alive, streamed
    )
