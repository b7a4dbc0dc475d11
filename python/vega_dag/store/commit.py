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
    """Store the build's new objects and bundle trees (one pack)."""
    ctx.store.put_many(ctx.new_objects, ctx.new_trees)


def push_outputs(ctx: BuildContext, manifest_digest: str) -> None:
    """Share what this build made on the remote store: objects first, then their entries.

    The compile and layer entries only: a bundle is a tree of objects the
    reader already holds, cheaper to make again than to fetch. What came
    from the remote is not sent back.
    """
    if ctx.remote_url is None or ctx.dry_run:
        return
    ctx.remote_lookup([])  # a prefetch no stage needed is settled before the remote is shared
    actions = {
        k: d
        for k, d in ctx.new_actions.items()
        if k not in ctx.remote_hits and d not in ctx.new_trees
    }
    manifest = ctx.new_objects.get(manifest_digest)
    remote = ctx.remote
    if remote is None or (not actions and manifest_digest in remote.known):
        ctx.remote_down()
        return
    objects = {d: ctx.new_objects.get(d) or ctx.store.get(d) for d in actions.values()}
    if manifest is not None:
        objects[manifest_digest] = manifest
    if ctx.tree_key is not None and not ctx.tree_found:
        # A cold build (a CI runner's, say) also leaves its small outputs as one
        # pack under the tree's key: the next cold build of the same tree
        # fetches it in two requests.
        from vega_dag.store.remote import PACK_LIMIT, encode_pack

        small = {
            k: (d, data)
            for k, d in {**ctx.new_actions, **ctx.remote_hits}.items()
            if (data := ctx.new_objects.get(d)) is not None and len(data) < (1 << 20)
        }
        if 0 < sum(len(b) for _, b in small.values()) <= PACK_LIMIT:
            pack = encode_pack(small)
            pack_digest = _core.hash_bytes(pack)
            objects[pack_digest] = pack
            actions[ctx.tree_key] = pack_digest
    done = remote.upload(objects, actions)
    ctx.remote_down()
    if done.refused is not None:
        ctx.warnings.append(f"{done.refused}; nothing more was uploaded")
    ctx.why(
        f"remote cache {remote.url}: uploaded {done.objects} objects and {done.actions} "
        f"entries ({done.present} already there)"
    )


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
    if a.tables is not None:
        from vega_dag.graph.tables import TABLES_FILE, save_tables

        # What the next one-shot build of the same file list reads instead of
        # deriving it (a no-op where the file already holds these tables).
        save_tables(ctx.state_path.with_name(TABLES_FILE), a.tables)
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
