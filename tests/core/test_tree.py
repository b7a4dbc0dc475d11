"""Route bundles as trees: identity from (name, member digest) pairs, the same bytes, verified."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vega_dag import _core
from vega_dag.errors import ArchiveEntryError, ArchiveFormatError
from vega_dag.store.assembly import encode_assembly
from vega_dag.store.objects import (
    ASSEMBLY,
    BYTES,
    TREE,
    CorruptObjectError,
    ObjectStore,
    PackIndex,
    PackLocation,
)
from vega_dag.store.tree import Tree, tree_archive, tree_records

EPOCH = _core.DEFAULT_ARCHIVE_EPOCH

names = st.lists(
    st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}\.pyc", fullmatch=True), min_size=1, max_size=12
).filter(lambda ns: len(set(ns)) == len(ns) and not _file_and_dir(ns))


def _file_and_dir(ns: list[str]) -> bool:
    stems = {n.removesuffix(".pyc") for n in ns}
    return any(n.startswith(s + "/") for n in ns for s in stems)


@settings(max_examples=60, deadline=None)
@given(names=names, data=st.data())
def test_a_tree_names_the_archive_of_its_entries(names: list[str], data) -> None:
    blobs = {}
    members = []
    for name in names:
        content = data.draw(st.binary(max_size=3000))
        digest = _core.hash_bytes(content)
        blobs[digest] = content
        members.append((name, digest))
    ((digest, record),) = tree_records([members], EPOCH)
    # The tree is an ordinary object: named by the digest of its record …
    assert digest == _core.hash_bytes(record)
    # … which lists the entries in name order, whatever order they came in …
    assert _core.read_tree(record) == (EPOCH, sorted(members))
    assert tree_records([list(reversed(members))], EPOCH) == [(digest, record)]
    # … and the archive it names is the archive writer's, byte for byte.
    want, _ = _core.build_archive([(n, blobs[d]) for n, d in members], epoch=EPOCH, compress=False)
    assert tree_archive(Tree(EPOCH, sorted(members)), blobs.__getitem__) == want


@settings(max_examples=40, deadline=None)
@given(names=names, data=st.data())
def test_a_patched_tree_is_the_tree_of_its_new_entries(names: list[str], data) -> None:
    members = [(n, _core.hash_bytes(n.encode())) for n in names]
    ((_, record),) = tree_records([members], EPOCH)
    changed = data.draw(st.lists(st.sampled_from(names), unique=True))
    changes = [(n, _core.hash_bytes(b"new " + n.encode())) for n in changed]
    after = [(n, dict(changes).get(n, d)) for n, d in members]
    assert _core.tree_patches([(record, changes)]) == tree_records([after], EPOCH)
    # A name the tree does not hold: no patch (the build lists the members instead).
    assert _core.tree_patches([(record, [("Z/none.pyc", members[0][1])])]) == [None]


def test_every_input_of_the_archive_changes_the_digest():
    a, b = _core.hash_bytes(b"a"), _core.hash_bytes(b"b")
    base = [("m.pyc", a), ("n.pyc", b)]
    others = [
        [("m.pyc", b), ("n.pyc", b)],  # a member's content
        [("m.pyc", a), ("o.pyc", b)],  # a name
        [("m.pyc", a)],  # an entry fewer
        [("m.pyc", a), ("n.pyc", b), ("p/q.pyc", a)],  # an entry more
    ]
    digests = {d for d, _ in tree_records([base, *others], EPOCH)}
    assert len(digests) == 1 + len(others)
    assert tree_records([base], EPOCH + 2) != tree_records([base], EPOCH)


def test_names_the_archive_writer_refuses_are_refused():
    d = _core.hash_bytes(b"")
    with pytest.raises(ArchiveEntryError, match="duplicate"):
        tree_records([[("a.pyc", d), ("a.pyc", d)]], EPOCH)
    with pytest.raises(ArchiveEntryError, match=r"\.\."):
        tree_records([[("a/../b.pyc", d)]], EPOCH)
    with pytest.raises(ArchiveFormatError, match="not a tree record"):
        _core.read_tree(b"PK\x03\x04", "bundle.zip")


def _stored(tmp_path: Path, count: int = 40) -> tuple[ObjectStore, dict[str, bytes], str, bytes]:
    """A store with ``count`` shared members and one tree of them."""
    store = ObjectStore(tmp_path / "store")
    blobs = {}
    for i in range(count):
        content = os.urandom(2000) + str(i).encode()
        blobs[_core.hash_bytes(content)] = content
    members = sorted((f"m{i:03d}.pyc", d) for i, d in enumerate(blobs))
    ((digest, record),) = tree_records([members], EPOCH)
    data, _ = _core.build_archive([(n, blobs[d]) for n, d in members], epoch=EPOCH, compress=False)
    with store.locked():
        store.put_many(blobs, {digest: record})
    return ObjectStore(store.root), blobs, digest, data


def test_a_stored_tree_reads_back_as_its_archive(tmp_path):
    store, blobs, digest, data = _stored(tmp_path)
    assert store.index.objects[digest].form == TREE
    assert store.get(digest) == data
    # Its files, without the archive: what a region lays out.
    assert [(n, d, b) for n, d, b in store.tree_members(digest)] == [
        (f"m{i:03d}.pyc", d, blobs[d]) for i, d in enumerate(blobs)
    ]
    # A tree costs its record, not a copy of its members' bytes.
    assert store.index.objects[digest].length < len(data) / 20


def test_a_damaged_member_is_named_by_every_read_of_the_tree(tmp_path):
    store, blobs, digest, _ = _stored(tmp_path)
    member = sorted(blobs)[3]
    loc = store.index.objects[member]
    pack = store.root / "packs" / loc.pack
    raw = bytearray(pack.read_bytes())
    raw[loc.offset + 10] ^= 0xFF
    pack.write_bytes(bytes(raw))
    name = next(f"m{i:03d}.pyc" for i, d in enumerate(blobs) if d == member)
    for read in (ObjectStore.get, ObjectStore.tree_members, ObjectStore.check):
        with pytest.raises(CorruptObjectError, match=member) as info:
            read(ObjectStore(store.root), digest)
        assert info.value.digest == digest
        assert name in info.value.reason
    assert not ObjectStore(store.root).verified(digest)


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_a_damaged_tree_record_is_refused(tmp_path, where):
    store, _, digest, _ = _stored(tmp_path)
    loc = store.index.objects[digest]
    pack = store.root / "packs" / loc.pack
    raw = bytearray(pack.read_bytes())
    at = {"start": 1, "middle": loc.length // 2, "end": loc.length - 3}[where]
    raw[loc.offset + at] ^= 0x41
    pack.write_bytes(bytes(raw))
    for read in (ObjectStore.get, ObjectStore.tree, ObjectStore.check):
        with pytest.raises(CorruptObjectError, match="hashes to") as info:
            read(ObjectStore(store.root), digest)
        assert info.value.digest == digest


def test_an_assembly_of_a_store_from_before_trees_still_reads(tmp_path):
    store = ObjectStore(tmp_path / "store")
    blobs = {_core.hash_bytes(c): c for c in (b"one" * 100, b"two" * 100)}
    members = sorted((f"m{i}.pyc", d) for i, d in enumerate(blobs))
    inline = [("__vega__/route.json", b"{}")]
    data, digest = _core.build_archive(
        inline + [(n, blobs[d]) for n, d in members], epoch=EPOCH, compress=False
    )
    with store.locked():
        store.put_pack(blobs.items())
    # What the build wrote then: the writer's inputs, under the archive's digest.
    record = encode_assembly(EPOCH, inline, members)
    (store.root / "packs" / "old.pack").write_bytes(record)
    index = store.index
    index.objects[digest] = PackLocation("old.pack", 0, len(record), ASSEMBLY)
    (store.root / "packs" / "index.msgpack").write_bytes(msgspec.msgpack.encode(index))
    again = ObjectStore(store.root)
    assert again.get(digest) == data
    assert not again.is_tree(digest)
    again.check(digest)


def test_an_index_written_before_assemblies_still_reads(tmp_path):
    # PackLocation gained `form` as a trailing default: three-field entries
    # (an older store) are plain objects.
    old = msgspec.msgpack.encode(
        {"version": 1, "objects": {"blake3:" + "1" * 64: ["p.pack", 0, 5]}}
    )
    index = msgspec.msgpack.decode(old, type=PackIndex)
    assert next(iter(index.objects.values())) == PackLocation("p.pack", 0, 5, BYTES)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(index), type=PackIndex) == index
