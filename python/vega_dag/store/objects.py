"""The content-addressed object store (``.vega/`` by default).

Every object is stored under the BLAKE3 digest of its bytes and verified on
every read: a damaged or half-written object is reported, never served, and
the build that meets one rebuilds it.

Objects live in three forms. Large ones (dependency layers) are loose files,
``objects/ab/cdef…``. Small ones (compiled modules, manifests) are appended to
one pack per build, ``packs/<digest>.pack``, because creating a file costs
~0.5 ms here and a cold build makes tens of thousands of objects. Route
bundles, archives of other objects, are packed as their tree record (see
``tree``): the object is the record, named by its digest like everything
else, and reading the bundle runs the archive writer over its verified
members. (A store written before trees holds bundles as ``assembly``
records, still read.)
Each pack and loose object is written to a temporary file, fsynced, then
renamed; the index that points into packs is replaced by rename after the
pack it names is durable. A crash at any point leaves the store valid: at
worst the index is an older one, and what it no longer lists is rebuilt.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from vega_dag import _core
from vega_dag.daemon import warm
from vega_dag.errors import VegaError, storage_error
from vega_dag.store.tree import Tree, TreeFormatError, read_tree, tree_archive

#: Objects at least this large are stored loose rather than packed.
LOOSE_THRESHOLD = 4 << 20


class MissingObjectError(VegaError, KeyError):
    def __init__(self, digest: str, store: Path) -> None:
        super().__init__(f"{store}: no object {digest}")
        self.digest = digest
        self.store = store

    def __str__(self) -> str:
        return self.args[0]


class CorruptObjectError(VegaError):
    def __init__(self, digest: str, where: str, actual: str, reason: str | None = None) -> None:
        why = reason or f"its content hashes to {actual}"
        super().__init__(f"{where}: object {digest} is damaged ({why})")
        self.digest = digest
        self.where = where
        self.actual = actual
        self.reason = why


#: PackLocation.form: the packed bytes are the object's bytes …
BYTES = 0
#: … or an assembly record (store.assembly: bundles of a store from before
#: trees), assembled on read …
ASSEMBLY = 1
#: … or a tree record (store.tree): the object's bytes are the record;
#: ``get`` returns the archive it names, made from its verified members.
TREE = 2


class PackLocation(msgspec.Struct, array_like=True, frozen=True, gc=False):
    pack: str
    offset: int
    length: int
    form: int = BYTES


class PackIndex(msgspec.Struct):
    version: int = 1
    objects: dict[str, PackLocation] = {}


_index_decoder = msgspec.msgpack.Decoder(PackIndex)
_encoder = msgspec.msgpack.Encoder()


def _read_index(path: Path) -> PackIndex:
    try:
        return _index_decoder.decode(path.read_bytes())
    except FileNotFoundError:
        return PackIndex()
    except msgspec.DecodeError:
        # A damaged index loses the way to packed objects, not the objects'
        # correctness: they are rebuilt as cache misses.
        return PackIndex()


#: In a resident build process (the daemon), objects read and verified by
#: any build: content-addressed bytes stay valid. Small objects only.
_resident_verified: dict[str, bytes] = {}
_RESIDENT_MAX = 1 << 20


def write_durably(
    path: Path, data: bytes | bytearray | memoryview | list[bytes], *, sync: bool = True
) -> None:
    """Write ``data`` to ``path`` via temp file, fsync and rename.

    A reader sees the old file or the new one, never a part. With
    ``sync=False`` the fsyncs are skipped: for caches and state that are
    rebuilt when lost (after a crash they may be empty, never wrong), where
    two fsyncs would cost more than the rest of an incremental build.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            if isinstance(data, list):
                f.writelines(data)
            else:
                f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        full = storage_error(err, path)
        if full is not None:
            # A bare "[Errno 28]" names neither the file nor what to do.
            raise full from None
        raise
    if sync:
        # The rename is durable once the directory entry is.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._packs = str(root / "packs")
        self._index: PackIndex | None = None
        self._maps: dict[str, mmap.mmap | bytes] = {}
        #: Objects already read and verified by this process.
        self._verified: dict[str, bytes] = {}
        #: Objects found damaged by this process: a put replaces them.
        self._damaged: set[str] = set()
        #: Tree records already read and verified by this process.
        self._trees: dict[str, Tree] = {}
        #: Objects made by this process and not yet put (a build's outputs
        #: before its commit), readable as if stored: digest → bytes.
        self.pending: dict[str, bytes] = {}
        self._resident = warm.enabled()

    # -- layout ---------------------------------------------------------------
    def loose_path(self, digest: str) -> Path:
        hexdigest = digest.removeprefix(_core.DIGEST_PREFIX)
        return self.root / "objects" / hexdigest[:2] / hexdigest[2:]

    @property
    def _index_path(self) -> Path:
        return self.root / "packs" / "index.msgpack"

    @property
    def index(self) -> PackIndex:
        if self._index is None:
            self._index = warm.load(self._index_path, _read_index)
        return self._index

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's write lock (one writing build at a time)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # -- reading --------------------------------------------------------------
    def has(self, digest: str) -> bool:
        return digest in self.index.objects or self.loose_path(digest).is_file()

    def _pack_bytes(self, name: str) -> mmap.mmap | bytes:
        data = self._maps.get(name)
        if data is None:
            with open(os.path.join(self._packs, name), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            self._maps[name] = data
        return data

    def get(self, digest: str) -> bytes:
        """The object's bytes, verified; raises Missing/CorruptObjectError."""
        known = self._verified.get(digest) or self.pending.get(digest)
        if known is not None:
            return known
        loc = self.index.objects.get(digest)
        # What a resident process verified once counts only while the index
        # still names it: `vega-dag gc` may have deleted it since.
        known = _resident_verified.get(digest) if loc is not None else None
        if known is not None:
            return known
        if loc is not None:
            try:
                data = bytes(self._pack_bytes(loc.pack)[loc.offset : loc.offset + loc.length])
            except FileNotFoundError:
                data = None
            if data is None and self._index is not None:
                # A gc compacted that pack away after this process read the
                # index: the index on disk names the object's new place.
                self._index = None
                if self.index.objects.get(digest, loc) != loc:
                    return self.get(digest)
            if data is not None and loc.form == TREE:
                where = f"{os.path.join(self._packs, loc.pack)}@{loc.offset}"
                tree = self._read_tree(digest, data, where)
                return tree_archive(tree, lambda d: self._member(digest, where, tree, d))
            if data is not None and loc.form == ASSEMBLY:
                where = f"{os.path.join(self._packs, loc.pack)}@{loc.offset}"
                return self._assemble(digest, data, where)
            if data is not None:
                actual = _core.hash_bytes(data)
                if actual != digest:
                    self._damaged.add(digest)
                    where = f"{os.path.join(self._packs, loc.pack)}@{loc.offset}"
                    raise CorruptObjectError(digest, where, actual)
                self._verified[digest] = data
                if len(data) < _RESIDENT_MAX and self._resident:
                    _resident_verified[digest] = data
                return data
        path = self.loose_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MissingObjectError(digest, self.root) from None
        actual = _core.hash_bytes(data)
        if actual != digest:
            self._damaged.add(digest)
            raise CorruptObjectError(digest, str(path), actual)
        self._verified[digest] = data
        return data

    def is_tree(self, digest: str) -> bool:
        """Whether ``digest`` is stored as a tree (a bundle of this store's format)."""
        loc = self.index.objects.get(digest)
        return loc is not None and loc.form == TREE

    def tree(self, digest: str) -> Tree:
        """The tree ``digest`` names, its record verified (its members are not read).

        Raises MissingObjectError when the store holds no tree of that digest,
        CorruptObjectError when its record is damaged.
        """
        known = self._trees.get(digest)
        if known is not None:
            return known
        record = self.tree_record(digest)
        return self._read_tree(digest, record, self._where(digest), checked=True)

    def tree_record(self, digest: str) -> bytes:
        """The record of the tree ``digest`` names, verified; raises as ``tree``."""
        loc = self.index.objects.get(digest)
        if loc is None or loc.form != TREE:
            raise MissingObjectError(digest, self.root)
        try:
            data = bytes(self._pack_bytes(loc.pack)[loc.offset : loc.offset + loc.length])
        except FileNotFoundError:
            raise MissingObjectError(digest, self.root) from None
        actual = _core.hash_bytes(data)
        if actual != digest:
            self._damaged.add(digest)
            raise CorruptObjectError(digest, self._where(digest), actual)
        return data

    def _where(self, digest: str) -> str:
        loc = self.index.objects[digest]
        return f"{os.path.join(self._packs, loc.pack)}@{loc.offset}"

    def tree_members(self, digest: str) -> list[tuple[str, str, bytes]]:
        """The tree's (entry name, digest, bytes), each verified: a bundle's files, no zip made."""
        tree = self.tree(digest)
        where = self._where(digest)
        return [(n, d, self._member(digest, where, tree, d)) for n, d in tree.entries]

    def tree_member(self, digest: str, member: str) -> bytes:
        """One member of the tree ``digest`` names, verified; its damage reported as the tree's."""
        return self._member(digest, self._where(digest), self.tree(digest), member)

    def _read_tree(self, digest: str, record: bytes, where: str, *, checked: bool = False) -> Tree:
        actual = digest if checked else _core.hash_bytes(record)
        if actual != digest:
            self._damaged.add(digest)
            raise CorruptObjectError(digest, where, actual)
        try:
            tree = read_tree(record, where)
        except TreeFormatError as err:
            self._damaged.add(digest)
            raise CorruptObjectError(digest, where, "", str(err)) from None
        self._trees[digest] = tree
        return tree

    def _member(self, digest: str, where: str, tree: Tree, member: str) -> bytes:
        """A tree's member, verified; its damage is reported as the tree's, naming the entry."""
        try:
            return self.get(member)
        except (MissingObjectError, CorruptObjectError) as err:
            name = next(n for n, d in tree.entries if d == member)
            raise CorruptObjectError(
                digest,
                where,
                "",
                f"its member {name} ({member}) cannot be read: {err};"
                " `vega-dag build --verify` makes it again",
            ) from None

    def check(self, digest: str) -> None:
        """Read ``digest`` back, verified, without making a tree's archive; raises as ``get``."""
        if self.is_tree(digest):
            for _ in self.tree_members(digest):
                pass
        else:
            self.get(digest)

    def _assemble(self, digest: str, record: bytes, where: str) -> bytes:
        """An assembled object's bytes, verified (not kept: its members are)."""
        from vega_dag.store.assembly import AssemblyFormatError, assemble, decode_assembly

        try:
            data, actual = assemble(decode_assembly(record), self.get)
        except AssemblyFormatError as err:
            self._damaged.add(digest)
            raise CorruptObjectError(digest, where, "", str(err)) from None
        except (MissingObjectError, CorruptObjectError) as err:
            self._damaged.add(digest)
            raise CorruptObjectError(
                digest, where, "", f"its member {err.digest} cannot be read: {err}"
            ) from None
        except VegaError as err:  # a damaged name the archive writer refuses
            self._damaged.add(digest)
            raise CorruptObjectError(digest, where, "", str(err)) from None
        if actual != digest:
            self._damaged.add(digest)
            raise CorruptObjectError(digest, where, actual)
        return data

    def verified(self, digest: str) -> bool:
        try:
            self.check(digest)
        except (MissingObjectError, CorruptObjectError):
            return False
        return True

    # -- writing --------------------------------------------------------------
    def put_loose(self, data: bytes) -> str:
        digest = _core.hash_bytes(data)
        path = self.loose_path(digest)
        if not (path.is_file() and self.verified(digest)):
            write_durably(path, data)
        return digest

    def put_pack(
        self,
        objects: Iterable[tuple[str, bytes]],
        trees: Iterable[tuple[str, bytes]] = (),
    ) -> None:
        """Store (digest, bytes) pairs: one new pack, then the index.

        The caller vouches for the digests (they were computed from the same
        bytes); large objects go loose. ``trees`` are (digest, tree record)
        pairs, whose members are in the store or among ``objects``.
        """
        chunks: list[bytes] = []
        size = 0
        locations: dict[str, tuple[int, int, int]] = {}
        for form, items in ((BYTES, objects), (TREE, trees)):
            for digest, data in items:
                if digest in locations or (
                    digest in self.index.objects and digest not in self._damaged
                ):
                    continue
                if form == BYTES and len(data) >= LOOSE_THRESHOLD:
                    self.put_loose(data)
                    continue
                locations[digest] = (size, len(data), form)
                chunks.append(data)
                size += len(data)
        if not locations:
            return
        # Named by its members, not its bytes: hashing (or joining) hundreds
        # of megabytes of bundles to name the file would cost more than
        # writing them.
        name = _core.hash_bytes("\n".join(locations).encode()).removeprefix(_core.DIGEST_PREFIX)[
            :32
        ]
        write_durably(self.root / "packs" / f"{name}.pack", chunks)
        # A new index object: one a resident process keeps (daemon.warm) is
        # replaced only once its file is.
        index = PackIndex(self.index.version, dict(self.index.objects))
        for digest, (offset, length, form) in locations.items():
            index.objects[digest] = PackLocation(f"{name}.pack", offset, length, form)
        # The pack is durable before the index names it; the index itself is
        # replaced atomically but not fsynced: after a power cut it may be the
        # previous one, whose objects are all still there, and what it lacks
        # is rebuilt as a cache miss. Two fsyncs are a third of a small build.
        write_durably(self._index_path, _encoder.encode(index), sync=False)
        self._index = index
        warm.wrote(self._index_path, index)

    def put_many(self, objects: dict[str, bytes], trees: dict[str, bytes] | None = None) -> None:
        self.put_pack(objects.items(), (trees or {}).items())
