"""A bundle's digest is its tree's, and every reader still verifies every byte it reads.

One byte flipped in one member object (a compiled module in two bundles):
each place that reads bundles names it, by its entry name and digest, and
none serves or lays out the damaged bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vega_dag import _core
from vega_dag.bundle.routes import ROUTE_JSON
from vega_dag.cli import main
from vega_dag.drift.compare import _store_copy
from vega_dag.manifest.schema import decode_manifest
from vega_dag.pipeline import build
from vega_dag.regions.layout import ensure_tree, tree_path
from vega_dag.store.gc import verify
from vega_dag.store.objects import TREE, CorruptObjectError, ObjectStore
from vega_dag.store.state import load_state

FILES = {
    "lib/__init__.py": "",
    "lib/db.py": "ROWS = [1, 2, 3]\n\n\ndef count():\n    return len(ROWS)\n",
    "api/items.py": "from lib import db\n\n\ndef handler(request):\n    return db.count()\n",
    "api/rows.py": "from lib import db\n\n\ndef handler(request):\n    return db.ROWS\n",
    "api/health.py": "def handler(request):\n    return 'ok'\n",
}


@pytest.fixture
def built(tree):
    root = tree(FILES)
    result = build(root)
    state = load_state(root / ".vega/state/build.msgpack")
    return root, result, state.modules["lib.db"].pyc


def _flip_a_byte(root: Path, digest: str) -> None:
    store = ObjectStore(root / ".vega")
    loc = store.index.objects[digest]
    pack = root / ".vega" / "packs" / loc.pack
    data = bytearray(pack.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0x01
    pack.write_bytes(bytes(data))


def test_a_bundle_is_its_tree(built):
    root, result, pyc = built
    store = ObjectStore(root / ".vega")
    bundle = result.routes["/api/items"]
    assert store.index.objects[bundle].form == TREE
    names = [n for n, _ in store.tree(bundle).entries]
    assert names == [ROUTE_JSON, "api/items.pyc", "lib/__init__.pyc", "lib/db.pyc"]
    assert ("lib/db.pyc", pyc) in store.tree(bundle).entries
    # The archive is made on demand, and it holds exactly the tree's members.
    archive = _core.read_archive(store.get(bundle))
    assert {n: _core.hash_bytes(b) for n, b in archive.items() if not n.endswith("/")} == dict(
        store.tree(bundle).entries
    )


def test_a_damaged_member_is_named_by_every_verifier(built, tmp_path):
    root, result, pyc = built
    holding = sorted(result.routes[p] for p in ("/api/items", "/api/rows"))
    _flip_a_byte(root, pyc)

    # Reading a bundle (its zip, or its files for a region's layout).
    store = ObjectStore(root / ".vega")
    for bundle in holding:
        with pytest.raises(CorruptObjectError, match=f"lib/db.pyc \\({pyc}\\)"):
            store.get(bundle)
    assert ObjectStore(root / ".vega").verified(result.routes["/api/health"])

    # A region's layout of the deployment: refused, nothing laid out.
    manifest = decode_manifest(store.get(result.manifest))
    fleet = tmp_path / "fleet"
    with pytest.raises(CorruptObjectError, match=f"lib/db.pyc \\({pyc}\\)"):
        ensure_tree(ObjectStore(root / ".vega"), fleet, result.manifest, manifest)
    assert not tree_path(fleet, result.manifest).exists()

    # `vega-dag store verify`: the member itself, and each bundle that holds it.
    report = verify(root / ".vega")
    damaged = {d: why for d, _, why in report.damaged}
    assert set(damaged) == {pyc, *holding}
    assert "hashes to" in damaged[pyc]
    assert all(f"lib/db.pyc ({pyc})" in damaged[b] for b in holding)

    # The drift check's copy of a stored bundle (for its diffs) is never the damaged one.
    assert _store_copy(ObjectStore(root / ".vega"), holding[0], tmp_path) is None

    # `build --verify` makes the member again; every bundle then reads back whole.
    from click.testing import CliRunner

    out = CliRunner().invoke(main, ["build", str(root), "--verify", "--json"])
    assert out.exit_code == 0, out.output
    again = json.loads(out.stdout)
    assert again["compiled"] == ["lib/db.py"]
    assert again["manifest"] == result.manifest
    assert verify(root / ".vega").damaged == []
    ensure_tree(ObjectStore(root / ".vega"), fleet, result.manifest, manifest)
    laid_out = tree_path(fleet, result.manifest) / "lib" / "db.pyc"
    assert _core.hash_file(laid_out) == pyc


def test_a_damaged_tree_record_is_named(built):
    root, result, _ = built
    bundle = result.routes["/api/health"]
    _flip_a_byte(root, bundle)
    with pytest.raises(CorruptObjectError, match="hashes to"):
        ObjectStore(root / ".vega").get(bundle)
    assert [d for d, _, _ in verify(root / ".vega").damaged] == [bundle]
