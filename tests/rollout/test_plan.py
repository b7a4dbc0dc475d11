"""`vega-dag plan`: exactly what a deploy would do, computed without writing anything."""

from __future__ import annotations

from pathlib import Path

from tests.rollout.helpers import vega, vega_json


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under the store except the lock and the fleet's live files."""
    store = root / ".vega"
    return {
        str(p.relative_to(store)): p.read_bytes()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != "lock" and "fleet" not in p.parts
    }


def test_plan_is_exact_and_writes_nothing(project):
    fresh = vega_json("plan", str(project), "--json")
    assert fresh["start_regions"] is True
    assert sorted(fresh["compile"]) == [
        "api/index.py", "api/items/[id].py", "api/legacy.py", "api/raw.py",
        "lib/__init__.py", "lib/version.py",
    ]  # fmt: skip
    assert fresh["bundles_built"] == 4
    assert not (project / ".vega" / "packs").exists()

    deployed = vega_json("deploy", str(project), "--json")
    before = snapshot(project)
    same = vega_json("plan", str(project), "--json")
    assert same["manifest"] == deployed["manifest"]
    assert same["compile"] == [] and same["moving_regions"] == [] and same["maybe_noop"] is True
    assert same["rebuild_routes"] == []

    (project / "lib/version.py").write_text('VERSION = "v2"\n')
    changed = vega_json("plan", str(project), "--json")
    assert changed["compile"] == ["lib/version.py"]
    assert changed["bundles_built"] == 1
    assert changed["rebuild_routes"] == ["/api"]
    assert sorted(changed["moving_regions"]) == sorted(changed["pointers"])
    assert snapshot(project) == before  # a plan writes nothing to the store

    out = vega("plan", str(project)).stdout
    assert "would compile lib/version.py" in out
    assert "1 changed route(s) would be probed" in out

    redeployed = vega_json("deploy", str(project), "--json")
    assert redeployed["manifest"] == changed["manifest"]
