"""The plugin manager: hookspecs, the built-in local fleet, entry-point plugins."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import pluggy

from vega_dag.plugins import hookspecs

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)
#: The entry-point group plugins register under (``[project.entry-points.vega_dag]``).
ENTRY_POINT_GROUP = "vega_dag"


class LocalFleetPlugin:
    """The built-in region target: region processes on this machine."""

    @hookimpl(trylast=True)
    def vega_dag_region_target(self, config: ProjectConfig) -> hookspecs.RegionTarget:
        from vega_dag.regions.fleet import LocalFleet

        return LocalFleet(config)


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(LocalFleetPlugin(), name="local-fleet")
    if _may_declare_plugins():
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


def _may_declare_plugins() -> bool:
    """Whether an installed distribution's metadata names the ``vega_dag`` group.

    A prefilter for pluggy's loading, which imports importlib.metadata (and
    email, zipfile, …): more start-up than the rest of `vega-dag status`.
    Reading the ``entry_points.txt`` files where importlib.metadata's path
    finder looks is a few milliseconds; a distribution only a custom finder
    knows of is found by asking importlib.metadata when one is installed.
    """
    import os
    import sys
    from importlib.machinery import PathFinder

    marker = f"[{ENTRY_POINT_GROUP}]".encode()
    if any(f is not PathFinder and hasattr(f, "find_distributions") for f in sys.meta_path):
        return True
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(entry or ".", name, "entry_points.txt"), "rb") as f:
                    if marker in f.read():
                        return True
            except OSError:
                continue
    return False


def region_target(config: ProjectConfig) -> hookspecs.RegionTarget:
    return get_plugin_manager().hook.vega_dag_region_target(config=config)


def health_checks(config: ProjectConfig) -> list[hookspecs.HealthCheck]:
    return [
        c
        for group in get_plugin_manager().hook.vega_dag_health_checks(config=config)
        for c in group
    ]


def compile_steps(config: ProjectConfig) -> list[hookspecs.CompileStep]:
    return [
        s
        for group in get_plugin_manager().hook.vega_dag_compile_steps(config=config)
        for s in group
    ]
