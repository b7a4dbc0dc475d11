"""Plugin points (pluggy), discovered through the ``vega_dag`` entry-point group.

- ``vega_dag_region_target(config)``: where regions live. The local fleet is
  the built-in implementation; a plugin returning a target object replaces it
  (first non-None result wins). See ``RegionTarget`` in ``hookspecs``.
- ``vega_dag_health_checks(config)``: extra gate checks, each
  ``check(region, url, deployment, routes) -> list[str]`` of problems.
- ``vega_dag_compile_steps(config)``: source transforms before compile, each
  with a ``name`` and ``version`` that belong in the toolchain identity.
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: the typing module costs start-up (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from vega_dag.plugins.manager import get_plugin_manager, hookimpl

__all__ = ["get_plugin_manager", "hookimpl"]


def __getattr__(name: str) -> object:
    # Imported on first use: ``vega_dag.plugins.declared`` (what `vega-dag status`
    # reads) must not cost pluggy's import.
    if name in __all__:
        from vega_dag.plugins import manager

        return getattr(manager, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
