"""The hook specifications, and the interfaces their results implement."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from vega_dag.config import ProjectConfig
    from vega_dag.regions.fleet import RegionError, RegionInfo

PROJECT = "vega_dag"
hookspec = pluggy.HookspecMarker(PROJECT)


class RegionTarget(Protocol):
    """Where a project's regions run. Pointers live in the pointer store at ``db_path``.

    A remote fleet implements the same calls over its own control plane: the
    rollout only lists regions, makes sure they run, asks each to prefetch
    (load and verify every blob of a manifest), and waits for each to serve
    the deployment its pointer names.

    ``prefetch`` may take a keyword ``wait``: with ``wait=False`` it returns
    once the blobs are verified and loads in the background (the deploy then
    calls it again with ``wait=True`` before moving a wave's pointers), and a
    keyword ``load_timeout``: the seconds the deployment may take to load (the
    project's ``[tool.vega.health] load_timeout_s``), after which that
    region's prefetch fails, saying which route it was loading. A
    target may also offer ``prefetch_many(regions, manifest, wait=, errors=)``
    and ``wait_serving_many([(region, deployment)])``: one call for many
    regions (see ``LocalFleet``), which may take ``meanwhile``, the pointer
    write to run once every region has been asked (a rollback then swaps
    inside it); and, to heal, ``start_missing(count)``,
    ``settle(regions)``, ``down_regions(regions)`` and
    ``converge_later(skipped, deployment, moved)`` (a deploy's
    ``on_region_down``; without them a target's down regions are the ones
    with a pointer that do not run).
    """

    name: str
    db_path: Path

    def regions(self) -> list[RegionInfo]: ...

    def up(self, count: int) -> tuple[list[RegionInfo], bool]: ...

    def prefetch(self, region: RegionInfo, manifest: str) -> dict: ...

    def status(self, region: RegionInfo) -> dict: ...

    def statuses(self, regions: list[RegionInfo]) -> dict[str, dict | RegionError]:
        """Each region's status, or the error that reaching it raised (``vega-dag status``)."""
        ...

    def wait_serving(
        self, region: RegionInfo, deployment: str | None, timeout: float = 30.0
    ) -> float: ...


#: ``check(region, url, deployment, changed_routes) -> problems``
HealthCheck = Callable[[str, str, str, list[str]], list[str]]


class CompileStep(Protocol):
    """A source transform run before compile; ``name``/``version`` enter the toolchain."""

    name: str
    version: str

    def transform(self, path: str, source: bytes) -> bytes: ...


@hookspec(firstresult=True)
def vega_dag_region_target(config: ProjectConfig) -> RegionTarget | None:
    """Return the region target for this project, or None to leave it to others."""


@hookspec
def vega_dag_health_checks(config: ProjectConfig) -> list[HealthCheck]:
    """Return extra health checks run by every gate."""


@hookspec
def vega_dag_compile_steps(config: ProjectConfig) -> list[CompileStep]:
    """Return source transforms; the build runs those ``[tool.vega] compile_steps`` names."""
