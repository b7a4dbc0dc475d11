"""How a deployment's code is laid out for import: an immutable, verified, extracted tree.

Code reads files at run time by real paths: ``Path(__file__).parent /
"templates"``, Flask's ``template_folder`` and ``static_folder``, Django's
app-directories template loader, ``open()`` of a file beside a module.
Inside a zip none of those work (only ``importlib.resources`` and
``pkgutil.get_data`` go through the zip importer's reader), so a
deployment's bundles are laid out as one directory tree,
``fleet/code/<manifest>/``, that Python imports from directly: each
compiled module sits where its source would (``lib/db.pyc``; CPython
imports a ``.pyc`` that has no source beside it), each data file where it
sits in the project.

- **One tree per deployment, merged**: a package such as ``lib`` is in many
  bundles, each holding only the submodules its route needs, and a package's
  ``__path__`` names one directory. Inside one build an entry has one
  content, so the union is well defined; a clash is an error.
- **Content-addressed files, hard-linked**: every file is written once into
  ``fleet/files/<digest>`` (read-only) and linked into each tree that holds
  it, so a deployment that changed one module writes one file and links the
  rest (a copy where the filesystem refuses links).
- **Verified**: every bundle's tree record is read through the store (checked
  against its digest) and each member is checked against its own digest
  before the tree is made: the pool's file where it holds an intact one
  (a deployment shares all but its changed members with the one before), else
  the member read through the store (``pool_members``: no zip is made). The
  tree's listing (entry → digest) is kept beside it, under a name that holds
  the listing's own digest, and every use first checks that the tree holds
  exactly the listed files with the listed digests. A damaged tree is made
  again from the store.
- **Immutable**: files are read-only, and so are the tree's directories (no
  ``__pycache__`` appears in them); the tree appears by rename, whole.

``merged_zip`` is the older layout (one zip for zipimport), kept for the
benchmark that compares the two (``benches/test_bench_layout.py``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import shutil
import stat
import zipfile
from pathlib import Path

import msgspec

from vega_dag import _core
from vega_dag.manifest import Manifest
from vega_dag.store.objects import ObjectStore, write_durably

#: Entries of a bundle that are its own, not code or data.
_OWN = "__vega__/"
_READ_ONLY_FILE = 0o444
_READ_ONLY_DIR = 0o555


class CodeLayoutError(ValueError):
    """The deployment's bundles cannot be laid out (they disagree on an entry)."""


def _hex(digest: str) -> str:
    return digest.removeprefix(_core.DIGEST_PREFIX)


def deployment_members(
    store: ObjectStore, manifest_digest: str, manifest: Manifest
) -> dict[str, tuple[str, bytes]]:
    """entry name → (digest, bytes) of every bundle's files, each bundle verified."""
    members: dict[str, tuple[str, bytes]] = {}
    for route in manifest.routes:
        for name, digest, data in _bundle_files(store, route.bundle):
            if name.startswith(_OWN):
                continue
            known = members.get(name)
            if known is None:
                members[name] = (digest, data)
            elif known[0] != digest:
                raise CodeLayoutError(f"bundles of {manifest_digest} disagree on {name}")
    return members


def deployment_listing(
    store: ObjectStore, manifest_digest: str, manifest: Manifest
) -> tuple[dict[str, str], dict[str, str]] | None:
    """(entry name → digest, digest → a bundle holding it) of every bundle's files.

    From the bundles' verified tree records: the members themselves are not
    read (``pool_members`` checks each). None when a bundle is an archive (a
    store from before trees).
    """
    listing: dict[str, str] = {}
    holders: dict[str, str] = {}
    for route in manifest.routes:
        if not store.is_tree(route.bundle):
            return None
        for name, digest in store.tree(route.bundle).entries:
            if name.startswith(_OWN):
                continue
            known = listing.setdefault(name, digest)
            if known != digest:
                raise CodeLayoutError(f"bundles of {manifest_digest} disagree on {name}")
            holders.setdefault(digest, route.bundle)
    return listing, holders


