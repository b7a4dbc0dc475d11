"""A deployment's blobs on the shared store: uploaded by a deploy, fetched by a region agent.

A region agent on another host (``vega-dag region serve``) has no access to
the deployer's ``.vega/``: everything it serves comes from the S3 store
(``store.remote``), under ``cas/<blake3 hex>``. What one deployment needs
is its manifest, each route bundle's tree record, every member those
records name, and the dependency layer.

The deploy uploads them leaves first (members and the layer, then the tree
records that name them, then the manifest that names those), write-once,
skipping what one listing of ``cas/`` says is there, before any region is
asked to prefetch: an agent never finds a name whose object is not yet
written. The agent fetches only what its own store lacks and checks every
object's BLAKE3 before anything enters that store (a tree record against its
digest, each member against its own), so a damaged or substituted object is
refused, named, and never served.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vega_dag import _core
from vega_dag.errors import VegaError

if TYPE_CHECKING:
    from vega_dag.store.objects import ObjectStore
    from vega_dag.store.remote import RemoteCache


class ShipError(VegaError):
    """A deployment's blobs could not be uploaded or fetched; the message names the object."""

    def __init__(self, message: str, damaged: list[str] | None = None) -> None:
        super().__init__(message)
        #: the digests whose remote copy failed its BLAKE3 check (``repair_objects`` mends them)
        self.damaged = damaged or []


def _hex(digest: str) -> str:
    return digest.removeprefix(_core.DIGEST_PREFIX)


@dataclass
class Shipped:
    """What an upload or a fetch did."""

    #: objects written (upload) or fetched and verified (fetch)
    objects: int = 0
    #: objects already there (the remote for an upload, the local store for a fetch)
    present: int = 0
    seconds: float = 0.0
    digests: list[str] = field(default_factory=list)


def deployment_layers(store: ObjectStore, manifest_digest: str) -> list[list[str]]:
    """The deployment's objects from the local store, leaves first.

    [members and the layer, tree records (and pre-tree bundle archives), the manifest].
    """
    from vega_dag.manifest import decode_manifest

    manifest = decode_manifest(store.get(manifest_digest))
    bundles = list(dict.fromkeys(r.bundle for r in manifest.routes))
    leaves: dict[str, None] = {}
    for bundle in bundles:
        if store.is_tree(bundle):
            for _, member in store.tree(bundle).entries:
                leaves[member] = None
    if manifest.layer:
        leaves[manifest.layer] = None
    return [list(leaves), bundles, [manifest_digest]]


def upload_deployment(remote: RemoteCache, store: ObjectStore, manifest_digest: str) -> Shipped:
    """Write every object of the deployment the remote lacks, leaves first (ShipError if not)."""
    import time

    started = time.perf_counter()
    done = Shipped()
    there = remote.listing()
    for layer in deployment_layers(store, manifest_digest):
        wanted = [d for d in layer if d not in there]
        done.present += len(layer) - len(wanted)
        if not wanted:
            continue
        # A tree is uploaded as its record: the object its digest names.
        items = [(d, store.tree_record(d) if store.is_tree(d) else store.get(d)) for d in wanted]
        written = remote.put_objects(items)
        failed = [d for d, ok in zip(wanted, written, strict=True) if ok is None]
        if failed:
            why = remote.down or "the write was refused"
            raise ShipError(
                f"{remote.where()}: could not upload cas/{_hex(failed[0])} "
                f"({len(failed)} object(s) of {manifest_digest}): {why}"
            )
        done.objects += sum(1 for ok in written if ok)
        done.present += sum(1 for ok in written if ok is False)
        there.update(wanted)
    done.seconds = time.perf_counter() - started
    return done


