"""End to end: real regions on loopback, deployed and rolled back by the CLI."""

from __future__ import annotations

import json
import shutil

from tests.rollout.helpers import get, served, vega, vega_json
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet
from vega_dag.rollout.pointers import PointerStore


def test_deploy_serves_every_route_kind_from_bundles(project):
    out = vega_json("deploy", str(project))
    dpl = out["deployment"]
    assert dpl.startswith("dpl_") and out["status"] == "live"
    assert out["manifest"].startswith("blake3:")
    assert [r["name"] for r in out["regions"]] == ["fra", "iad", "sfo"]
    assert all(r["outcome"] == "promoted" and r["swap_seconds"] >= 0 for r in out["regions"])

    # The source goes away: the routes are served from the verified bundles.
    for name in ("api", "lib"):
        shutil.rmtree(project / name)
    for region in out["regions"]:
        status, headers, body = get(region["url"], "/api")
        assert status == 200
        assert headers["x-vega-region"] == region["name"]
        assert headers["x-vega-deployment"] == dpl
        assert json.loads(body) == {"version": "v1", "greeting": "hi"}
    url = out["regions"][0]["url"]
    status, headers, body = get(url, "/api/items/42?x=1")
    assert (status, headers["x-item"]) == (200, "1")
    assert json.loads(body) == {"id": "42", "q": {"x": "1"}}
    assert get(url, "/api/raw")[2] == b"asgi /api/raw"
    assert get(url, "/api/legacy")[2] == b"wsgi /api/legacy"
    status, headers, _ = get(url, "/nowhere")
    assert status == 404 and headers["x-vega-deployment"] == dpl


def test_redeploy_rollback_status_history(project):
    first = vega_json("deploy", str(project))["deployment"]
    again = vega("deploy", str(project))
    assert again.returncode == 0
    assert "no pointer moved" in again.stdout

    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    second = vega_json("deploy", str(project))
    assert second["changed_routes"] == ["/api"]  # only the route whose bundle changed
    assert set(served(project).values()) == {second["deployment"]}

    proc = vega("rollback", "--path", str(project))
    assert proc.returncode == 0, proc.stderr
    for name in ("fra", "iad", "sfo"):
        assert f"{name}" in proc.stdout and "ms" in proc.stdout
    assert set(served(project).values()) == {first}
    # Idempotent: a second rollback of the same deployment changes nothing.
    proc = vega("rollback", second["deployment"], "--path", str(project))
    assert proc.returncode == 0 and "nothing to roll back" in proc.stdout
    assert set(served(project).values()) == {first}

    status = vega_json("status", str(project))
    assert [(r["name"], r["deployment"], r["health"]) for r in status["regions"]] == [
        ("fra", first, "ok"),
        ("iad", first, "ok"),
        ("sfo", first, "ok"),
    ]
    assert all(r["url"].startswith("http://127.0.0.1:") for r in status["regions"])
    history = vega_json("history", str(project))
    assert [h["status"] for h in history] == ["rolled-back", "live"]
    reasons = [e["reason"] for e in history[0]["events"]]
    assert reasons.count("promote") == 3 and reasons.count("rollback") == 3


def test_unknown_deployment_and_held_lock_are_clear_errors(project):
    vega_json("deploy", str(project))
    proc = vega("rollback", "dpl_nothere", "--path", str(project))
    assert proc.returncode == 1 and "unknown deployment 'dpl_nothere'" in proc.stderr

    fleet = LocalFleet(load_config(project))
    store = PointerStore(fleet.db_path)
    with store.deploy_lock("deploy by someone-else"):
        (project / "lib" / "version.py").write_text('VERSION = "v3"\n')
        proc = vega("deploy", str(project), "--lock-timeout", "0.3")
    assert proc.returncode == 1
    assert "held by another deploy (deploy by someone-else" in proc.stderr


def test_regions_up_twice_changes_nothing_and_down_stops_all(project):
    up = vega("regions", "up", str(project), "-n", "2")
    assert up.returncode == 0 and "Started 2 regions" in up.stdout
    before = LocalFleet(load_config(project)).regions()
    again = vega("regions", "up", str(project), "-n", "5")
    assert again.returncode == 0 and "already running; nothing changed" in again.stdout
    assert LocalFleet(load_config(project)).regions() == before
    down = vega("regions", "down", str(project))
    assert "Stopped 2 regions" in down.stdout
    assert LocalFleet(load_config(project)).regions() == []