def pool_members(
    store: ObjectStore, fleet: Path, listing: dict[str, str], holders: dict[str, str]
) -> dict[str, str]:
    """entry name → its file in ``fleet/files/``, each checked against its digest first.

    A deployment that changed a few modules shares every other member with
    the one before, whose files the pool already holds: each is hashed
    where it lies (all at once, off the GIL), and only a member the pool
    lacks, or holds damaged, is read through the store (verified, naming
    the bundle and entry if it is not intact) and written to the pool.
    Either way no byte enters the tree unchecked.
    """
    files = os.path.join(fleet, "files")
    digests = sorted(set(listing.values()))
    paths = {d: os.path.join(files, _hex(d)) for d in digests}
    present = [d for d in digests if os.path.exists(paths[d])]
    try:
        hashed = _core.hash_files([paths[d] for d in present])
    except OSError:  # one went away meanwhile (a damaged one replaced): check one by one
        hashed = []
        for d in present:
            try:
                hashed.append(_core.hash_file(paths[d]))
            except OSError:
                hashed.append("")
    intact = {d for d, h in zip(present, hashed, strict=True) if h == d}
    # Read (and verified) before any is written: a member missing or damaged in
    # the store raises as a bundle's read does, naming the bundle and entry.
    read = {d: store.tree_member(holders[d], d) for d in digests if d not in intact}
    for digest, data in read.items():
        _pooled(fleet, digest, data)
    return {name: paths[d] for name, d in listing.items()}


def _bundle_files(store: ObjectStore, bundle: str) -> list[tuple[str, str, bytes]]:
    """The bundle's (entry name, digest, bytes), verified: from its tree, no archive made."""
    if store.is_tree(bundle):
        return store.tree_members(bundle)
    # A bundle of a store from before trees: its archive, checked by its digest.
    out = []
    with zipfile.ZipFile(io.BytesIO(store.get(bundle))) as zf:
        for info in zf.infolist():
            if not info.is_dir():
                data = zf.read(info)
                out.append((info.filename, _core.hash_bytes(data), data))
    return out


# -- the extracted tree ---------------------------------------------------------
def tree_path(fleet: Path, manifest_digest: str) -> Path:
    return fleet / "code" / _hex(manifest_digest)


def _listing_files(fleet: Path, manifest_digest: str) -> list[Path]:
    return sorted((fleet / "code").glob(f"{_hex(manifest_digest)}.*.files"))


def _read_listing(fleet: Path, manifest_digest: str) -> dict[str, str] | None:
    """The tree's recorded listing, if one is present and matches its own digest."""
    for path in _listing_files(fleet, manifest_digest):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if path.name.split(".")[1] == _hex(_core.hash_bytes(data)):
            return dict(msgspec.json.decode(data, type=list[tuple[str, str]]))
    return None


