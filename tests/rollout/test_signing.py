"""Signed deployments: regions that trust keys serve only records those keys signed.

Real regions on loopback, real Ed25519 keys (the ``cryptography`` package),
the CLI in fresh processes. The attacker of these tests can write the pointer
store (SQLite) but holds no trusted private key.
"""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from tests.rollout.helpers import get, served, vega, vega_json
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet
from vega_dag.rollout.pointers import PointerStore


def keypair(directory: Path, name: str) -> tuple[Path, Path, str]:
    proc = vega("keys", "generate", "--name", name, "--dir", str(directory), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    return Path(out["private"]), Path(out["public"]), out["key_id"]


def deploy(root: Path, key: Path | None) -> tuple[int, str, str]:
    env = {"VEGA_DAG_SIGNING_KEY": str(key) if key else ""}
    proc = vega("deploy", str(root), env=env, timeout=180)
    return proc.returncode, proc.stdout, proc.stderr


def url(root: Path, name: str) -> str:
    return next(r.url for r in LocalFleet(load_config(root)).regions() if r.name == name)


def region_status(root: Path, name: str) -> dict:
    fleet = LocalFleet(load_config(root))
    info = next(r for r in fleet.regions() if r.name == name)
    return fleet.status(info)


def until(what: str, check, deadline: float = 30.0):
    stop = time.monotonic() + deadline
    while not (value := check()):
        if time.monotonic() > stop:
            pytest.fail(f"not within {deadline:.0f}s: {what}")
        time.sleep(0.1)
    return value


def test_keys_generate_writes_a_private_key_only_its_owner_reads(tmp_path: Path):
    private, public, kid = keypair(tmp_path / "keys", "ci")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    line = public.read_text().split()
    assert line[0] == "ssh-ed25519" and line[-1] == kid and kid.startswith("ed25519:")
    # A second key of the same name would lose the first: refused, naming the file.
    again = vega("keys", "generate", "--name", "ci", "--dir", str(tmp_path / "keys"))
    assert again.returncode == 1
    assert f"{private}: already exists" in again.stderr and "Traceback" not in again.stderr


def test_a_signed_deploy_serves_where_its_key_is_trusted(project: Path, tmp_path: Path):
    private, public, kid = keypair(tmp_path / "keys", "deploy")
    assert vega("regions", "up", str(project)).returncode == 0
    trusted = vega_json("keys", "trust", str(public), str(project))
    assert trusted["trusted"] == kid
    assert vega_json("keys", "list", str(project))["trusted"] == [kid]

    proc = vega("deploy", str(project), "--json", env={"VEGA_DAG_SIGNING_KEY": str(private)})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    outcome = json.loads(proc.stdout)
    assert outcome["status"] == "live" and outcome["signed_by"] == kid
    dpl = outcome["deployment"]
    assert set(served(project).values()) == {dpl}
    assert region_status(project, "fra")["trusted"] == [kid]
    store = PointerStore(LocalFleet(load_config(project)).db_path)
    try:
        record = store.require(dpl)
    finally:
        store.close()
    assert record.signed_by == kid and record.signature


def test_unsigned_and_untrusted_deploys_fail_before_any_pointer_moves(
    project: Path, tmp_path: Path
):
    trusted_key, trusted_pub, kid = keypair(tmp_path / "keys", "trusted")
    other_key, _, other_kid = keypair(tmp_path / "keys", "other")
    assert vega("regions", "up", str(project)).returncode == 0
    assert vega("keys", "trust", str(trusted_pub), str(project)).returncode == 0
    code, out, err = deploy(project, trusted_key)
    assert code == 0, err + out
    first = set(served(project).values())
    assert len(first) == 1

    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    code, out, err = deploy(project, None)
    assert code == 1
    assert "prefetch:" in err and "is not signed" in err and kid in err, err
    assert "Traceback" not in err
    assert set(served(project).values()) == first

    code, out, err = deploy(project, other_key)
    assert code == 1
    assert f"signed by {other_kid}, which this region does not trust" in err, err
    assert set(served(project).values()) == first
    # Both failed deploys are on record, and neither moved a pointer.
    history = vega_json("history", str(project))
    assert [d["status"] for d in history[:2]] == ["failed", "failed"]
    assert history[0]["events"] == [] and history[1]["events"] == []
    assert history[1]["signed_by"] == "" and history[0]["signed_by"] == other_kid


def test_a_pointer_moved_by_hand_is_refused_without_a_trusted_signature(
    project: Path, tmp_path: Path
):
    key, pub, kid = keypair(tmp_path / "keys", "deploy")
    assert vega("regions", "up", str(project)).returncode == 0
    assert vega("keys", "trust", str(pub), str(project)).returncode == 0
    code, out, err = deploy(project, key)
    assert code == 0, err + out
    (dpl,) = set(served(project).values())
    # The attacker builds other code into the store and writes the pointer store.
    (project / "lib" / "version.py").write_text('VERSION = "evil"\n')
    other = vega_json("build", str(project))["manifest"]
    db_path = LocalFleet(load_config(project)).db_path
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        # 1. A forged record, unsigned, and fra's pointer moved to it.
        db.execute(
            "INSERT INTO deployments (id, manifest, project, config, env, created_at, actor,"
            " status, detail) SELECT 'dpl_forged', ?, project, config, env, created_at, actor,"
            " 'live', '' FROM deployments WHERE id=?",
            (other, dpl),
        )
        db.execute(
            "UPDATE pointers SET deployment='dpl_forged', generation=generation+1"
            " WHERE region='fra'"
        )
        why = until(
            "fra refuses the forged deployment",
            lambda: (
                (region_status(project, "fra").get("error") or "").startswith("dpl_forged:")
                and region_status(project, "fra")["error"]
            ),
        )
        assert "refused: the deployment is not signed" in why and kid in why
        status, headers, body = get(url(project, "fra"), "/api")
        assert status == 200 and headers["x-vega-deployment"] == dpl
        assert json.loads(body)["version"] == "v1"

        # 2. The signed record itself altered to name the other manifest.
        db.execute("UPDATE deployments SET manifest=? WHERE id=?", (other, dpl))
        db.execute(
            "UPDATE pointers SET deployment=?, generation=generation+1 WHERE region='fra'",
            (dpl,),
        )
        why = until(
            "fra refuses the altered record",
            lambda: (
                "does not match" in (region_status(project, "fra").get("error") or "")
                and region_status(project, "fra")["error"]
            ),
        )
        assert f"the signature by {kid} does not match the deployment record" in why
        assert json.loads(get(url(project, "fra"), "/api")[2])["version"] == "v1"
    finally:
        db.close()
    rows = {r["name"]: r for r in vega_json("status", str(project))["regions"]}
    assert "refused" in rows["fra"]["health"]


def test_keys_dir_trust_untrust_and_list(project: Path, tmp_path: Path):
    """VEGA_DAG_KEYS_DIR is where keys go by default; untrust undoes trust; list shows both."""
    keys = tmp_path / "from-env"
    proc = vega("keys", "generate", "--json", env={"VEGA_DAG_KEYS_DIR": str(keys)})
    assert proc.returncode == 0, proc.stderr
    made = json.loads(proc.stdout)
    assert Path(made["private"]) == keys / "deploy.key" and (keys / "deploy.pub").is_file()
    kid = made["key_id"]

    assert vega_json("keys", "trust", str(keys / "deploy.pub"), str(project))["trusted"] == kid
    assert vega_json("keys", "list", str(project))["trusted"] == [kid]
    gone = vega("keys", "untrust", kid, str(project))
    assert gone.returncode == 0 and f"no longer trust {kid}" in gone.stdout
    assert vega_json("keys", "list", str(project))["trusted"] == []
    again = vega("keys", "untrust", kid, str(project))
    assert again.returncode == 1 and f"{kid}: not a trusted key" in again.stderr
    assert "Traceback" not in again.stderr
