"""The closure step: every module each route's bundle must hold.

Computed over the condensation of the import graph (``graph.dag``), and only
when the edges or the routes changed: networkx is imported only then. With a
shared store (store.remote) they are an action too, keyed by the edges and
the routes: importing networkx and walking the graph is most of what a cold
build on a second machine would otherwise do beyond fetching its objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from vega_dag.graph.modules import Route
    from vega_dag.pipeline.context import BuildContext
    from vega_dag.store.state import BuildState


def route_closures(
    routes: dict[str, Route],
    deps: dict[str, list[str]],
    edges_digest: str,
    state: BuildState,
    ctx: BuildContext | None = None,
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
    shared = ctx is not None and ctx.remote_url is not None and not ctx.dry_run
    if shared:
        assert ctx is not None
        from_shared = _shared_closures(ctx, edges_digest, wanted, deps, included_digest)
        if from_shared is not None:
            return from_shared
    # Only here is networkx imported: the edges changed.
    from vega_dag.graph.dag import closures, import_graph

    extra = included or {}
    roots = set(wanted.values()).union(*extra.values())
    by_module = closures(import_graph(deps), sorted(roots))
    result = {}
    for p, m in sorted(wanted.items()):
        if p in (whole or ()):
            result[p] = everything
        elif p in extra:
            result[p] = sorted(set(by_module[m]).union(*(by_module[n] for n in extra[p])))
        else:
            result[p] = by_module[m]
    if shared:
        assert ctx is not None
        from vega_dag import _core

        data = msgspec.json.encode(result, order="sorted")
        digest = _core.hash_bytes(data)
        ctx.new_objects[digest] = data
        ctx.new_actions[_key(edges_digest, wanted, included_digest)] = digest
    return result


def _key(edges_digest: str, wanted: dict[str, str], included_digest: str) -> str:
    from vega_dag.store.actions import action_key

    # The include globs' modules join closures: the key names them (empty when none).
    return action_key("closures", edges_digest, wanted, included_digest)


def _shared_closures(
    ctx: BuildContext,
    edges_digest: str,
    wanted: dict[str, str],
    deps: dict[str, list[str]],
    included_digest: str,
) -> dict[str, list[str]] | None:
    """The closures the shared store holds for these edges and routes, if they make sense."""
    from vega_dag.compile.dirty import from_remote

    key = _key(edges_digest, wanted, included_digest)
    misses = from_remote(ctx, [key], "route closures")
    digest = ctx.remote_hits.get(key)
    if digest is None:
        if key in misses:
            ctx.why(f"route closures: computed here; remote: {misses[key]}")
        return None
    try:
        found = msgspec.json.decode(ctx.new_objects[digest], type=dict[str, list[str]])
    except msgspec.DecodeError:
        found = None
    # The object is the one its entry names; still, a closure must be one of
    # these routes' and hold only known modules, its route's own among them.
    if (
        found is None
        or found.keys() != wanted.keys()
        or any(wanted[p] not in c or not deps.keys() >= set(c) for p, c in found.items())
    ):
        ctx.why(f"route closures: computed here; remote: object {digest} does not fit: refused")
        del ctx.remote_hits[key], ctx.new_actions[key], ctx.new_objects[digest]
        return None
    return dict(sorted(found.items()))
