"""A deployment's tree from the pool: only members the pool lacks (or holds damaged) are read
from the store, and no byte enters a tree unchecked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vega_dag import _core
from vega_dag.manifest.schema import decode_manifest
from vega_dag.pipeline import build
from vega_dag.regions.layout import _read_listing, ensure_tree, tree_is_intact, tree_path
from vega_dag.store.objects import CorruptObjectError, ObjectStore
from vega_dag.store.state import load_state

FILES = {
    "lib/__init__.py": "",
    "lib/db.py": "ROWS = [1, 2, 3]\n",
    "api/items.py": "from lib import db\n\n\ndef handler(request):\n    return len(db.ROWS)\n",
    "api/health.py": "def handler(request):\n    return 'ok'\n",
}


def _lay_out(root: Path, fleet: Path, manifest: str, monkeypatch) -> tuple[Path, list[str]]:
    """The tree of ``manifest``, and the members read from the store to make it."""
    store = ObjectStore(root / ".vega")
    read: list[str] = []
    inner = ObjectStore.tree_member

    def counted(self: ObjectStore, digest: str, member: str) -> bytes:
        read.append(member)
        return inner(self, digest, member)

    monkeypatch.setattr(ObjectStore, "tree_member", counted)
    tree = ensure_tree(store, fleet, manifest, decode_manifest(store.get(manifest)))
    monkeypatch.setattr(ObjectStore, "tree_member", inner)
    return tree, read


def _pyc(root: Path, module: str) -> str:
    return load_state(root / ".vega/state/build.msgpack").modules[module].pyc


def _pooled(fleet: Path, digest: str) -> Path:
    return fleet / "files" / digest.removeprefix(_core.DIGEST_PREFIX)


@pytest.fixture
def two(tree, tmp_path: Path, monkeypatch):
    """A project built, its tree laid out; then lib/db.py changed and built again."""
    root = tree(FILES)
    fleet = tmp_path / "fleet"
    first = build(root).manifest
    _, read = _lay_out(root, fleet, first, monkeypatch)
    old_db = _pyc(root, "lib.db")
    (root / "lib" / "db.py").write_text("ROWS = [1, 2, 3, 4]\n")
    second = build(root).manifest
    assert second != first
    return root, fleet, first, second, old_db, read


def test_a_new_deployment_reads_only_its_new_members(two, monkeypatch) -> None:
    root, fleet, first, second, old_db, first_read = two
    assert first_read  # an empty pool: every member came from the store
    new_db = _pyc(root, "lib.db")
    tree, read = _lay_out(root, fleet, second, monkeypatch)
    assert read == [new_db]
    listing = _read_listing(fleet, second)
    assert listing is not None and listing["lib/db.pyc"] == new_db
    assert tree_is_intact(tree, listing)
    assert _core.hash_file(tree / "lib" / "db.pyc") == new_db
    # Unchanged members are the pool's files, linked; the first tree is as it was.
    assert os.stat(tree / "api" / "health.pyc").st_nlink >= 3
    before = _read_listing(fleet, first)
    assert before is not None and tree_is_intact(tree_path(fleet, first), before)
    assert before["lib/db.pyc"] == old_db


def test_a_damaged_pooled_file_is_read_again_from_the_store(two, monkeypatch) -> None:
    root, fleet, _, second, _, _ = two
    health = _pyc(root, "api.health")
    pooled = _pooled(fleet, health)
    os.chmod(pooled, 0o644)
    pooled.write_bytes(pooled.read_bytes() + b"\0")
    tree, read = _lay_out(root, fleet, second, monkeypatch)
    assert health in read
    assert _core.hash_file(pooled) == health
    listing = _read_listing(fleet, second)
    assert listing is not None and tree_is_intact(tree, listing)


def test_damaged_in_the_pool_and_in_the_store_is_refused_naming_it(two, monkeypatch) -> None:
    root, fleet, _, second, _, _ = two
    health = _pyc(root, "api.health")
    pooled = _pooled(fleet, health)
    os.chmod(pooled, 0o644)
    pooled.write_bytes(b"not it")
    store = ObjectStore(root / ".vega")
    loc = store.index.objects[health]
    pack = root / ".vega" / "packs" / loc.pack
    data = bytearray(pack.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0x01
    pack.write_bytes(bytes(data))
    with pytest.raises(CorruptObjectError, match=f"api/health.pyc \\({health}\\)"):
        _lay_out(root, fleet, second, monkeypatch)
    assert not tree_path(fleet, second).exists()
