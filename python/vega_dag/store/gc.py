"""Store lifecycle: ``vega-dag gc`` (mark from the roots, sweep the rest) and ``store verify``.

The roots, what nothing may take away:

- the build head: its manifest, and the outputs the last build's state names
  (every module's bytecode, every route's bundle, the layer), so the next
  build stays incremental — only outputs no current module uses go;
- every deployment a pointer serves now, and the one a ``rollback`` of it
  restores in each region (the previous deployment, from the history);
- deployments the policy keeps: the newest ``keep_deployments``, and those
  younger than ``keep_days``; ``max_size`` then drops the oldest of these
  (never a pinned one) until the kept objects fit;
- a deployment still ``rolling`` (a deploy that was killed can be rolled back).

A manifest's objects are the manifest itself, its bundles (tree records), its
layer, and the members of each bundle's tree. An action-cache entry is kept while its
output is; the others are dropped (a later build recompiles, as on a miss).

Like Bazel's disk-cache GC, collection runs under the locks writers take: the
store's lock (a build waits) and the pointer store's deploy lock (a deploy or
rollback waits, then fails naming the holder). The sweep is ordered so a kill
-9 at any instant leaves a valid store: live objects of packs worth compacting
are copied into a new pack (fsynced), then the new index is written (fsynced),
and only then are the old packs and dead loose objects deleted. A crash before
the index leaves the old index, whose packs all exist; after it, files nothing
names, which the next ``gc`` removes.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vega_dag import _core
from vega_dag.errors import VegaError
from vega_dag.processes import pid_alive
from vega_dag.store.actions import ActionCache
from vega_dag.store.objects import (
    ASSEMBLY,
    TREE,
    CorruptObjectError,
    MissingObjectError,
    ObjectStore,
    PackIndex,
    PackLocation,
    _encoder,
    write_durably,
)
from vega_dag.store.state import load_head, load_state, state_paths

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig
    from vega_dag.rollout.pointers import PointerBackend

#: A pack whose dead bytes are at least this share of it is rewritten.
COMPACT_DEAD_SHARE = 0.5
#: ``VEGA_DAG_TEST_KILL_AT=gc:<step>`` SIGKILLs the collector at that step (tests).
KILL_ENV = "VEGA_DAG_TEST_KILL_AT"


class GcError(VegaError):
    pass


def _kill_point(step: str) -> None:
    if os.environ.get(KILL_ENV) == f"gc:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class GcPolicy:
    keep_deployments: int = 10
    keep_days: float | None = None
    max_size: int | None = None


@dataclass
class GcReport:
    dry_run: bool
    bytes_before: int = 0
    bytes_after: int = 0
    objects_before: int = 0
    objects_kept: int = 0
    #: deployment id → why its objects are kept
    kept_deployments: dict[str, str] = field(default_factory=dict)
    #: deployments whose objects are no longer kept (their rows stay in the history)
    dropped_deployments: list[str] = field(default_factory=list)
    packs_deleted: int = 0
    packs_compacted: int = 0
    packs_written: int = 0
    loose_deleted: int = 0
    actions_dropped: int = 0
    #: dead bytes left inside packs too full of live objects to rewrite
    dead_bytes_in_packs: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def freed(self) -> int:
        return self.bytes_before - self.bytes_after

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "freed_bytes": self.freed,
            "objects_before": self.objects_before,
            "objects_kept": self.objects_kept,
            "kept_deployments": self.kept_deployments,
            "dropped_deployments": self.dropped_deployments,
            "packs_deleted": self.packs_deleted,
            "packs_compacted": self.packs_compacted,
            "packs_written": self.packs_written,
            "loose_deleted": self.loose_deleted,
            "actions_dropped": self.actions_dropped,
            "dead_bytes_in_packs": self.dead_bytes_in_packs,
            "notes": self.notes,
            "seconds": round(self.seconds, 4),
        }


# -- marking ------------------------------------------------------------------
class _Marker:
    """The objects reachable from a set of roots, with their stored sizes."""

    def __init__(self, store: ObjectStore, loose: dict[str, int]) -> None:
        self.store = store
        self.loose = loose
        self.live: set[str] = set()

    def size(self, digests: set[str]) -> int:
        objects = self.store.index.objects
        total = 0
        for d in digests:
            loc = objects.get(d)
            total += loc.length if loc is not None else self.loose.get(d, 0)
        return total

    def objects_of(self, digest: str, into: set[str]) -> None:
        """``digest`` and, for a tree (or an older store's assembly), its members."""
        from vega_dag.store.assembly import AssemblyFormatError, decode_assembly, member_digests
        from vega_dag.store.tree import TreeFormatError, read_tree

        if digest in into:
            return
        into.add(digest)
        loc = self.store.index.objects.get(digest)
        if loc is None or loc.form not in (TREE, ASSEMBLY):
            return
        try:
            record = _read_raw(self.store, loc)
            if loc.form == TREE:
                into.update(d for _, d in read_tree(record, loc.pack).entries)
            else:
                into.update(member_digests(decode_assembly(record)))
        except (OSError, AssemblyFormatError, TreeFormatError):
            pass  # unreadable: its members are rebuilt if it is ever needed

    def manifest_objects(self, digest: str) -> set[str] | None:
        """A manifest's objects, or None when it is no longer in the store."""
        from vega_dag.manifest.schema import decode_manifest

        try:
            manifest = decode_manifest(self.store.get(digest))
        except (MissingObjectError, CorruptObjectError, ValueError):
            return None
        found: set[str] = set()
        self.objects_of(digest, found)
        for route in manifest.routes:
            self.objects_of(route.bundle, found)
        if manifest.layer:
            found.add(manifest.layer)
        return found


def _read_raw(store: ObjectStore, loc: PackLocation) -> bytes:
    with open(store.root / "packs" / loc.pack, "rb") as f:
        f.seek(loc.offset)
        return f.read(loc.length)


def _loose_objects(root: Path) -> dict[str, int]:
    """Loose objects by digest → size (``objects/ab/cdef…``)."""
    found: dict[str, int] = {}
    base = root / "objects"
    if not base.is_dir():
        return found
    for sub in os.scandir(base):
        if not sub.is_dir() or len(sub.name) != 2:
            continue
        for entry in os.scandir(sub.path):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            found[_core.DIGEST_PREFIX + sub.name + entry.name] = entry.stat().st_size
    return found


def _stale_temporaries(root: Path) -> Iterator[Path]:
    """Temporary files of writers killed before their rename (``.<name>.<pid>.tmp``)."""
    for folder in [root / "packs", *sorted((root / "objects").glob("??"))]:
        if not folder.is_dir():
            continue
        for path in folder.glob(".*.tmp"):
            pid = path.name.rsplit(".", 2)[-2]
            if not pid.isdigit() or not pid_alive(int(pid)):
                yield path


# -- the collection -----------------------------------------------------------
def collect(
    config: ProjectConfig,
    policy: GcPolicy,
    *,
    dry_run: bool = False,
    lock_timeout: float = 10.0,
    actor: str | None = None,
) -> GcReport:
    """Delete what nothing kept needs (see the module docstring); report what was freed."""
    from vega_dag.regions.fleet import fleet_dir
    from vega_dag.rollout.pointers import default_actor, pointers_for

    started = time.perf_counter()
    store = ObjectStore(config.store_dir)
    db_path = fleet_dir(config) / "pointers.sqlite"
    with ExitStack() as stack:
        pointers = pointers_for(config, db_path)
        if pointers is not None:
            stack.callback(pointers.close)
            stack.enter_context(
                pointers.deploy_lock(f"gc by {actor or default_actor()}", lock_timeout)
            )
        stack.enter_context(store.locked())
        report = _collect_locked(config, store, pointers, policy, dry_run)
    report.seconds = time.perf_counter() - started
    return report


def _collect_locked(
    config: ProjectConfig,
    store: ObjectStore,
    pointers: PointerBackend | None,
    policy: GcPolicy,
    dry_run: bool,
) -> GcReport:
    report = GcReport(dry_run=dry_run)
    index = store.index
    loose = _loose_objects(store.root)
    pack_files = (
        {
            e.name: e.stat().st_size
            for e in os.scandir(store.root / "packs")
            if e.name.endswith(".pack") and not e.name.startswith(".")
        }
        if (store.root / "packs").is_dir()
        else {}
    )
    report.bytes_before = sum(pack_files.values()) + sum(loose.values())
    report.objects_before = len(index.objects) + len(loose)
    marker = _Marker(store, loose)

    # The head and the last build's outputs.
    live: set[str] = set()
    _stat, state_path, head_path = state_paths(config)
    head = load_head(head_path)
    if head.manifest:
        live |= marker.manifest_objects(head.manifest) or set()
    state = load_state(state_path)
    for record in state.modules.values():
        live.add(record.pyc)
    for route in state.routes.values():
        marker.objects_of(route.bundle, live)
    for digest in (state.layer[1] if state.layer else None, head.layer):
        if digest:
            live.add(digest)

    # Deployments: pinned ones always, the policy's while they fit.
    pinned: dict[str, str] = {}
    chosen: list[tuple[str, str]] = []
    manifests: dict[str, str] = {}
    if pointers is not None:
        deployments = pointers.deployments(limit=1 << 31)
        manifests = {d.id: d.manifest for d in deployments}
        for region, ptr in sorted(pointers.pointers().items()):
            if ptr.deployment is None:
                continue
            pinned.setdefault(ptr.deployment, f"served by {region}")
            for r, previous in pointers.touched_by(ptr.deployment).items():
                if previous is not None:
                    pinned.setdefault(previous, f"rollback target of {ptr.deployment} in {r}")
        now = time.time()
        for n, d in enumerate(deployments):  # newest first
            if d.id in pinned:
                continue
            if d.status in ("rolling", "interrupted"):
                pinned[d.id] = "a deploy still rolling (or killed) may be rolled back"
            elif n < policy.keep_deployments:
                chosen.append((d.id, f"among the newest {policy.keep_deployments}"))
            elif policy.keep_days is not None and now - d.created_at < policy.keep_days * 86400:
                chosen.append((d.id, f"younger than {policy.keep_days:g} days"))
            elif store.has(d.manifest):  # not collected by an earlier gc
                report.dropped_deployments.append(d.id)
    for dpl, why in pinned.items():
        found = marker.manifest_objects(manifests[dpl]) if dpl in manifests else None
        if found is None:
            report.notes.append(f"{dpl} ({why}): its manifest is no longer in the store")
        live |= found or set()
        report.kept_deployments[dpl] = why
    objects_of = {dpl: marker.manifest_objects(manifests[dpl]) or set() for dpl, _ in chosen}
    for dpl, why in chosen:
        report.kept_deployments[dpl] = why
    base = set(live)  # the head and the pinned deployments: never dropped
    live = base.union(*objects_of.values())
    if policy.max_size is not None:
        # The oldest policy-kept deployment goes first, until the rest fit.
        while chosen and marker.size(live) > policy.max_size:
            dpl, _why = chosen.pop()
            del report.kept_deployments[dpl]
            report.dropped_deployments.append(dpl)
            live = base.union(*(objects_of[d] for d, _ in chosen))
        if marker.size(live) > policy.max_size:
            report.notes.append(
                f"the objects kept ({_human(marker.size(live))}) exceed --max-size "
                f"{_human(policy.max_size)}: the head and the deployments rollback can reach "
                "are never dropped"
            )

    # The sweep's plan: per pack, its live and dead objects.
    live_in: dict[str, list[tuple[str, PackLocation]]] = {}
    dead_bytes: dict[str, int] = {}
    new_objects: dict[str, PackLocation] = {}
    for digest, loc in index.objects.items():
        if loc.pack not in pack_files:
            continue  # its pack is gone already: the entry is dropped
        if digest in live:
            live_in.setdefault(loc.pack, []).append((digest, loc))
        else:
            dead_bytes[loc.pack] = dead_bytes.get(loc.pack, 0) + loc.length
    delete_packs = [p for p in pack_files if p not in live_in]
    compact = sorted(
        p
        for p, size in pack_files.items()
        if p in live_in and size and dead_bytes.get(p, 0) >= COMPACT_DEAD_SHARE * size
    )
    for pack, entries in live_in.items():
        if pack not in compact:
            new_objects.update(entries)
            report.dead_bytes_in_packs += dead_bytes.get(pack, 0)
    dead_loose = [d for d in loose if d not in live]
    cache = ActionCache(config.store_dir / "state" / "actions.msgpack")
    gone = {d for d in index.objects if d not in live} | set(dead_loose)
    drop_actions = [k for k, out in cache.entries.items() if out in gone]

    moved: list[tuple[str, PackLocation]] = [e for p in compact for e in live_in[p]]
    moved_bytes = sum(loc.length for _, loc in moved)
    report.packs_deleted = len(delete_packs)
    report.packs_compacted = len(compact)
    report.packs_written = 1 if moved else 0
    report.loose_deleted = len(dead_loose)
    report.actions_dropped = len(drop_actions)
    report.objects_kept = len(new_objects) + len(moved) + len(loose) - len(dead_loose)
    report.bytes_after = (
        sum(s for p, s in pack_files.items() if p not in delete_packs and p not in compact)
        + moved_bytes
        + sum(s for d, s in loose.items() if d in live)
    )
    if dry_run:
        return report

    # 1. the live objects of the packs being compacted, in one new pack (durable)
    if moved:
        name = _core.hash_bytes("\n".join(d for d, _ in moved).encode()).removeprefix(
            _core.DIGEST_PREFIX
        )[:32]
        pack = f"{name}.pack"
        chunks: list[bytes] = []
        offset = 0
        for digest, loc in moved:
            data = _read_raw(store, loc)
            chunks.append(data)
            new_objects[digest] = PackLocation(pack, offset, len(data), loc.form)
            offset += len(data)
        write_durably(store.root / "packs" / pack, chunks)
        delete_packs = [p for p in delete_packs if p != pack]
        compact = [p for p in compact if p != pack]
    _kill_point("pack-written")
    # 2. the index that names only live objects in packs that stay (durable:
    # the packs it no longer names are deleted next)
    new_index = PackIndex(index.version, new_objects)
    write_durably(store._index_path, _encoder.encode(new_index))
    _kill_point("index-written")
    # 3. what the index no longer names
    for n, pack in enumerate([*delete_packs, *compact]):
        (store.root / "packs" / pack).unlink(missing_ok=True)
        if n == 0:
            _kill_point("pack-deleted")
    for digest in dead_loose:
        store.loose_path(digest).unlink(missing_ok=True)
    for tmp in _stale_temporaries(store.root):
        tmp.unlink(missing_ok=True)
    _kill_point("objects-deleted")
    # 4. the action cache forgets outputs that are gone (a stale entry would be
    # only a miss: a hit must find its output in the store)
    if drop_actions:
        for key in drop_actions:
            del cache.entries[key]
        cache.dirty = True
        cache.save()
    return report


# -- verify -------------------------------------------------------------------
@dataclass
class VerifyReport:
    objects: int = 0
    #: (digest, where, why) for each object that cannot be read back intact
    damaged: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "damaged": [{"digest": d, "where": w, "reason": r} for d, w, r in self.damaged],
            "seconds": round(self.seconds, 4),
        }