def fetch_deployment(remote: RemoteCache, store: ObjectStore, manifest_digest: str) -> Shipped:
    """Fetch what ``store`` lacks of the deployment from ``remote``, each object verified.

    ShipError naming the first object that is missing or damaged; nothing of a
    layer that failed enters the store (what was already there stays).
    """
    import time

    from vega_dag.manifest import decode_manifest
    from vega_dag.store.tree import TreeFormatError, read_tree

    started = time.perf_counter()
    done = Shipped()
    remote.down = None  # a long-lived agent tries again on every fetch
    if store.has(manifest_digest):
        data = store.get(manifest_digest)
        done.present += 1
        fetched_manifest: dict[str, bytes] = {}
    else:
        data = _fetch(remote, [manifest_digest])[manifest_digest]
        fetched_manifest = {manifest_digest: data}
    try:
        manifest = decode_manifest(data)
    except (ValueError, VegaError) as err:
        raise ShipError(f"manifest {manifest_digest} is unreadable: {err}") from None
    bundles = list(dict.fromkeys(r.bundle for r in manifest.routes))
    lacking = [b for b in bundles if not store.has(b)]
    done.present += len(bundles) - len(lacking)
    records = _fetch(remote, lacking)
    trees: dict[str, bytes] = {}
    archives: dict[str, bytes] = {}
    leaves: dict[str, None] = {}
    for bundle in bundles:
        if bundle in records:
            record = records[bundle]
            if record[:2] == b"PK":
                archives[bundle] = record  # a bundle from before trees: its archive
                continue
            try:
                entries = read_tree(record, f"cas/{_hex(bundle)}").entries
            except TreeFormatError as err:
                raise ShipError(
                    f"{remote.where()}: cas/{_hex(bundle)} is not a bundle's tree: {err}: refused"
                ) from None
            trees[bundle] = record
        elif store.is_tree(bundle):
            entries = store.tree(bundle).entries
        else:
            continue
        for _, member in entries:
            leaves[member] = None
    if manifest.layer:
        leaves[manifest.layer] = None
    wanted = [d for d in leaves if not store.has(d)]
    done.present += len(leaves) - len(wanted)
    objects = _fetch(remote, wanted)
    if wanted and os.environ.get("VEGA_DAG_TEST_KILL_AT") == "ship:fetched":
        # Tests: an agent killed mid-fetch (objects in memory, none in its store).
        os.kill(os.getpid(), signal.SIGKILL)
    objects.update(archives)
    objects.update(fetched_manifest)
    if objects or trees:
        with store.locked():
            store.put_pack(objects.items(), trees.items())
    done.objects = len(objects) + len(trees)
    done.digests = [*objects, *trees]
    done.seconds = time.perf_counter() - started
    return done


def _fetch(remote: RemoteCache, digests: list[str]) -> dict[str, bytes]:
    """digest → its bytes, each checked against its digest (ShipError naming the first bad one)."""
    got = remote.get_objects(digests)
    for digest in digests:
        value = got[digest]
        if isinstance(value, str):
            damaged = [d for d in digests if d in remote.damaged and isinstance(got[d], str)]
            raise ShipError(f"{remote.where()}: cas/{_hex(digest)} ({digest}): {value}", damaged)
    return {d: v for d, v in got.items() if isinstance(v, bytes)}


def repair_objects(
    remote: RemoteCache, store: ObjectStore, digests: list[str]
) -> tuple[list[str], dict[str, str]]:
    """Overwrite each damaged remote object with this store's verified copy.

    ``upload_deployment`` skips what the listing shows, so a damaged object
    would stay damaged for every later deploy: the deployer, told by an agent
    that one failed its BLAKE3 check, puts its own copy in its place (write-once
    yields to a copy known to be damaged: ``RemoteCache._mode``). (The digests
    repaired, digest → why one could not be.)
    """
    repaired: list[str] = []
    unavailable: dict[str, str] = {}
    items = []
    for digest in digests:
        try:
            # Both reads verify the bytes against the digest before they return them.
            data = store.tree_record(digest) if store.is_tree(digest) else store.get(digest)
        except VegaError as err:
            unavailable[digest] = f"not in this machine's store ({err})"
            continue
        if _core.hash_bytes(data) != digest:
            unavailable[digest] = "this machine's copy is damaged too"
            continue
        remote.damaged.add(digest)
        items.append((digest, data))
    if items:
        for (digest, _), ok in zip(items, remote.put_objects(items), strict=True):
            if ok is None:
                unavailable[digest] = remote.down or "the write was refused"
            else:
                remote.damaged.discard(digest)
                repaired.append(digest)
    return repaired, unavailable
