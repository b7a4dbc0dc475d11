"""``build(root)``: one incremental, content-addressed build of a project.

The stages, in order, each in its own package and skipped when its inputs
did not change:

1. scan (``scan``): stat cache first, BLAKE3 only for files whose stat
   changed (Rust); a project with no change stops here (the no-op check);
2. graph (``graph.analysis``): module tables, imports of changed files parsed
   (Rust, cached by content digest) and resolved into first-party edges; when
   the edges changed, each route's closure over their condensation;
3. compile (``compile.dirty``): every module whose (source digest, path,
   toolchain) has no cached output, in parallel, into canonical bytecode;
4. bundle (``bundle.files``, ``bundle.bundles``, ``bundle.layer``): each
   route's data files (package data, include globs); every route whose
   members (pyc and data digests) or metadata changed: a change that
   compiles to identical bytes rebuilds nothing (early cutoff); the
   dependency layer, keyed by the lock's pins; each route whose bundle was
   made imported from it alone, isolated (``bundle.importcheck``);
5. manifest (``manifest.assemble``);
6. commit (``store.commit``): new objects (one pack), then action cache,
   state, head and stat cache.

Nothing is recorded as a success before every stage has succeeded, so a
build that fails leaves the store and caches as they were.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vega_dag.config import ProjectConfig, config_digest, load_config
from vega_dag.daemon import warm
from vega_dag.pipeline.context import BuildContext
from vega_dag.pipeline.result import BuildError, BuildResult, Reporter
from vega_dag.scan.project import check_skipped
from vega_dag.scan.statcache import load_stat_cache, refresh, save_stat_cache, settled
from vega_dag.store.objects import ObjectStore
from vega_dag.store.state import BuildHead, load_head, load_state

if TYPE_CHECKING:
    from vega_dag import _core
    from vega_dag.graph.analysis import Analysis

# The no-op path (nothing changed) must stay cheap to start: the stages past
# the scan (parsing, resolving, compiling, bundling) are imported by rebuild.


def build(
    root: Path,
    *,
    explain: bool = False,
    workers: int | None = None,
    reporter: Reporter | None = None,
    config: ProjectConfig | None = None,
    verify: bool = False,
    dry_run: bool = False,
    state_dir: Path | None = None,
    store_url: str | None = None,
    import_check: bool = True,
) -> BuildResult:
    """Build the project at ``root``; see the module docstring.

    With ``verify``, every reused output is read back and checked against its
    digest (damaged ones are rebuilt); otherwise outputs are checked when
    read, so a damaged object is found when a bundle or deploy reads it.

    With ``dry_run``, everything is computed (in memory) and nothing is
    written: the result says exactly what a real build would produce.

    ``state_dir`` keeps this build's state (what the next build compares
    with) apart from the project's, sharing the store and action cache: a
    toolchain bisection builds each version without moving the project's head.

    ``store_url`` (``--store``) names the shared store (store.remote), over
    VEGA_DAG_STORE and ``[tool.vega.backend] store``; "local" means none.

    Without ``import_check``, the changed routes are not imported from their
    bundles (``bundle.importcheck``; also off by ``[tool.vega.import_check]``).
    """
    started = time.perf_counter()
    config = config or load_config(root)
    store = ObjectStore(config.store_dir)
    # A build allocates hundreds of thousands of small objects (state, index)
    # and creates no reference cycles worth collecting: the cyclic GC would
    # only rescan them, which costs seconds on a 20,000-module project.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(store.locked())
            ctx = BuildContext.create(
                config,
                store,
                started,
                reporter=reporter,
                workers=workers,
                explain=explain,
                verify=verify,
                dry_run=dry_run,
                state_dir=state_dir,
                store_url=store_url,
            )
            ctx.import_check = import_check
            result, tail = run(ctx)
            if tail is not None:
                # The daemon answers first and records the caches after,
                # still holding the store's lock (daemon.warm.defer).
                locked = stack.pop_all()

                def finish(tail: Callable[[], None] = tail) -> None:
                    with locked:
                        tail()

                if not warm.defer(finish):
                    finish()
                    result.seconds = time.perf_counter() - started
            return result
    finally:
        if gc_was_enabled:
            gc.enable()


def run(ctx: BuildContext) -> tuple[BuildResult, Callable[[], None] | None]:
    """The stages in order: the result, and the commit's last part (None: nothing to record)."""
    # 1. scan
    base_stat = load_stat_cache(ctx.stat_path)
    changes, new_stat = refresh(ctx.root, base_stat, skip_dirs=ctx.skip_dirs)
    problems = check_skipped(changes)
    if problems:
        raise BuildError(problems)
    # The no-op check: nothing changed, so the last build stands, and only
    # the small head of the state is read.
    digest_of_config = config_digest(ctx.config)
    head = load_head(ctx.head_path)
    if (
        not changes.changed
        and not changes.removed
        and not ctx.verify
        and head.manifest is not None
        and head.toolchain == ctx.toolchain
        and head.config == digest_of_config
        and ctx.store.verified(head.manifest)  # a few KB: a damaged manifest is rebuilt
    ):
        return _unchanged(ctx, changes, base_stat, new_stat, head, head.manifest), None
    return rebuild(ctx, changes, base_stat, new_stat, digest_of_config)


