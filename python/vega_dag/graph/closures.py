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
    included: dict[str, list[str]] | None = None,
    included_digest: str = "",
    whole: set[str] | None = None,
) -> dict[str, list[str]]:
    """route pattern → the sorted modules of its closure (the last build's, if they stand).

    ``included`` names, per route, the modules its ``include`` globs add
    (``bundle.files.included_modules``): their closures join the route's.
    ``included_digest`` identifies them (the cached closures were computed
    for ``state.included``). ``whole`` names routes whose bundle holds every
    module (``graph.app``: a Django app, which loads its settings, URLs and
    apps by name).
    """
    wanted = {p: r.module.name for p, r in routes.items()}
    if (
        state.edges == edges_digest
        and state.included == included_digest
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

    extra = included or {}
    roots = set(wanted.values()).union(*extra.values())
    by_module = closures(import_graph(deps), sorted(roots))
    out = {}
    for p, m in sorted(wanted.items()):
        if p in (whole or ()):
            out[p] = everything
        elif p in extra:
            out[p] = sorted(set(by_module[m]).union(*(by_module[n] for n in extra[p])))
        else:
            out[p] = by_module[m]
    return out
