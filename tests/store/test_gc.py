"""``vega-dag gc`` and ``store verify``: what is kept, what is freed, and kill -9 at each step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.rollout.helpers import served, stop_fleet, vega, vega_json, write_project
from vega_dag.config import load_config
from vega_dag.manifest.schema import decode_manifest
from vega_dag.pipeline import build
from vega_dag.regions.fleet import fleet_dir
from vega_dag.rollout.pointers import Move, PointerStore
from vega_dag.store.gc import GcPolicy, collect, parse_size, verify
from vega_dag.store.objects import ObjectStore


def _version(root: Path, n: int) -> str:
    (root / "lib" / "version.py").write_text(f'VERSION = "v{n}"\n')
    return build(root).manifest


def _objects_of(store_dir: Path, manifest: str) -> set[str]:
    """Every object a deployment of ``manifest`` reads, checked readable."""
    store = ObjectStore(store_dir)
    m = decode_manifest(store.get(manifest))
    found = {manifest}
    for route in m.routes:
        found.add(route.bundle)
        store.get(route.bundle)  # its archive made, every member verified
        found.update(d for _, d in store.tree(route.bundle).entries)
    return found


def _store_files(store_dir: Path) -> dict[str, int]:
    return {
        str(p.relative_to(store_dir)): p.stat().st_size
        for p in store_dir.rglob("*")
        if p.is_file() and "fleet" not in p.parts
    }


def _fake_deploys(root: Path, manifests: list[str]) -> tuple[list[str], PointerStore]:
    """Deployments of ``manifests`` (oldest first), each moving regions a and b in turn."""
    config = load_config(root)
    pointers = PointerStore(fleet_dir(config) / "pointers.sqlite")
    ids = []
    for manifest in manifests:
        dpl = pointers.create_deployment(manifest, str(root), {}, {}, "test").id
        ptrs = pointers.pointers()
        moves = [
            Move(
                r,
                ptrs[r].generation if r in ptrs else 0,
                ptrs[r].deployment if r in ptrs else None,
                dpl,
            )
            for r in ("a", "b")
        ]
        pointers.swap(moves, dpl, "deploy", "test")
        pointers.set_status(dpl, "live")
        ids.append(dpl)
    return ids, pointers


#: A route only the first version has, big enough that its build's pack is
#: mostly dead once v1 is dropped: gc then compacts that pack.
BIG_ROUTE = "BLOB = " + repr("x" * 200_000) + "\n\ndef handler(request):\n    return {}\n"


@pytest.fixture
def built(tmp_path: Path):
    """A project built in five versions, the last one the head (v1 with a big route)."""
    root = write_project(tmp_path / "proj", extra={"api/big.py": BIG_ROUTE})
    manifests = [_version(root, 1)]
    (root / "api" / "big.py").unlink()
    manifests += [_version(root, n) for n in range(2, 6)]
    return root, manifests


def test_gc_keeps_head_and_rollback_targets_and_frees_the_rest(built):
    root, manifests = built
    store_dir = load_config(root).store_dir
    ids, pointers = _fake_deploys(root, manifests[:4])  # v4 served, v3 its rollback target
    pointers.close()
    before = _store_files(store_dir)

    dry = collect(load_config(root), GcPolicy(keep_deployments=0), dry_run=True)
    assert _store_files(store_dir) == before  # a dry run deletes nothing
    assert dry.freed > 0 and sorted(dry.dropped_deployments) == sorted(ids[:2])

    report = collect(load_config(root), GcPolicy(keep_deployments=0))
    assert report.freed == dry.freed and report.bytes_after == dry.bytes_after
    assert report.packs_compacted == 1 and report.packs_written == 1  # v1's, with the big route
    assert report.actions_dropped > 0
    after = _store_files(store_dir)
    assert sum(after.values()) < sum(before.values())
    assert report.kept_deployments[ids[3]].startswith("served by")
    assert report.kept_deployments[ids[2]].startswith("rollback target of")
    for manifest in (manifests[2], manifests[3], manifests[4]):  # rollback, served, head
        _objects_of(store_dir, manifest)
    store = ObjectStore(store_dir)
    assert not store.has(manifests[0]) and not store.has(manifests[1])
    assert verify(store_dir).damaged == []

    # The next build is a no-op all from cache; a second gc finds nothing to free.
    again = build(root)
    assert again.noop or again.modules_compiled == 0
    assert collect(load_config(root), GcPolicy(keep_deployments=0)).freed == 0


def test_policy_keeps_newest_and_max_size_drops_oldest(built):
    root, manifests = built
    ids, pointers = _fake_deploys(root, manifests)
    pointers.close()
    config = load_config(root)
    keep3 = collect(config, GcPolicy(keep_deployments=3), dry_run=True)
    # v5 served, v4 its rollback target, and the newest three besides (v3)
    assert set(keep3.kept_deployments) == set(ids[2:])
    assert sorted(keep3.dropped_deployments) == sorted(ids[:2])
    young = collect(config, GcPolicy(keep_deployments=0, keep_days=1), dry_run=True)
    assert set(young.kept_deployments) == set(ids) and young.dropped_deployments == []
    tight = collect(config, GcPolicy(keep_deployments=10, max_size=1), dry_run=True)
    assert set(tight.kept_deployments) == set(ids[3:])  # never the pinned ones
    assert any("exceed --max-size" in n for n in tight.notes)
    assert parse_size("1.5G") == 3 << 29 and parse_size("500m") == 500 << 20
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


@pytest.mark.parametrize(
    "step", ["pack-written", "index-written", "pack-deleted", "objects-deleted"]
)
def test_kill_during_gc_leaves_a_valid_store(built, step):
    root, manifests = built
    store_dir = load_config(root).store_dir
    _ids, pointers = _fake_deploys(root, manifests[:4])
    pointers.close()
    killed = vega(
        "gc", str(root), "--keep-deployments", "0", env={"VEGA_DAG_TEST_KILL_AT": f"gc:{step}"}
    )
    assert killed.returncode == -9, killed.stderr
    assert verify(store_dir).damaged == []
    for manifest in (manifests[2], manifests[3], manifests[4]):
        _objects_of(store_dir, manifest)
    # The next gc finishes the job; the store stays whole and the build a no-op.
    out = vega_json("gc", str(root), "--keep-deployments", "0")
    assert out["dry_run"] is False
    assert verify(store_dir).damaged == []
    for manifest in (manifests[2], manifests[3], manifests[4]):
        _objects_of(store_dir, manifest)
    assert not list((store_dir / "packs").glob(".*.tmp"))
    assert vega_json("gc", str(root), "--keep-deployments", "0")["freed_bytes"] == 0
    assert build(root).modules_compiled == 0


def test_gc_waits_for_a_deploy_then_names_it(built):
    root, manifests = built
    _ids, pointers = _fake_deploys(root, manifests[-1:])
    with pointers.deploy_lock("deploy by someone"):
        proc = vega("gc", str(root), "--lock-timeout", "0.2")
    pointers.close()
    assert proc.returncode == 1
    assert "deploy by someone" in proc.stderr and "Traceback" not in proc.stderr


def test_store_verify_names_each_damaged_object(built):
    root, manifests = built
    store_dir = load_config(root).store_dir
    proc = vega("store", "verify", str(root))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "0 damaged" in proc.stdout
    store = ObjectStore(store_dir)
    loose = store.put_loose(b"a loose object\n" * 100)
    loc = store.index.objects[manifests[-1]]
    with open(store_dir / "packs" / loc.pack, "r+b") as f:
        f.seek(loc.offset)
        f.write(b"X")
    path = store.loose_path(loose)
    path.write_bytes(path.read_bytes() + b"!")
    damaged = {manifests[-1], loose}
    proc = vega("store", "verify", str(root), "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert {d["digest"] for d in out["damaged"]} == damaged
    assert all(d["where"] and d["reason"] for d in out["damaged"])


def test_gc_cli_reports_and_bad_size_is_a_clear_error(built):
    root, _manifests = built
    proc = vega("gc", str(root), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "Would free" in proc.stdout
    bad = vega("gc", str(root), "--max-size", "huge")
    assert bad.returncode == 2 and "not a size" in bad.stderr and "Traceback" not in bad.stderr


def test_gc_keeps_every_reachable_rollback_working(tmp_path: Path):
    """Real regions: after gc, rollback returns each region to the previous deployment."""
    root = write_project(tmp_path / "proj")
    try:
        deployed = []
        for n in range(1, 5):
            (root / "lib" / "version.py").write_text(f'VERSION = "v{n}"\n')
            deployed.append(vega_json("deploy", str(root))["deployment"])
        out = vega_json("gc", str(root), "--keep-deployments", "0")
        assert out["freed_bytes"] > 0
        assert sorted(out["dropped_deployments"]) == sorted(deployed[:2])
        assert set(out["kept_deployments"]) == set(deployed[2:])
        assert vega("store", "verify", str(root)).returncode == 0
        # Restarted regions hold nothing warm: each target comes from the store.
        assert vega("regions", "down", str(root)).returncode == 0
        assert vega("regions", "up", str(root)).returncode == 0
        assert set(served(root).values()) == {deployed[3]}

        back = vega_json("rollback", deployed[3], "--path", str(root))
        assert {r["to"] for r in back["regions"]} == {deployed[2]}
        assert set(served(root).values()) == {deployed[2]}
        # v2's objects are gone: rolling v3 back fails before any pointer moves.
        proc = vega("rollback", deployed[2], "--path", str(root))
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "nothing was changed" in proc.stderr
        assert set(served(root).values()) == {deployed[2]}
        # A new deploy after gc works from the kept objects.
        (root / "lib" / "version.py").write_text('VERSION = "v9"\n')
        assert vega_json("deploy", str(root))["status"] == "live"
    finally:
        stop_fleet(root)
    assert os.path.isdir(load_config(root).store_dir)


def test_builds_in_the_daemon_after_gc_match_one_shot_builds(tree, tmp_path: Path):
    """A resident build process keeps verified bytes; after gc it must not trust deleted ones."""
    from tests.pipeline.test_daemon import built as daemon_built
    from tests.pipeline.test_daemon import vega as entry
    from tests.pipeline.two_routes import FILES
    from vega_dag.daemon.client import call

    root = tree(FILES)
    twin = tree(FILES, tmp_path / "twin")
    try:
        assert entry("daemon", "start", str(root), cwd=root).returncode == 0
        versions = ["def twice(x):\n    return 2 * x\n", "def twice(x):\n    return x + x\n"]
        for text in [*versions, versions[0]]:
            for r in (root, twin):
                (r / "lib/util.py").write_text(text)
            daemon_built(entry("build", "--json", "--verify", cwd=root))
            gc = entry("gc", "--keep-deployments", "0", "--json", cwd=root)
            assert gc.returncode == 0, gc.stderr
        ours = daemon_built(entry("build", "--json", "--verify", cwd=root))
        theirs = daemon_built(entry("build", "--json", cwd=twin, daemon=False))
        assert ours["manifest"] == theirs["manifest"]
        store_dir = load_config(root).store_dir
        assert verify(store_dir).damaged == []
        _objects_of(store_dir, ours["manifest"])
    finally:
        call(root.resolve(), {"stop": True}, timeout=10)


def test_gc_keeps_the_data_files_a_kept_deployment_reads(tmp_path: Path):
    page = "lib/templates/page.html"
    route = (
        "from importlib.resources import files\n\n\n"
        "def handler(request):\n"
        "    return (files('lib') / 'templates/page.html').read_text()\n"
    )
    root = write_project(tmp_path / "proj", extra={page: "<p>one</p>\n", "api/page.py": route})
    store_dir = load_config(root).store_dir
    served_manifest = build(root).manifest
    _, pointers = _fake_deploys(root, [served_manifest])
    pointers.close()
    data = {digest for name, digest in _members(store_dir, served_manifest) if name == page}
    assert len(data) == 1  # the template is a member of the route's bundle
    (root / page).write_text("<p>two</p>\n")
    assert build(root).manifest != served_manifest

    collect(load_config(root), GcPolicy(keep_deployments=0))
    store = ObjectStore(store_dir)
    # The served deployment's template is still there, byte for byte.
    assert store.get(data.pop()) == b"<p>one</p>\n"
    _objects_of(store_dir, served_manifest)
    assert verify(store_dir).damaged == []


def _members(store_dir: Path, manifest: str) -> list[tuple[str, str]]:
    store = ObjectStore(store_dir)
    out = []
    for route in decode_manifest(store.get(manifest)).routes:
        out += store.tree(route.bundle).entries
    return out
