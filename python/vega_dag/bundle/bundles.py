"""The bundle step: which route bundles must be rebuilt, and building them.

A bundle whose members' compiled bytes did not change stands without even
computing its key (early cutoff); otherwise its key (``bundle_inputs``) is
looked up in the action cache, and the misses are built as trees
(``store.tree``: a bundle's identity is the digest of its sorted (entry
name, member digest) pairs, made in one parallel pass of the core) and stored
as their tree records. No bundle's archive is made here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vega_dag import _core
from vega_dag.bundle.routes import (
    BUNDLE_EPOCH,
    RouteMeta,
    archive_name,
    archive_name_of,
    bundle_inputs,
    bundle_tree,
    route_json,
)
from vega_dag.daemon import warm
from vega_dag.pipeline.context import short
from vega_dag.pipeline.result import BuildError
from vega_dag.store.actions import action_key
from vega_dag.store.objects import CorruptObjectError, MissingObjectError
from vega_dag.store.state import RouteRecord
from vega_dag.store.tree import tree_records

#: No data members (``RouteFiles.members`` lists only routes with some).
_NONE: list[tuple[str, str]] = []

if TYPE_CHECKING:
    from vega_dag.bundle.files import RouteFiles
    from vega_dag.compile.dirty import Compiled
    from vega_dag.graph.analysis import Analysis
    from vega_dag.graph.modules import Module
    from vega_dag.pipeline.context import BuildContext
    from vega_dag.store.state import BuildState


@dataclass
class Bundled:
    #: route pattern → its record (module, entry, bundle digest), for every route
    records: dict[str, RouteRecord]
    #: the routes whose bundle was built now
    rebuilt: set[str]


def build_bundles(
    ctx: BuildContext,
    a: Analysis,
    entries: dict[str, str],
    compiled: Compiled,
    state: BuildState,
    files: RouteFiles | None = None,
) -> Bundled:
    """Every route's bundle: the last build's where no member changed, else built.

    ``files`` holds each route's data members (``bundle.files``).
    """
    routes, closures, modules, pyc = a.routes, a.closures, a.modules, compiled.pyc
    data = files.members if files is not None else {}
    old_data = state.route_files
    records: dict[str, RouteRecord] = {}
    rebuilt: set[str] = set()
    same_toolchain = state.toolchain == ctx.toolchain
    changed = {
        n
        for n in compiled.checked
        if (record := state.modules.get(n)) is None or record.pyc != pyc[n]
    }
    names = (
        a.tables.archive_names()
        if a.tables is not None
        else {n: archive_name(m) for n, m in modules.items()}
    )
    todo: list[tuple[str, RouteMeta, list[tuple[str, str]], str, list[str]]] = []
    patches: list[tuple[str, RouteRecord, list[tuple[str, str]]]] = []
    index = {} if ctx.verify else ctx.store.index.objects
    old_closures = state.closures
    # A daemon knows which routes hold each module (kept while the closures
    # are the same object): the routes holding a changed module are a few
    # lookups, not a scan of every closure (3,000 of ~155 modules each).
    holding = None
    if warm.enabled():
        holders = route_holders(closures)
        holding = {p for n in changed for p in holders.get(n, ())}
    for pattern, route in routes.items():
        closure_names = closures[pattern]
        old = state.routes.get(pattern)
        same_route = (
            same_toolchain
            and old is not None
            and old.module == route.module.name
            and old.entry == entries[pattern]
            and ((prev := old_closures.get(pattern)) is closure_names or prev == closure_names)
            and data.get(pattern, _NONE) == old_data.get(pattern, _NONE)
        )
        if (
            same_route
            and old is not None
            and (
                pattern not in holding if holding is not None else changed.isdisjoint(closure_names)
            )
            and (old.bundle in index or ctx.present(old.bundle))
        ):
            # No member's compiled bytes changed: the bundle stands
            # (early cutoff), without even computing its key.
            records[pattern] = old
            continue
        if same_route and old is not None and ctx.store.is_tree(old.bundle):
            # The same entries, some with new contents: the last build's tree
            # with those digests replaced (the slow path below lists every member).
            hits = changed.intersection(closure_names)
            if hits and all(
                (r := state.modules.get(n)) is not None and r.path == modules[n].path for n in hits
            ):
                patches.append((pattern, old, [(names[n], pyc[n]) for n in hits]))
                continue
        meta, members = bundle_inputs(route, entries[pattern], closure_names, names, pyc)
        if pattern in data:
            members = sorted([*members, *data[pattern]])
        key = action_key("bundle", meta, members, ctx.tc_key)
        out = ctx.actions.get(key)
        if out is not None and ctx.present(out):
            records[pattern] = RouteRecord(module=route.module.name, entry=meta.entry, bundle=out)
            continue
        explain_bundle(ctx, pattern, members, out, state)
        todo.append((pattern, meta, members, key, closure_names))
    if patches:
        for (pattern, old, _), patched in zip(
            patches, patch_bundles(ctx, patches, closures, pyc, modules), strict=True
        ):
            if patched is None:  # the record and the state disagree: list the members
                meta, members = bundle_inputs(
                    routes[pattern], entries[pattern], closures[pattern], names, pyc
                )
                if pattern in data:
                    members = sorted([*members, *data[pattern]])
                key = action_key("bundle", meta, members, ctx.tc_key)
                todo.append((pattern, meta, members, key, closures[pattern]))
                continue
            records[pattern] = RouteRecord(module=old.module, entry=old.entry, bundle=patched)
            if patched in ctx.new_trees:
                rebuilt.add(pattern)
    if todo:
        jobs = [(meta, members, c) for _, meta, members, _, c in todo]
        made = make_bundles(ctx, jobs, pyc, modules, files)
        for (pattern, meta, _, key, _), digest in zip(todo, made, strict=True):
            ctx.new_actions[key] = digest
            records[pattern] = RouteRecord(module=meta.module, entry=meta.entry, bundle=digest)
            rebuilt.add(pattern)
    return Bundled(records, rebuilt)


def patch_bundles(
    ctx: BuildContext,
    patches: list[tuple[str, RouteRecord, list[tuple[str, str]]]],
    closures: dict[str, list[str]],
    pyc: dict[str, str],
    modules: dict[str, Module],
) -> list[str | None]:
    """Each patched bundle's digest (None where its last tree lacks a changed entry);
    the trees not in the store already are this build's (``ctx.new_trees``).

    A rebuilt bundle whose entry names did not change costs its last tree's
    record (a few KB, read and verified) and its changed entries: no member
    list is made and no action key computed (the tree's digest is as cheap
    as a key would be), so a change to a module in 2,000 bundles costs
    2,000 small records.
    """
    patterns = [p for p, _, _ in patches]
    verify_members(ctx, [closures[p] for p in patterns], pyc, modules, (patterns, closures))
    readable: list[int] = []
    inputs: list[tuple[bytes, list[tuple[str, str]]]] = []
    for i, (pattern, old, changes) in enumerate(patches):
        try:
            inputs.append((ctx.store.tree_record(old.bundle), changes))
        except (CorruptObjectError, MissingObjectError):
            ctx.why(f"route {pattern}: its last bundle {short(old.bundle)} is damaged")
            continue
        readable.append(i)
        if ctx.explain:
            names = ", ".join(sorted(n for n, _ in changes))
            ctx.why(f"route {pattern}: compiled output changed: {names}")
    out: list[str | None] = [None] * len(patches)
    for i, made in zip(readable, _core.tree_patches(inputs), strict=True):
        if made is not None:
            digest, record = made
            if not ctx.present(digest):  # else the same tree is stored already (a revert)
                ctx.new_trees[digest] = record
            out[i] = digest
    return out


def verify_members(
    ctx: BuildContext,
    closures: list[list[str]],
    pyc: dict[str, str],
    modules: dict[str, Module],
    of: tuple[list[str], dict[str, list[str]]] | None = None,
) -> None:
    """Read (and verify) each compiled member once, however many bundles hold it.

    The trees need only digests, but a damaged stored output found here is
    made again (``member_bytes``) before the import check or a deploy reads it.
    ``of`` names the routes whose ``closures`` these are, and every route's
    closure (a daemon's shortcut below).
    """
    # A daemon remembers what it read back: objects are immutable, so a member
    # it verified is only looked up in the index again (still there: no gc
    # took it). Without this a hub's change read and hashed most of the
    # project's bytecode again: the union of the closures of the thousands of
    # bundles that hold it. A one-shot build (and --verify) reads them all.
    remembered = warm.enabled() and not ctx.verify
    if remembered and of is not None and sum(map(len, closures)) > len(pyc):
        # A hub's bundles: their union is most modules, and making it costs
        # more than looking every module up; the few not verified yet are
        # read where one of these bundles holds them.
        holders = route_holders(of[1])
        wanted = set(of[0])
        for name, digest in pyc.items():
            if digest in _verified and ctx.store.has(digest):
                continue
            if wanted.isdisjoint(holders.get(name, ())):
                continue
            member_bytes(ctx, modules[name], digest)
            _verified.add(digest)
        return
    for name in set().union(*closures):
        digest = pyc[name]
        if remembered and digest in _verified and ctx.store.has(digest):
            continue
        member_bytes(ctx, modules[name], digest)
        if remembered:
            _verified.add(digest)


#: Members this process read back and verified (``verify_members``, in a daemon).
_verified: set[str] = set()


def route_holders(closures: dict[str, list[str]]) -> dict[str, list[str]]:
    """module → the routes whose closure holds it (a daemon keeps it per closures object)."""

    def invert() -> dict[str, list[str]]:
        holders: dict[str, list[str]] = {}
        for pattern, closure in closures.items():
            for name in closure:
                holders.setdefault(name, []).append(pattern)
        return holders

    # Keyed by the closures object itself: the state's, reused while no edge
    # changed (equal closures compare equal too, only slower).
    return warm.derived("route-holders", _Same(closures), invert)


class _Same:
    """A key equal to another only for the very same object (no deep comparison)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


def make_bundles(
    ctx: BuildContext,
    jobs: list[tuple[RouteMeta, list[tuple[str, str]], list[str]]],
    pyc: dict[str, str],
    modules: dict[str, Module],
    files: RouteFiles | None = None,
) -> list[str]:
    """Each job's bundle digest: its tree's (store.tree), stored as the tree's record.

    A tree costs its entries, not its bytes (``patch_bundles`` is the
    cheaper path where the entry names did not change).
    """
    verify_members(ctx, [closure for _, _, closure in jobs], pyc, modules)
    if files is not None and files.paths:
        seen: set[str] = set()
        for _, members, _ in jobs:
            for _, d in members:
                if d not in seen and d in files.paths:
                    seen.add(d)
                    data_bytes(ctx, files.paths[d], d)
    trees = []
    for meta, members, _ in jobs:
        route = route_json(meta)
        route_digest = _core.hash_bytes(route)
        ctx.new_objects[route_digest] = route
        trees.append(bundle_tree(members, route_digest))
    digests = []
    for digest, record in tree_records(trees, BUNDLE_EPOCH):
        ctx.new_trees[digest] = record
        digests.append(digest)
    return digests


def member_bytes(ctx: BuildContext, m: Module, d: str) -> bytes:
    """The compiled bytes ``d`` of ``m``, recompiled here if the stored copy is damaged."""
    try:
        return ctx.store.get(d)  # this build's outputs too (store.pending)
    except (CorruptObjectError, MissingObjectError):
        from vega_dag.compile.bytecode import CompileError, compile_file

        ctx.why(f"{m.path}: stored output {short(d)} is damaged; recompiled")
        digest_src = _core.hash_file(ctx.root / m.path)
        try:
            _, fresh = compile_file(
                str(ctx.root), m.path, digest_src, ctx.config.vega.optimize, ctx.steps
            )
        except CompileError as err:
            raise BuildError([str(err)]) from None
        ctx.new_objects[d] = fresh
        return fresh


def data_bytes(ctx: BuildContext, path: str, d: str) -> bytes:
    """The bytes ``d`` of the data file at ``path``: stored once, like a compiled module."""
    if ctx.present(d):
        try:
            return ctx.store.get(d)
        except (CorruptObjectError, MissingObjectError):
            ctx.why(f"{path}: stored copy {short(d)} is damaged; read again")
    try:
        data = (ctx.root / path).read_bytes()
    except FileNotFoundError:
        raise BuildError([f"{path}: vanished during the build; run the build again"]) from None
    if _core.hash_bytes(data) != d:
        from vega_dag.compile.bytecode import SourceChangedError

        raise BuildError([str(SourceChangedError(path))])
    ctx.new_objects[d] = data
    return data


def explain_bundle(
    ctx: BuildContext,
    pattern: str,
    members: list[tuple[str, str]],
    cached_out: str | None,
    state: BuildState,
) -> None:
    """Why the bundle of route ``pattern`` is built (``--explain``)."""
    if not ctx.explain:
        return
    old = state.routes.get(pattern)
    if cached_out is not None:
        ctx.why(f"route {pattern}: cached bundle {short(cached_out)} is missing from the store")
        return
    if old is None:
        ctx.why(f"route {pattern}: new route")
        return
    before = {
        archive_name_of(n, rec.path): rec.pyc
        for n in state.closures.get(pattern, [])
        if (rec := state.modules.get(n)) is not None
    }
    before.update(state.route_files.get(pattern, ()))
    after = dict(members)
    changed = sorted(n for n in after if n in before and before[n] != after[n])
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    parts = []
    changed_code = [n for n in changed if n.endswith(".pyc")]
    changed_data = [n for n in changed if not n.endswith(".pyc")]
    if changed_code:
        parts.append("compiled output changed: " + ", ".join(changed_code))
    if changed_data:
        parts.append("file changed: " + ", ".join(changed_data))
    if added:
        parts.append("added: " + ", ".join(added))
    if removed:
        parts.append("removed: " + ", ".join(removed))
    if not parts and state.toolchain != ctx.toolchain:
        parts.append("toolchain changed")
    ctx.why(f"route {pattern}: " + ("; ".join(parts) or "route metadata changed"))
