"""Faults on region agents: killed mid-fetch, a corrupted S3 object, racing deploys, an
untrusted signature. After each, every agent serves one complete, verified deployment."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tests.agents.helpers import Agents, Backends, agent_project, deploy, until
from tests.rollout.helpers import vega, vega_json

NAMES = ["fra", "iad", "sfo"]
#: The deployer counts an agent quiet after 2 s without a heartbeat (default 5).
QUICK = {"VEGA_DAG_AGENT_DOWN_S": "2"}


def _deployed(project: Path, env: dict[str, str] | None = None) -> str:
    proc = deploy(project, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)["deployment"]


def test_an_agent_killed_mid_fetch_converges_once_restarted(
    tmp_path: Path, backends: Backends, agents: Agents
) -> None:
    project = agent_project(tmp_path / "proj", backends)
    agents.start_many(NAMES)
    one = _deployed(project)

    # Killed mid-fetch of its own pointer's deployment (a new host: an empty store).
    fresh = tmp_path / "hosts" / "fra-new"
    dying = agents.start(
        "fra", directory=fresh, wait=False, env={"VEGA_DAG_TEST_KILL_AT": "ship:fetched"}
    )
    assert dying.proc.wait(60) == -9
    agents.start("fra", directory=fresh)
    until("fra serves its pointer's deployment", lambda: agents.served().get("fra") == one)

    # Killed mid-fetch during a deploy: the deploy fails naming it, nothing moves.
    agents.start("fra", directory=fresh, env={"VEGA_DAG_TEST_KILL_AT": "ship:fetched"})
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    failed = vega("deploy", str(project), env=QUICK)
    assert failed.returncode == 1, failed.stdout
    assert "prefetch:fra: its agent went quiet during the prefetch" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    agents.start("fra", directory=fresh)
    until("fra serves its pointer's again", lambda: agents.served().get("fra") == one)
    assert agents.served() == {n: one for n in NAMES}

    two = _deployed(project)
    assert agents.served() == {n: two for n in NAMES}
    rows = vega_json("status", str(project))["regions"]
    assert {(r["name"], r["serving"], r["health"]) for r in rows} == {(n, two, "ok") for n in NAMES}


def test_a_corrupted_object_is_refused_and_named(
    tmp_path: Path, backends: Backends, agents: Agents
) -> None:
    import obstore

    from vega_dag.store.remote import RemoteCache

    project = agent_project(tmp_path / "proj", backends)
    agents.start_many(NAMES)
    first = deploy(project)
    assert first.returncode == 0, first.stderr
    one, before = (json.loads(first.stdout)[k] for k in ("deployment", "manifest"))

    # An object only v2 has, damaged in the bucket once it is there.
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    built = vega_json("build", str(project))
    from vega_dag.config import load_config
    from vega_dag.store.objects import ObjectStore
    from vega_dag.store.ship import deployment_layers, upload_deployment

    remote = RemoteCache(backends.store)
    store = ObjectStore(load_config(project).store_dir)
    upload_deployment(remote, store, built["manifest"])
    old = set(deployment_layers(store, before)[0])
    victim = next(d for d in deployment_layers(store, built["manifest"])[0] if d not in old)
    hexdigest = victim.removeprefix("blake3:")
    obstore.put(remote._store, f"cas/{hexdigest}", b"not what the digest names")

    failed = vega("deploy", str(project))
    assert failed.returncode == 1, failed.stdout
    assert f"cas/{hexdigest}" in failed.stderr and "damaged" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    assert agents.served() == {n: one for n in NAMES}
    for name in NAMES:
        assert not ObjectStore(agents.running[name].dir / "store").has(victim)
    history = vega_json("history", str(project))
    assert history[0]["status"] == "failed"

    # The listing shows the damaged object as present, so no upload would replace
    # it: the deployer, told which one failed, put its verified copy back.
    assert "re-uploaded 1 damaged object(s)" in failed.stderr, failed.stderr
    two = _deployed(project)
    assert agents.served() == {n: two for n in NAMES}
    assert obstore.get(remote._store, f"cas/{hexdigest}").bytes() == store.get(victim)


def test_two_racing_deploys_one_wins_the_other_fails_clearly(
    tmp_path: Path, backends: Backends, agents: Agents
) -> None:
    project = agent_project(tmp_path / "proj", backends)
    other = agent_project(tmp_path / "proj2", backends)
    (other / "lib" / "version.py").write_text('VERSION = "other"\n')
    agents.start_many(NAMES)
    _deployed(project)
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    for root in (project, other):  # built first: the race is the deploys'
        assert vega("build", str(root)).returncode == 0
    results: dict[str, object] = {}

    def run(label: str, root: Path) -> None:
        results[label] = vega("deploy", str(root), "--json", "--lock-timeout", "0")

    threads = [threading.Thread(target=run, args=(k, r)) for k, r in (("a", project), ("b", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(p.returncode for p in results.values())  # type: ignore[attr-defined]
    assert codes in ([0, 1], [0, 0]), [p.stderr for p in results.values()]  # type: ignore[attr-defined]
    winners = [json.loads(p.stdout)["deployment"] for p in results.values() if p.returncode == 0]  # type: ignore[attr-defined]
    served = set(agents.served().values())
    assert len(served) == 1 and served <= set(winners)
    for p in results.values():
        if p.returncode:  # type: ignore[attr-defined]
            said = json.loads(p.stdout)["error"]  # type: ignore[attr-defined]
            assert "held by another deploy" in said or "conflict" in said, said


def test_a_deployment_signed_by_an_untrusted_key_is_refused_everywhere(
    tmp_path: Path, backends: Backends, agents: Agents
) -> None:
    from tests.rollout.test_signing import keypair

    private, public, kid = keypair(tmp_path / "keys", "deploy")
    other, _, other_kid = keypair(tmp_path / "keys", "other")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / public.name).write_bytes(public.read_bytes())
    project = agent_project(tmp_path / "proj", backends)
    agents.start_many(NAMES, trust=trusted)
    one = _deployed(project, env={"VEGA_DAG_SIGNING_KEY": str(private)})
    assert agents.served() == {n: one for n in NAMES}

    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    refused = vega("deploy", str(project), env={"VEGA_DAG_SIGNING_KEY": str(other)})
    assert refused.returncode == 1
    assert f"signed by {other_kid}, which this region does not trust" in refused.stderr
    unsigned = vega("deploy", str(project))
    assert unsigned.returncode == 1
    assert "unsigned" in unsigned.stderr or "not signed" in unsigned.stderr, unsigned.stderr
    assert agents.served() == {n: one for n in NAMES}
    assert kid != other_kid


def test_a_silent_agent_is_down_by_the_deploys_policy(
    tmp_path: Path, backends: Backends, agents: Agents
) -> None:
    project = agent_project(tmp_path / "proj", backends)
    agents.start_many(NAMES)
    one = _deployed(project)
    agents.kill("sfo")
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    until(
        "sfo counts as down",
        lambda: "sfo" not in {r["name"] for r in _status(project, QUICK) if r["health"] == "ok"},
    )
    down = vega("deploy", str(project), env=QUICK)
    assert down.returncode == 1
    assert "region sfo: down (it serves" in down.stderr
    assert "its agent's last heartbeat was" in down.stderr
    assert "bring sfo back with `vega-dag region serve` on its host" in down.stderr

    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(
        text.replace(
            'waves = [["fra"], ["*"]]', 'waves = [["fra"], ["*"]]\non_region_down = "skip"'
        )
    )
    skipped = deploy(project, env=QUICK)
    assert skipped.returncode == 0, skipped.stderr
    two = json.loads(skipped.stdout)["deployment"]
    assert [s["name"] for s in json.loads(skipped.stdout)["skipped"]] == ["sfo"]
    assert agents.served() == {"fra": two, "iad": two}
    rows = {r["name"]: r for r in _status(project, QUICK)}
    assert rows["sfo"]["health"] == "down" and rows["sfo"]["deployment"] == one

    # Back, it serves its pointer's deployment; the next deploy moves only it.
    agents.start("sfo")
    until("sfo serves again", lambda: agents.served().get("sfo") == one)
    again = deploy(project, env=QUICK)
    assert again.returncode == 0, again.stderr
    three = json.loads(again.stdout)
    assert [r["name"] for r in three["regions"] if r["outcome"] == "promoted"] == ["sfo"]
    assert agents.served() == {"fra": two, "iad": two, "sfo": three["deployment"]}


def _status(project: Path, env: dict[str, str]) -> list[dict]:
    proc = vega("status", str(project), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["regions"]