def tree_is_intact(tree: Path, listing: dict[str, str]) -> bool:
    """Whether ``tree`` holds exactly the files of ``listing``, each with its digest."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        rel = os.path.relpath(dirpath, tree)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        found.extend(prefix + name for name in filenames)
    if sorted(found) != sorted(listing):
        return False
    names = sorted(listing)
    try:
        digests = _core.hash_files([tree / n for n in names])
    except OSError:
        return False
    return digests == [listing[n] for n in names]


def ensure_tree(store: ObjectStore, fleet: Path, manifest_digest: str, manifest: Manifest) -> Path:
    """The deployment's code as a verified, read-only tree (see the module docstring)."""
    tree = tree_path(fleet, manifest_digest)
    listing = _read_listing(fleet, manifest_digest)
    if listing is not None and tree.is_dir() and tree_is_intact(tree, listing):
        return tree
    tree.parent.mkdir(parents=True, exist_ok=True)
    # Every region prefetches at once: one lays the tree out, the others wait and reuse.
    with open(tree.with_name(f"{tree.name}.lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        listing = _read_listing(fleet, manifest_digest)
        if listing is not None and tree.is_dir() and tree_is_intact(tree, listing):
            return tree
        found = deployment_listing(store, manifest_digest, manifest)
        if found is None:
            members = deployment_members(store, manifest_digest, manifest)
            lay_out(fleet, tree, members)
            wanted = {n: d for n, (d, _) in members.items()}
        else:
            wanted, holders = found
            _make_tree(tree, pool_members(store, fleet, wanted, holders))
        data = msgspec.json.encode(sorted(wanted.items()))
        for stale in _listing_files(fleet, manifest_digest):
            stale.unlink()
        name = f"{tree.name}.{_hex(_core.hash_bytes(data))}.files"
        write_durably(tree.with_name(name), data, sync=False)
    return tree


def _pooled(fleet: Path, digest: str, data: bytes) -> Path:
    """``fleet/files/<digest>``, holding ``data`` (written, or replaced if damaged)."""
    path = fleet / "files" / _hex(digest)
    with contextlib.suppress(OSError):
        if _core.hash_file(path) == digest:
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, _READ_ONLY_FILE)
    # A damaged file is replaced, not rewritten: trees linking the damaged
    # inode fail their own check and are laid out again.
    os.replace(tmp, path)
    return path


def lay_out(fleet: Path, tree: Path, members: dict[str, tuple[str, bytes]]) -> None:
    """``tree`` made (or replaced, whole) from ``members``: entry name → (digest, bytes).

    The files are ``fleet/files/<digest>``, linked (see the module docstring).
    """
    tmp = tree.with_name(f".{tree.name}.{os.getpid()}.tmp")
    remove_tree(tmp)
    tmp.mkdir(parents=True)
    dirs = {tmp}
    for name in sorted(members):
        digest, data = members[name]
        target = tmp / name
        if target.parent not in dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            dirs.update([target.parent, *target.parent.parents])
        source = _pooled(fleet, digest, data)
        try:
            os.link(source, target)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            target.write_bytes(data)
            os.chmod(target, _READ_ONLY_FILE)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        os.chmod(d, _READ_ONLY_DIR)
    old = tree.with_name(f".{tree.name}.{os.getpid()}.old")
    if tree.exists():
        os.replace(tree, old)
    os.replace(tmp, tree)
    remove_tree(old)


def _make_tree(tree: Path, files: dict[str, str]) -> None:
    """``tree`` made (or replaced, whole) of hard links to ``files`` (entry → pooled file)."""
    tmp = tree.with_name(f".{tree.name}.{os.getpid()}.tmp")
    remove_tree(tmp)
    root = str(tmp)
    os.makedirs(root)
    dirs = {root}
    for name in sorted(files):
        target = os.path.join(root, name)
        parent = os.path.dirname(target)
        if parent not in dirs:
            os.makedirs(parent, exist_ok=True)
            while parent not in dirs:
                dirs.add(parent)
                parent = os.path.dirname(parent)
        try:
            os.link(files[name], target)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(files[name], target)
            os.chmod(target, _READ_ONLY_FILE)
    for d in sorted(dirs, key=len, reverse=True):
        os.chmod(d, _READ_ONLY_DIR)
    old = tree.with_name(f".{tree.name}.{os.getpid()}.old")
    if tree.exists():
        os.replace(tree, old)
    os.replace(tmp, tree)
    remove_tree(old)


def remove_tree(path: Path) -> None:
    """Remove a (read-only) tree; nothing if it is not there."""
    if not path.exists():
        return
    for dirpath, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)


# -- the zip layout (for comparison) --------------------------------------------
def merged_zip(store: ObjectStore, fleet: Path, manifest_digest: str, manifest: Manifest) -> Path:
    """Every bundle of the deployment merged into one zip for zipimport, checked by its digest.

    Data files inside it are readable through ``importlib.resources`` and
    ``pkgutil.get_data`` only: ``__file__`` names no real file.
    """
    path = fleet / "code" / f"{_hex(manifest_digest)}.zip"
    sidecar = path.with_suffix(".digest")
    if path.is_file() and sidecar.is_file() and _core.hash_file(path) == sidecar.read_text():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if path.is_file() and sidecar.is_file() and _core.hash_file(path) == sidecar.read_text():
            return path
        members = deployment_members(store, manifest_digest, manifest)
        # Directory entries too: zipimport finds a namespace package by its entry.
        entries = {name: members[name][1] for name in members}
        for name in members:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                entries.setdefault("/".join(parts[:i]) + "/", b"")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name in sorted(entries):
                zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), entries[name])
        data = buf.getvalue()
        write_durably(path, data, sync=False)
        write_durably(sidecar, _core.hash_bytes(data).encode(), sync=False)
    return path
