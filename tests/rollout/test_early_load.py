"""The new deployment loads in the regions as soon as the build has stored it.

A deploy asks every running region to verify and start loading the new
manifest from the build's ``on_stored`` hook (``rollout.deploy.EarlyLoad``),
before its preflight, lock and deployment record; the prefetch nodes then find
the load under way. Nothing a region serves changes before a pointer moves.
"""

from __future__ import annotations

import json

import pytest

from tests.rollout.helpers import served, vega, vega_json, write_project
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet
from vega_dag.rollout.deploy import EarlyLoad, early_load_allowed
from vega_dag.rollout.signing import TRUST_DIR


def _workers(root) -> dict[str, set[str]]:
    fleet = LocalFleet(load_config(root))
    return {
        name: {w["manifest"] for w in status["workers"]}
        for name, status in fleet.statuses(fleet.regions()).items()
        if isinstance(status, dict)
    }


def test_the_new_deployment_loads_before_any_prefetch_node_runs(project):
    first = vega_json("deploy", str(project))
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    # The deploy dies just before its first prefetch node: what the regions hold
    # then came from the early load alone.
    proc = vega("deploy", "-q", str(project), env={"VEGA_DAG_TEST_KILL_AT": "prefetch:fra"})
    assert proc.returncode == -9, proc.stderr
    built = vega_json("build", str(project))  # a no-op: the killed deploy's build stood
    assert built["manifest"] != first["manifest"]
    assert all(built["manifest"] in held for held in _workers(project).values())
    # ... and nothing moved: every region still serves the first deployment.
    assert set(served(project).values()) == {first["deployment"]}

    out = vega_json("deploy", str(project))
    assert out["status"] == "live" and out["manifest"] == built["manifest"]
    assert out["changed_routes"] == ["/api"]
    assert set(served(project).values()) == {out["deployment"]}


def test_a_build_error_loads_nothing_and_fails_as_before(project):
    first = vega_json("deploy", str(project))
    before = _workers(project)
    (project / "api" / "index.py").write_text("def handler(request:\n")
    proc = vega("deploy", str(project))
    assert proc.returncode == 1
    assert "✗ Build failed" in proc.stderr and "index.py" in proc.stderr
    assert _workers(project) == before
    assert set(served(project).values()) == {first["deployment"]}
    out = json.loads(vega("deploy", "--json", str(project)).stdout)
    assert "error" in out


def test_no_early_load_where_regions_enforce_signatures(tmp_path, project):
    fleet = LocalFleet(load_config(project))
    assert early_load_allowed(fleet)
    trusted = fleet.dir / TRUST_DIR
    trusted.mkdir(parents=True, exist_ok=True)
    (trusted / "ci.pub").write_text("not even a key")  # unreadable still enforces
    assert not early_load_allowed(fleet)
    assert EarlyLoad.start(load_config(project), fleet, "blake3:" + "0" * 64) is None
    # A target that is not a local fleet (region agents) is asked by the prefetch nodes only.
    assert not early_load_allowed(object())


def test_the_build_says_when_its_manifest_is_stored(tmp_path):
    from vega_dag.pipeline import BuildError, Reporter, build
    from vega_dag.store.objects import ObjectStore

    root = write_project(tmp_path / "proj")
    stored: list[str] = []
    readable: list[bool] = []

    def on_stored(manifest: str) -> None:
        stored.append(manifest)
        # Readable by another process at that moment (the caches are recorded after).
        readable.append(ObjectStore(load_config(root).store_dir).has(manifest))

    result = build(root, reporter=Reporter(on_stored=on_stored))
    assert stored == [result.manifest] and readable == [True]
    build(root, reporter=Reporter(on_stored=on_stored))  # no change: no new manifest
    assert stored == [result.manifest]
    (root / "api" / "index.py").write_text("def handler(request:\n")
    with pytest.raises(BuildError):
        build(root, reporter=Reporter(on_stored=on_stored))
    assert stored == [result.manifest]