def verify(store_dir: Path) -> VerifyReport:
    """Read back every packed and loose object, checking each against its digest.

    A bundle's tree is checked as a deployment reads it: its record against
    its digest, and each member it names readable (a damaged member is
    named twice: as itself, and in each tree that holds it). No archive is
    made: its bytes are a function of those verified parts.
    """
    started = time.perf_counter()
    report = VerifyReport()
    store = ObjectStore(store_dir)
    items = sorted(store.index.objects.items(), key=lambda kv: (kv[1].pack, kv[1].offset))
    for digest, loc in items:
        report.objects += 1
        where = f"{store_dir / 'packs' / loc.pack}@{loc.offset}"
        try:
            store.check(digest)
        except CorruptObjectError as err:
            report.damaged.append((digest, err.where, err.reason))
        except MissingObjectError:
            report.damaged.append((digest, where, f"its pack {loc.pack} is missing"))
    for digest in sorted(_loose_objects(store_dir)):
        if digest in store.index.objects:
            continue
        report.objects += 1
        path = store.loose_path(digest)
        try:
            data = path.read_bytes()
        except OSError as err:
            report.damaged.append((digest, str(path), err.strerror or str(err)))
            continue
        actual = _core.hash_bytes(data)
        if actual != digest:
            report.damaged.append((digest, str(path), f"its content hashes to {actual}"))
    report.seconds = time.perf_counter() - started
    return report


# -- sizes --------------------------------------------------------------------
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"500M"``, ``"1.5GiB"``, ``"2g"``, ``"1024"`` → bytes (binary units)."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = (t[:-1], t[-1]) if t and t[-1] in _UNITS else (t, "")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a size (e.g. 500M, 2G, 1.5GiB)") from None
    if value < 0:
        raise ValueError(f"{text!r}: a size cannot be negative")
    return int(value * _UNITS[unit])


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


human_size = _human
