"""Bad deployments fail their gate, are rolled back, and say why."""

from __future__ import annotations

import json

from tests.rollout.helpers import served, stop_fleet, vega, vega_json, write_project
from vega_dag.config import load_config
from vega_dag.store.objects import ObjectStore

BAD_ROUTES = {
    "raises": ("def handler(request):\n    raise RuntimeError('boom')\n", "status 500"),
    "returns 500": ("def handler(request):\n    return {'error': 'no'}, 500\n", "status 500"),
    "hangs": ("import time\n\ndef handler(request):\n    time.sleep(30)\n", "timed out"),
    "is slow": (
        "import time\n\ndef handler(request):\n    time.sleep(0.3)\n    return {}\n",
        "p99",
    ),
}


def test_failing_routes_fail_the_gate_and_are_rolled_back(tmp_path):
    root = write_project(tmp_path / "proj", p99_ms=150, timeout_s=1.0)
    try:
        good = vega_json("deploy", str(root))["deployment"]
        for what, (source, reason) in BAD_ROUTES.items():
            (root / "api" / "index.py").write_text(source)
            proc = vega("deploy", str(root), "--json")
            assert proc.returncode == 1, what
            out = json.loads(proc.stdout)
            assert out["status"] == "rolled-back", what
            gate = out["gates"][-1]
            assert not gate["passed"]
            assert any(reason in p and "/api" in p for p in gate["problems"]), (what, gate)
            assert out["regions"][0]["outcome"] == "rolled-back"
            # The canary's gate failed: no other region was touched.
            assert {r["name"] for r in out["regions"] if r["outcome"] == "rolled-back"} == {"fra"}
            assert set(served(root).values()) == {good}, what
        proc = vega("deploy", str(root))
        assert "gate of canary (fra)" in proc.stderr and "samples" in proc.stderr
        assert "Rolled back 1 region(s) automatically" in proc.stderr
    finally:
        stop_fleet(root)


def test_too_few_samples_is_a_failure(tmp_path):
    root = write_project(tmp_path / "proj")
    text = (root / "pyproject.toml").read_text().replace("min_samples = 3", "min_samples = 3\n")
    (root / "pyproject.toml").write_text(text)
    try:
        vega_json("deploy", str(root))
        (root / "api" / "items" / "[id].py").write_text(
            "import time\n\ndef handler(request):\n    time.sleep(30)\n"
        )
        proc = vega("deploy", str(root), "--json")
        out = json.loads(proc.stdout)
        problems = " ".join(out["gates"][-1]["problems"])
        assert "only 0 of at least 3 probes completed" in problems
    finally:
        stop_fleet(root)


def test_corrupt_blob_is_refused_before_any_pointer_moves(tmp_path):
    root = write_project(tmp_path / "proj")
    try:
        good = vega_json("deploy", str(root))["deployment"]
        (root / "lib" / "version.py").write_text('VERSION = "v2"\n')
        built = json.loads(vega("build", str(root), "--json").stdout)
        store = ObjectStore(load_config(root).store_dir)
        bundle = built["routes"]["/api"]
        loc = store.index.objects[bundle]
        pack = store.root / "packs" / loc.pack
        data = bytearray(pack.read_bytes())
        data[loc.offset + loc.length - 5] ^= 0xFF
        pack.write_bytes(bytes(data))
        proc = vega("deploy", str(root), "--json")
        assert proc.returncode == 1
        out = json.loads(proc.stdout)
        assert out["status"] == "failed"
        assert "is damaged" in out["error"] and bundle in out["error"]
        assert set(served(root).values()) == {good}
    finally:
        stop_fleet(root)
