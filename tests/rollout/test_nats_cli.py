"""deploy, rollback, status and history with the pointers on NATS JetStream (a real server),
to local regions that learn their pointer from NATS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.rollout.helpers import cli_env, served, vega, vega_json


def test_a_rollout_with_its_pointers_on_nats(project: Path, nats_url: str) -> None:
    on_nats = ["--pointers", nats_url]
    first = vega_json("deploy", str(project), *on_nats)["deployment"]
    assert set(served(project).values()) == {first}
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    second = vega_json("deploy", str(project), *on_nats)["deployment"]
    assert set(served(project).values()) == {second}

    # The console script's fast path takes --pointers too.
    rolled = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vega_dag.entry import main; main()",
            "rollback",
            "--json",
            "--path",
            str(project),
            *on_nats,
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert rolled.returncode == 0, rolled.stderr
    assert set(served(project).values()) == {first}

    # VEGA_DAG_POINTERS does what --pointers does.
    status = vega("status", str(project), "--json", env={"VEGA_DAG_POINTERS": nats_url})
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)["regions"]
    assert {(r["name"], r["deployment"], r["health"]) for r in rows} == {
        (name, first, "ok") for name in ("fra", "iad", "sfo")
    }
    history = vega_json("history", str(project), *on_nats)
    assert [(d["deployment"], d["status"]) for d in history] == [
        (second, "rolled-back"),
        (first, "live"),
    ]
    assert [e["reason"] for e in history[0]["events"]] == ["promote"] * 3 + ["rollback"] * 3
    # Nothing went to the SQLite file: the pointers live in NATS alone.
    assert not (project / ".vega" / "fleet" / "pointers.sqlite").exists()
    # A deploy to the SQLite file would wait for regions that never read it: refused.
    elsewhere = vega("deploy", str(project))
    assert elsewhere.returncode != 0
    assert "watch the pointer store nats/" in elsewhere.stderr
    assert "but this deploy writes sqlite" in elsewhere.stderr
    assert set(served(project).values()) == {first}
    # plan and gc read the same pointers: what each region serves, and what a rollback needs.
    plan = vega_json("plan", str(project), *on_nats)
    assert plan["pointers"] == {name: first for name in ("fra", "iad", "sfo")}
    kept = vega_json("gc", str(project), "--dry-run", *on_nats)["kept_deployments"]
    assert first in kept and second in kept, kept


def test_a_pointer_store_that_does_not_answer_fails_the_deploy_naming_it(project: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = vega("deploy", str(project), "--pointers", f"nats://127.0.0.1:{port}")
    assert proc.returncode != 0
    assert f"pointers nats://127.0.0.1:{port}: cannot connect" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_signed_deploys_with_the_pointers_on_nats(project: Path, tmp_path: Path, nats_url: str):
    from tests.rollout.test_signing import keypair, region_status, until
    from vega_dag.rollout.jetstream import JetStreamPointers
    from vega_dag.rollout.pointers import Move

    private, public, kid = keypair(tmp_path / "keys", "deploy")
    other, _, other_kid = keypair(tmp_path / "keys", "other")
    on_nats = {"VEGA_DAG_POINTERS": nats_url}
    assert vega("regions", "up", str(project), env=on_nats).returncode == 0
    assert vega("keys", "trust", str(public), str(project)).returncode == 0
    signed = vega(
        "deploy", str(project), "--json", env={**on_nats, "VEGA_DAG_SIGNING_KEY": str(private)}
    )
    assert signed.returncode == 0, signed.stderr + signed.stdout
    outcome = json.loads(signed.stdout)
    assert outcome["signed_by"] == kid
    assert set(served(project).values()) == {outcome["deployment"]}

    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    untrusted = vega("deploy", str(project), env={**on_nats, "VEGA_DAG_SIGNING_KEY": str(other)})
    assert untrusted.returncode == 1
    assert f"signed by {other_kid}, which this region does not trust" in untrusted.stderr
    assert set(served(project).values()) == {outcome["deployment"]}

    # Write access to the pointers alone cannot make a region run code: moved by hand, refused.
    store = JetStreamPointers(nats_url)
    try:
        bad = store.deployments(1)[0]
        assert bad.signed_by == other_kid
        p = store.pointer("fra")
        store.swap([Move("fra", p.generation, p.deployment, bad.id)], bad.id, "by hand", "mallory")
    finally:
        store.close()
    until("fra refuses it", lambda: "refused" in (region_status(project, "fra")["error"] or ""))
    assert served(project)["fra"] == outcome["deployment"]
