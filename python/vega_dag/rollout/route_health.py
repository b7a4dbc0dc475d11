"""Route health for ``vega-dag status --probe``: every route of each region's deployment, once.

The same probes and verdicts as a gate (configured paths must answer
``expect_status``; others must not answer 5xx; the answer must come from the
deployment the region's pointer names), one sample per path, without the
gate's p99 and sample-count rules: a snapshot of health, not a promotion test.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from vega_dag.config import HealthConfig
from vega_dag.manifest import Manifest
from vega_dag.regions import DEPLOYMENT_HEADER
from vega_dag.rollout.health import Connections, p99, probe_paths

#: Probes in flight at once (the machine's cores are what is measured otherwise).
CONCURRENCY = 8


def probe_region(
    url: str, deployment: str, manifest: Manifest, health: HealthConfig, mount: str = "/"
) -> tuple[str, list[str], float | None]:
    """(summary, problems, p99 ms) for one region serving ``deployment``."""
    jobs: list[tuple[str, str, bool]] = []
    routes = list(manifest.routes)
    if manifest.app_routes and routes:
        # A one-app project: its routes as a gate probes them (deploy.app_changes).
        from vega_dag.rollout.deploy import app_changes
        from vega_dag.rollout.health import probed_routes

        routes = probed_routes(app_changes(None, manifest, routes[0]), health, mount)
    for route in routes:
        paths, configured = probe_paths(route, health)
        jobs.extend((route.pattern, path, configured) for path in paths)

    def one(job: tuple[str, str, bool]) -> tuple[str, float | None, str | None]:
        pattern, path, configured = job
        try:
            status, headers, _, seconds = connections.to(url).request(
                path, timeout=health.timeout_s
            )
        except TimeoutError:
            return pattern, None, f"{path}: timed out"
        except OSError as err:
            return pattern, None, f"{path}: unreachable: {err}"
        if configured and status != health.expect_status:
            return pattern, seconds, f"{path}: status {status}, expected {health.expect_status}"
        if not configured and status >= 500:
            return pattern, seconds, f"{path}: status {status}"
        if headers.get(DEPLOYMENT_HEADER) != deployment:
            return pattern, seconds, f"{path}: answered by {headers.get(DEPLOYMENT_HEADER)}"
        return pattern, seconds, None

    # Kept-alive connections, as a gate probes (see health).
    with Connections() as connections, ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        results = list(pool.map(one, jobs))
    problems = [f"route {pattern} {problem}" for pattern, _, problem in results if problem]
    timings = [s for _, s, _ in results if s is not None]
    latency = p99(timings) * 1000 if timings else None
    count = len(routes)
    failing = len({pattern for pattern, _, problem in results if problem})
    p99_text = "-" if latency is None else f"{latency:.0f}ms"
    if problems:
        summary = f"failing: {failing} of {count} routes ({problems[0]})"
    else:
        summary = f"ok: {count} routes answer, p99 {p99_text}"
    return summary, problems, latency
