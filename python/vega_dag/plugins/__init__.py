"""Plugin points (pluggy), discovered through the ``vega_dag`` entry-point group.

- ``vega_dag_region_target(config)``: where regions live. The local fleet is
  the built-in implementation; a plugin returning a target object replaces it
  (first non-None result wins). See ``RegionTarget`` in ``hookspecs``.
- ``vega_dag_health_checks(config)``: extra gate checks, each
  ``check(region, url, deployment, routes) -> list[str]`` of problems.
- ``vega_dag_compile_steps(config)``: source transforms before compile, each
  with a ``name`` and ``version`` that belong in the toolchain identity.
"""

from vega_dag.plugins.manager import get_plugin_manager, hookimpl

__all__ = ["get_plugin_manager", "hookimpl"]