def _unchanged(
    ctx: BuildContext,
    changes: _core.Changes,
    base_stat: _core.StatTable,
    new_stat: _core.StatTable,
    head: BuildHead,
    manifest: str,
) -> BuildResult:
    """The result of a build that changed nothing: the head's (``manifest`` is its manifest)."""
    if changes.hashed and not ctx.dry_run:
        save_stat_cache(ctx.stat_path, new_stat)
        settled(ctx.root, new_stat, new_stat)
        warm.restat_last_build(base_stat, new_stat)
    elif not changes.hashed:
        settled(ctx.root, base_stat, new_stat)  # the same entries
    return BuildResult(
        manifest=manifest,
        modules_compiled=0,
        modules_cached=head.modules,
        bundles_built=0,
        bundles_cached=len(head.routes),
        seconds=time.perf_counter() - ctx.started,
        routes=head.routes,
        layer=head.layer,
        noop=True,
    )


def rebuild(
    ctx: BuildContext,
    changes: _core.Changes,
    base_stat: _core.StatTable,
    new_stat: _core.StatTable,
    digest_of_config: str,
) -> tuple[BuildResult, Callable[[], None] | None]:
    """Stages 2-6, for a project that changed since its last build."""
    from vega_dag.bundle.bundles import build_bundles
    from vega_dag.bundle.files import bundle_files
    from vega_dag.bundle.routes import route_entries
    from vega_dag.compile.dirty import compile_modules
    from vega_dag.graph.analysis import analyze
    from vega_dag.manifest.assemble import assemble_manifest, source_items
    from vega_dag.store.commit import push_outputs, put_outputs, record

    state = load_state(ctx.state_path)
    if ctx.remote_url is not None and state.toolchain != ctx.toolchain and not ctx.dry_run:
        keys, tree_key = cold_keys(ctx, changes)
        ctx.prefetch(keys, tree_key)
    last = warm.last_build(ctx.root, base_stat, state, changes)
    # 2. graph
    a = analyze(ctx, changes, state, last)
    entries = route_entries(ctx, a.routes, a.digests, a.parsed, state)
    # 3. compile
    compiled = compile_modules(ctx, a, state, last)
    # 4. bundle: each route's files besides its modules, its bundle, and the
    # dependency layer (its module only for a project with a lock)
    files = bundle_files(ctx, a)
    bundled = build_bundles(ctx, a, entries, compiled, state, files)
    layer = None
    lock = ctx.config.lock_path
    if lock is not None:
        from vega_dag.bundle.layer import dependency_layer

        layer = dependency_layer(ctx, lock, state)
    # A one-app project's app lists its framework's routes where it is imported.
    app = next((r for r in a.routes.values() if r.app is not None), None)
    discover: dict[str, dict] = {}
    listed: set[str] = set()
    if app is not None:
        from vega_dag.bundle import discover as app_discovery

        app_record = bundled.records[app.pattern]
        key = app_discovery.discovery_key(ctx, app_record, layer[1] if layer else None)
        if app_discovery.cached(ctx, key) is None:
            discover[app.pattern] = app_discovery.request(app_record)
            last_layer = layer[1] if layer else None
            if app_discovery.last_listing(ctx, state, app, app_record, last_layer) is not None:
                listed.add(app.pattern)
    # ... and each changed route imported from its bundle alone
    answers: dict[str, dict] = {}
    if ctx.import_check:
        from vega_dag.bundle.importcheck import check_imports

        # What a route's import sees besides its bundle: the layer and the env.
        everything = state.manifest is not None and (
            layer != state.layer or state.config != digest_of_config
        )
        answers = check_imports(
            ctx, a, compiled, files, bundled, layer, state, everything, discover, listed
        )
    found = []
    if app is not None:
        found = app_discovery.app_routes(
            ctx, a, app, compiled, files, bundled, state, layer, answers.get(app.pattern)
        )
    # 5. manifest
    module_items = source_items(a, last)
    manifest_bytes, manifest_digest = assemble_manifest(
        ctx, a, module_items, bundled.records, layer, digest_of_config, files, found
    )
    ctx.new_objects[manifest_digest] = manifest_bytes

    built = len(bundled.rebuilt & bundled.records.keys())
    result = BuildResult(
        manifest=manifest_digest,
        modules_compiled=len(compiled.compiled),
        modules_cached=len(a.modules) - len(compiled.compiled),
        bundles_built=built,
        bundles_cached=len(bundled.records) - built,
        seconds=time.perf_counter() - ctx.started,
        routes={p: r.bundle for p, r in bundled.records.items()},
        layer=layer[1] if layer else None,
        compiled=sorted(a.modules[n].path for n in compiled.compiled),
        explain=ctx.explained,
        manifest_data=manifest_bytes,
    )
    if ctx.dry_run:
        return result, None
    remote_pyc = set(ctx.remote_hits.values())
    # 6. commit: objects first (durable before the build answers), then the
    # caches that point at them (after the answer, in the daemon).
    put_outputs(ctx)
    # Before the build answers: a daemon's tail has no one to warn.
    push_outputs(ctx, manifest_digest)
    if ctx.reporter.on_stored is not None:
        ctx.reporter.on_stored(manifest_digest)
    result.warnings = ctx.warnings
    result.modules_remote = sum(1 for n in a.modules if compiled.pyc[n] in remote_pyc)
    tail = functools.partial(
        record,
        ctx,
        state,
        new_stat,
        digest_of_config,
        a,
        compiled,
        bundled.records,
        layer,
        manifest_digest,
        module_items,
        files,
    )
    result.seconds = time.perf_counter() - ctx.started
    return result, tail


