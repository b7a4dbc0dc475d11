"""Objects stored as their assembly (route bundles): same bytes, verified, smaller store."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vega_dag import _core
from vega_dag.store.assembly import encode_assembly
from vega_dag.store.objects import (
    ASSEMBLY,
    BYTES,
    CorruptObjectError,
    ObjectStore,
    PackIndex,
    PackLocation,
)

EPOCH = _core.DEFAULT_ARCHIVE_EPOCH

names = st.lists(
    st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}\.pyc", fullmatch=True), min_size=1, max_size=12
).filter(lambda ns: len(set(ns)) == len(ns) and not _file_and_dir(ns))


def _file_and_dir(ns: list[str]) -> bool:
    stems = {n.removesuffix(".pyc") for n in ns}
    return any(n.startswith(s + "/") for n in ns for s in stems)


@settings(max_examples=60, deadline=None)
@given(names=names, data=st.data())
def test_stored_digests_are_the_built_archives_digests(names: list[str], data) -> None:
    blobs = {}
    members = []
    for name in names:
        content = data.draw(st.binary(max_size=3000))
        digest = _core.hash_bytes(content)
        blobs[digest] = content
        members.append((name, digest))
    inline = [("__vega__/route.json", b'{"r": 1}')]
    (got,) = _core.stored_archive_digests([(inline, members)], blobs, epoch=EPOCH)
    entries = inline + [(n, blobs[d]) for n, d in members]
    _, want = _core.build_archive(entries, epoch=EPOCH, compress=False)
    assert got == want


def test_a_member_without_bytes_is_named():
    with pytest.raises(KeyError, match=r"a\.pyc"):
        _core.stored_archive_digests([([], [("a.pyc", "blake3:" + "0" * 64)])], {}, epoch=EPOCH)


def _stored(tmp_path: Path, count: int = 40) -> tuple[ObjectStore, dict[str, bytes], str, bytes]:
    """A store with ``count`` shared members and one archive of them, kept as its assembly."""
    store = ObjectStore(tmp_path / "store")
    blobs = {}
    for i in range(count):
        content = os.urandom(2000) + str(i).encode()
        blobs[_core.hash_bytes(content)] = content
    members = sorted((f"m{i:03d}.pyc", d) for i, d in enumerate(blobs))
    inline = [("__vega__/route.json", b"{}")]
    (digest,) = _core.stored_archive_digests([(inline, members)], blobs, epoch=EPOCH)
    data, _ = _core.build_archive(
        inline + [(n, blobs[d]) for n, d in members], epoch=EPOCH, compress=False
    )
    with store.locked():
        store.put_many(blobs, {digest: encode_assembly(EPOCH, inline, members)})
    return ObjectStore(store.root), blobs, digest, data


def test_an_assembled_object_reads_back_as_its_bytes(tmp_path):
    store, _, digest, data = _stored(tmp_path)
    assert store.index.objects[digest].form == ASSEMBLY
    assert store.get(digest) == data
    # An archive of stored members costs its recipe, not a copy of its bytes.
    assert store.index.objects[digest].length < len(data) / 20


def test_a_damaged_member_makes_the_assembled_object_damaged(tmp_path):
    store, blobs, digest, _ = _stored(tmp_path)
    member = sorted(blobs)[3]
    loc = store.index.objects[member]
    pack = store.root / "packs" / loc.pack
    raw = bytearray(pack.read_bytes())
    raw[loc.offset + 10] ^= 0xFF
    pack.write_bytes(bytes(raw))
    with pytest.raises(CorruptObjectError, match=member) as info:
        ObjectStore(store.root).get(digest)
    assert info.value.digest == digest


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_a_damaged_assembly_record_is_refused(tmp_path, where):
    store, _, digest, _ = _stored(tmp_path)
    loc = store.index.objects[digest]
    pack = store.root / "packs" / loc.pack
    raw = bytearray(pack.read_bytes())
    at = {"start": 1, "middle": loc.length // 2, "end": loc.length - 3}[where]
    raw[loc.offset + at] ^= 0x41
    pack.write_bytes(bytes(raw))
    with pytest.raises(CorruptObjectError) as info:
        ObjectStore(store.root).get(digest)
    assert info.value.digest == digest


def test_an_index_written_before_assemblies_still_reads(tmp_path):
    # PackLocation gained `form` as a trailing default: three-field entries
    # (an older store) are plain objects.
    old = msgspec.msgpack.encode(
        {"version": 1, "objects": {"blake3:" + "1" * 64: ["p.pack", 0, 5]}}
    )
    index = msgspec.msgpack.decode(old, type=PackIndex)
    assert next(iter(index.objects.values())) == PackLocation("p.pack", 0, 5, BYTES)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(index), type=PackIndex) == index
