"""The commit: a build's outputs made durable, then what the next build starts from.

Nothing is written before every stage has succeeded, so a build that fails
leaves the store and caches as they were. The objects come first (durable
before the build answers); ``record`` writes the caches that point at them:
the daemon runs it after answering, still holding the store's lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vega_dag import _core
from vega_dag.daemon import warm
from vega_dag.scan.statcache import save_stat_cache, settled
from vega_dag.store.state import (
    BuildHead,
    BuildState,
    ModuleRecord,
    RouteRecord,
    save_head,
    save_parse_cache,
    save_state,
)

if TYPE_CHECKING:
    from vega_dag.bundle.files import RouteFiles
    from vega_dag.compile.dirty import Compiled
    from vega_dag.graph.analysis import Analysis
    from vega_dag.pipeline.context import BuildContext


def put_outputs(ctx: BuildContext) -> None:
    """Store the build's new objects and bundle assemblies (one pack)."""
    ctx.store.put_many(ctx.new_objects, ctx.new_assemblies)


def record(
    ctx: BuildContext,
    state: BuildState,
    new_stat: _core.StatTable,
    config_digest: str,
    a: Analysis,
    compiled: Compiled,
    routes: dict[str, RouteRecord],
    layer: tuple[str, str] | None,
    manifest_digest: str,
    module_items: list[tuple[str, str]],
    files: RouteFiles | None = None,
) -> None:
    """Record what the next build starts from: action cache, state, head, stat cache.

    ``state`` is the last build's, ``new_stat`` this build's scan.
    """
    for key, out in ctx.new_actions.items():
        ctx.actions.put(key, out)
    ctx.actions.save()
    new_state = BuildState(
        toolchain=ctx.toolchain,
        config=config_digest,
        module_set=a.module_set,
        edges=a.edges_digest,
        manifest=manifest_digest,
        layer=layer,
        modules=module_records(ctx, a, compiled, state),
        routes=routes,
        closures=a.closures,
        included=a.included_digest,
        route_files=files.members if files is not None else {},
    )
    save_state(ctx.state_path, new_state, state)
    if a.parse_cache is not None:
        save_parse_cache(ctx.parse_cache_path, a.parse_cache)
    # The head last: a crash before it leaves the old head, which the
    # next build does not trust blindly (the scan finds the changes).
    save_head(
        ctx.head_path,
        BuildHead(
            toolchain=ctx.toolchain,
            config=config_digest,
            manifest=manifest_digest,
            layer=layer[1] if layer else None,
            modules=len(a.modules),
            routes={p: r.bundle for p, r in routes.items()},
        ),
    )
    save_stat_cache(ctx.stat_path, new_stat)
    settled(ctx.root, new_stat, new_stat)
    warm.remember(
        "last-build",
        warm.LastBuild(
            root=ctx.root,
            stat=new_stat,
            state=new_state,
            index=ctx.store.index,
            tables_key=a.tables_key,
            digests=a.digests,
            pyc=compiled.pyc,
            deps=a.deps,
            source_items=module_items,
        ),
    )


def module_records(
    ctx: BuildContext, a: Analysis, compiled: Compiled, state: BuildState
) -> dict[str, ModuleRecord]:
    """Each module's record for the next build, sorted by name."""
    modules, digests, deps, pyc = a.modules, a.digests, a.deps, compiled.pyc
    if a.edited is not None and state.toolchain == ctx.toolchain:
        # Same modules: the last records, but those this build looked at.
        records = dict(state.modules)
        for name in compiled.checked:
            m = modules[name]
            old = records[name]
            if old.source != digests[m.path] or old.pyc != pyc[name] or old.deps is not deps[name]:
                records[name] = ModuleRecord(
                    path=m.path, source=digests[m.path], pyc=pyc[name], deps=deps[name]
                )
        return records
    return {
        name: ModuleRecord(path=m.path, source=digests[m.path], pyc=pyc[name], deps=deps[name])
        for name, m in sorted(modules.items())
    }
