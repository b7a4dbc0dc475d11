"""The plugin manager: hookspecs, the built-in local fleet, entry-point plugins."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import pluggy

from vega_dag.plugins import hookspecs
from vega_dag.plugins.declared import ENTRY_POINT_GROUP
from vega_dag.plugins.declared import may_declare_plugins as _may_declare_plugins

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)


class LocalFleetPlugin:
    """The built-in region target: region processes on this machine."""

    @hookimpl(trylast=True)
    def vega_dag_region_target(self, config: ProjectConfig) -> hookspecs.RegionTarget:
        from vega_dag.regions.target import builtin_target

        return builtin_target(config)


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(LocalFleetPlugin(), name="local-fleet")
    if _may_declare_plugins():
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


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