def cold_keys(ctx: BuildContext, changes: _core.Changes) -> tuple[list[str], str]:
    """The action keys a build with nothing of its own to reuse will look up (every .py
    file's compile key and the layer's, computed as compile.dirty and bundle.layer do), and
    the key of the tree: of its compile keys, sorted."""
    from vega_dag.store.actions import action_key

    keys = sorted(
        action_key("compile", digest, path, ctx.tc_key)
        for path, digest in changes.table.digests().items()
        if path.endswith(".py")
    )
    tree_key = action_key("tree", keys)
    lock = ctx.config.lock_path
    if lock is not None:
        from vega_dag.bundle.layer import LockError, read_lock, target_tag

        with contextlib.suppress(LockError):  # the layer step reports it
            keys.append(action_key("layer", read_lock(lock), target_tag()))
    return keys, tree_key


def analyze_project(root: Path) -> Analysis:
    """Scan, parse and resolve the project without compiling or writing anything.

    Caches of an earlier build are read (so only changed files are parsed),
    never written.
    """
    from vega_dag.graph.analysis import analyze

    config = load_config(root)
    ctx = BuildContext.create(config, ObjectStore(config.store_dir), time.perf_counter())
    changes, _ = refresh(config.root, load_stat_cache(ctx.stat_path), skip_dirs=ctx.skip_dirs)
    problems = check_skipped(changes)
    if problems:
        raise BuildError(problems)
    return analyze(ctx, changes, load_state(ctx.state_path))
