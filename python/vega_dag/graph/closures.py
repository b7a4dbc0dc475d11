"""The closure step: every module each route's bundle must hold.

Computed over the condensation of the import graph (``graph.dag``), and only
when the edges or the routes changed: networkx is imported only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vega_dag.graph.modules import Route
    from vega_dag.store.state import BuildState


def route_closures(
    routes: dict[str, Route],
    deps: dict[str, list[str]],
    edges_digest: str,
    state: BuildState,
    whole: set[str] | None = None,
) -> dict[str, list[str]]:
    """route pattern → the sorted modules of its closure (the last build's, if they stand).

    ``whole`` names routes whose bundle holds every module (``graph.app``:
    a Django app, which loads its settings, URLs and apps by name).
    """
    wanted = {p: r.module.name for p, r in routes.items()}
    if (
        state.edges == edges_digest
        and set(state.closures) == set(wanted)
        # A pattern served by another module now (a one-app project's app
        # moved) has another closure.
        and all((old := state.routes.get(p)) is None or old.module == m for p, m in wanted.items())
        and all(len(state.closures[p]) == len(deps) for p in whole or ())
    ):
        return state.closures
    everything = sorted(deps)
    if whole and set(whole) == set(wanted):
        return {p: everything for p in sorted(wanted)}
    # Only here is networkx imported: the edges changed.
    from vega_dag.graph.dag import closures, import_graph

    by_module = closures(import_graph(deps), sorted(set(wanted.values())))
    whole = whole or set()
    return {p: everything if p in whole else by_module[m] for p, m in sorted(wanted.items())}
