"""Faults across hosts with region agents (issue 12 item 4), each during a deploy and during a
rollback: the NATS stream leaders killed, an agent killed with -9 mid-fetch, a corrupted S3
object, two deploys racing from two machines, a deployment signed by an untrusted key.

The agents run on r1–r3 (each in its own namespace, reading its pointer through
its own leaf node), the deployer on ``dev``, the second machine is ``ci``. One
fleet for the module (trusting one key, which every deploy from ``dev`` signs
with); each test starts from every region serving one deployment and leaves
the fleet whole. After each fault, every region is asked over HTTP from its own
host what it serves, and ``status``/``history`` from ``dev`` must say the same.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.multihost.agents import HOSTS, Fleet, agent_fleet, running, set_version
from tests.multihost.cluster import Cluster
from tests.multihost.helpers import (
    RESUME_WITHIN,
    VEGA_DAG,
    deploy_past_the_canary,
    host_env,
    kill_stream_leader,
    python_on,
    until_it_goes_through,
    vega_json_on,
)

#: A test-only fault point of the agent (store.ship): killed with the objects in memory.
KILL_MID_FETCH = {"VEGA_DAG_TEST_KILL_AT": "ship:fetched"}
_versions = itertools.count(1)


@pytest.fixture(scope="module")
def shared(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("agent-faults")
    keys = base / "keys"
    made = vega_json_on(cluster, "dev", "keys", "generate", "--name", "dev", "--dir", str(keys))
    assert isinstance(made, dict)
    trusted = base / "trusted"
    trusted.mkdir()
    shutil.copy(made["public"], trusted)
    # Gates are not what is tested here: a loaded 2-core runner's first requests are slow.
    fleet = agent_fleet(cluster, base, trust=trusted, p99_ms=60000)
    fleet.env["VEGA_DAG_SIGNING_KEY"] = made["private"]
    with running(fleet):
        yield fleet


@pytest.fixture
def fleet(healed: Cluster, shared: Fleet) -> Fleet:
    """The module's fleet, every agent running and every region on one deployment."""
    for region in HOSTS:
        proc = shared.procs.get(region)
        if proc is None or proc.poll() is not None:
            shared.start(region)
    for region in HOSTS:
        shared.wait_up(region)
    rows = shared.status_rows()
    if (
        {r["health"] for r in rows.values()} != {"ok"}
        or len({r["deployment"] for r in rows.values()}) != 1
        or None in {r["deployment"] for r in rows.values()}
    ):
        _deploy(shared)
    return shared


def _deploy(fleet: Fleet) -> str:
    set_version(fleet.root, f"v{next(_versions)}")
    return fleet.vega("deploy", str(fleet.root))["deployment"]


def _history(fleet: Fleet) -> dict[str, dict]:
    entries = fleet.vega("history", str(fleet.root))
    assert isinstance(entries, list)
    return {d["deployment"]: d for d in entries}


def _one(fleet: Fleet) -> str:
    """The deployment every region serves (asserting there is one, and status agrees)."""
    served = set(fleet.truth().values())
    assert len(served) == 1 and None not in served, served
    return served.pop()


def _refused(done: subprocess.CompletedProcess, *needles: str) -> str:
    said = done.stderr + done.stdout
    assert done.returncode != 0, said
    assert "Traceback" not in said, said
    for needle in needles:
        assert needle in said, (needle, said)
    return said


def _other_machine(fleet: Fleet, name: str, version: str) -> Path:
    """A copy of the project (its source and backends) on another machine, at ``version``."""
    root = fleet.base / name
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(fleet.root, root, ignore=shutil.ignore_patterns(".vega", "__pycache__"))
    set_version(root, version)
    return root


# -- 1. the NATS stream leaders killed ---------------------------------------------------
def test_the_stream_leaders_killed_during_a_deploy_and_a_rollback(fleet: Fleet):
    cluster = fleet.cluster
    one = _one(fleet)
    pointers_stream = f"KV_{fleet.namespace}-pointers"
    history_stream = f"{fleet.namespace}-history"
    assert cluster.stream_replicas(pointers_stream) == 3
    assert cluster.stream_replicas(history_stream) == 3
    # The agents' status bucket too: with one copy, its server's death stopped every command.
    assert cluster.stream_replicas(f"KV_{fleet.namespace}-agents") == 3

    # -- during a deploy: the pointer bucket's leader dies once the canary moved.
    known = set(_history(fleet))
    set_version(fleet.root, f"v{next(_versions)}")
    deploy = deploy_past_the_canary(
        cluster, "dev", str(fleet.root), VEGA_DAG_AGENT_DOWN_S="2", **fleet.env
    )
    killed = kill_stream_leader(cluster, pointers_stream)
    # The agents keep serving through the election (each asked on its own host).
    assert None not in fleet.served().values()
    _, err = deploy.communicate(timeout=180)
    assert "Traceback" not in err, err
    if deploy.returncode != 0:
        assert "pointers" in err or "region" in err, err
        before = _truth_once_it_answers(fleet)  # each region on what its pointer names
        _, outcome = until_it_goes_through(
            cluster, "dev", ["deploy", str(fleet.root)], VEGA_DAG_AGENT_DOWN_S="2", **fleet.env
        )
        two = outcome["deployment"]
    else:
        before = {name: one for name in HOSTS}
        two = fleet.vega("history", str(fleet.root))[0]["deployment"]
    assert two != one
    assert set(_truth_once_it_answers(fleet).values()) == {two}
    # A first attempt that failed is recorded as such, never as live.
    for d in _history(fleet).values():
        if d["deployment"] not in known | {two}:
            assert d["status"] in ("failed", "rolled-back", "interrupted"), d
    cluster.restart(killed)  # two of three must stand for the next election
    for host in HOSTS.values():
        cluster.wait_leaf_connected(host)

    # -- during a rollback: the history stream's leader dies just before it.
    kill_stream_leader(cluster, history_stream)
    assert None not in fleet.served().values()
    failures, rolled = until_it_goes_through(
        cluster, "dev", ["rollback", "--path", str(fleet.root)], VEGA_DAG_AGENT_DOWN_S="2"
    )
    # Each failed try is clear and moved nothing: the pointer store or the history
    # not answering, the lock, or agents judged down while their status keys' stream
    # elected a leader ("… are not running … (nothing was changed)").
    clear = ("pointers", "lock", "history", "nothing was changed")
    assert all(any(word in f for word in clear) for f in failures), failures
    assert rolled["deployment"] == two
    assert fleet.truth() == before, (failures, rolled)
    assert _history(fleet)[two]["status"] == "rolled-back"


def _truth_once_it_answers(fleet: Fleet) -> dict[str, str]:
    """``Fleet.truth`` once ``status`` answers again (an election may still be going on)."""
    import time

    deadline = time.monotonic() + RESUME_WITHIN
    while True:
        try:
            return fleet.truth()
        except AssertionError as err:
            assert "Traceback" not in str(err), err
            assert time.monotonic() < deadline, f"status never told the truth again: {err}"
            time.sleep(1.0)


# -- 2. an agent killed with -9 mid-fetch --------------------------------------------------
def test_an_agent_killed_mid_fetch_during_a_deploy_and_a_rollback(fleet: Fleet):
    one = _one(fleet)

    # -- during a deploy: fra dies with the new deployment's objects in memory.
    fleet.start("fra", env=KILL_MID_FETCH)
    set_version(fleet.root, f"v{next(_versions)}")
    failed = fleet.vega_raw("deploy", str(fleet.root))
    _refused(failed, "prefetch:fra", "its agent")
    assert fleet.procs["fra"].wait(30) == -9  # the fault point was reached
    # No pointer moved: the others never left the deployment they served.
    assert {r: fleet.served_from(h, r) for r, h in HOSTS.items() if r != "fra"} == {
        "iad": one,
        "sfo": one,
    }
    fleet.start("fra")  # restarted: nothing half-fetched entered its store
    fleet.wait_serving("fra", one)
    assert set(fleet.truth().values()) == {one}
    attempts = [d for d in _history(fleet).values() if d["deployment"] != one]
    assert attempts and attempts[0]["status"] == "failed", attempts
    two = fleet.vega("deploy", str(fleet.root))["deployment"]
    assert set(fleet.truth().values()) == {two}

    # -- during a rollback: a new fra host (an empty store) has only what it serves,
    # and dies fetching the deployment the rollback goes back to.
    fresh = fleet.base / f"r1-fresh-{next(_versions)}"
    fleet.start("fra", directory=fresh)
    fleet.wait_serving("fra", two)
    fleet.start("fra", env=KILL_MID_FETCH)
    refused = fleet.vega_raw("rollback", "--path", str(fleet.root))
    _refused(refused, "fra", "nothing was changed")
    assert fleet.procs["fra"].wait(30) == -9
    assert {r: fleet.served_from(h, r) for r, h in HOSTS.items() if r != "fra"} == {
        "iad": two,
        "sfo": two,
    }
    fleet.start("fra")
    fleet.wait_serving("fra", two)
    assert set(fleet.truth().values()) == {two}
    rolled = fleet.vega("rollback", "--path", str(fleet.root))
    assert rolled["deployment"] == two
    assert set(fleet.truth().values()) == {one}
    assert _history(fleet)[two]["status"] == "rolled-back"


# -- 3. a corrupted S3 object --------------------------------------------------------------
_ONLY_IN = """
import json, sys
from pathlib import Path
from vega_dag.config import load_config
from vega_dag.store.objects import ObjectStore
from vega_dag.store.remote import RemoteCache
from vega_dag.store.ship import deployment_layers, upload_deployment
root, url, new, old = sys.argv[1:5]
store = ObjectStore(load_config(Path(root)).store_dir)
upload_deployment(RemoteCache(url), store, new)
have = set(deployment_layers(store, old)[0])
print(json.dumps([d for d in deployment_layers(store, new)[0] if d not in have]))
"""
# A raw PUT over the object, bypassing write-once (what a bad disk or a bad actor does).
_DAMAGE = """
import json, sys, obstore
from vega_dag.store.remote import RemoteCache
obstore.put(RemoteCache(sys.argv[1])._store, "cas/" + sys.argv[2], b"not what the digest names")
print(json.dumps(True))
"""


def _damage_one_only_in(fleet: Fleet, new: str, old: str) -> str:
    """Damage, in SeaweedFS, an object deployment manifest ``new`` has and ``old`` has not."""
    only = python_on(fleet.cluster, "dev", _ONLY_IN, str(fleet.root), fleet.store, new, old)
    assert only, "the deployments share every object"
    victim = only[0]
    python_on(fleet.cluster, "hub", _DAMAGE, fleet.store, victim.removeprefix("blake3:"))
    return victim


def _verified_where_held(fleet: Fleet, digest: str) -> None:
    """Each agent's store holds ``digest`` intact or not at all."""
    from vega_dag import _core
    from vega_dag.store.objects import ObjectStore

    for directory in fleet.dirs.values():
        store = ObjectStore(directory / "store")
        if store.has(digest):
            assert _core.hash_bytes(store.get(digest)) == digest


def test_a_corrupted_object_during_a_deploy_and_a_rollback(fleet: Fleet):
    # Deployed from dev, so that dev's store holds what the rollback goes back to.
    one = _deploy(fleet)
    assert set(fleet.truth().values()) == {one}
    old = _history(fleet)[one]["manifest"]

    # -- during a deploy: an object only the new deployment has, damaged once uploaded.
    set_version(fleet.root, f"v{next(_versions)}")
    new = fleet.vega("build", str(fleet.root))["manifest"]
    victim = _damage_one_only_in(fleet, new, old)
    hexdigest = victim.removeprefix("blake3:")
    failed = fleet.vega_raw("deploy", str(fleet.root))
    _refused(failed, f"cas/{hexdigest}", "damaged", "re-uploaded 1 damaged object(s)")
    assert set(fleet.truth().values()) == {one}
    # An agent that asked after the repair holds the good copy; none holds the damaged one.
    _verified_where_held(fleet, victim)
    assert [d["status"] for d in _history(fleet).values() if d["manifest"] == new] == ["failed"]
    # Repaired from the deployer's verified store: the next deploy goes through.
    two = fleet.vega("deploy", str(fleet.root))["deployment"]
    assert set(fleet.truth().values()) == {two}

    # -- during a rollback: a new sfo host must fetch what it goes back to, and one
    # object of it is damaged.
    fleet.start("sfo", directory=fleet.base / f"r3-fresh-{next(_versions)}")
    fleet.wait_serving("sfo", two)
    victim = _damage_one_only_in(fleet, old, new)
    hexdigest = victim.removeprefix("blake3:")
    refused = fleet.vega_raw("rollback", "--path", str(fleet.root))
    _refused(refused, "sfo", f"cas/{hexdigest}", "damaged", "nothing was changed")
    assert set(fleet.truth().values()) == {two}
    _verified_where_held(fleet, victim)
    rolled = fleet.vega("rollback", "--path", str(fleet.root))
    assert rolled["deployment"] == two
    assert set(fleet.truth().values()) == {one}
    assert _history(fleet)[two]["status"] == "rolled-back"


# -- 4. two deploys racing from two machines -----------------------------------------------
def _race(fleet: Fleet, commands: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
    """Each host's command started at once; host → its result."""
    env = host_env(fleet.cluster, VEGA_DAG_AGENT_DOWN_S="2", **fleet.env)
    procs = {
        host: fleet.cluster.net.popen(
            fleet.cluster.net.hosts[host],
            [VEGA_DAG, *args, "--json", "--lock-timeout", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for host, args in commands.items()
    }
    out = {}
    for host, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=240)
        out[host] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return out


def _lost_clearly(done: subprocess.CompletedProcess) -> None:
    said = done.stderr + done.stdout
    assert "Traceback" not in said, said
    assert "held by another deploy" in said or "conflict" in said, said


def test_two_deploys_racing_from_two_machines_and_a_deploy_racing_a_rollback(fleet: Fleet):
    _one(fleet)
    set_version(fleet.root, f"v{next(_versions)}")
    ci = _other_machine(fleet, "ci-proj", f"ci{next(_versions)}")
    fleet.vega("build", str(fleet.root))
    fleet.vega("build", str(ci), host="ci")  # built first: the race is the deploys'
    known = set(_history(fleet))

    results = _race(fleet, {"dev": ["deploy", str(fleet.root)], "ci": ["deploy", str(ci)]})
    codes = sorted(p.returncode for p in results.values())
    assert codes in ([0, 1], [0, 0]), {h: p.stderr for h, p in results.items()}
    won = {h: json.loads(p.stdout)["deployment"] for h, p in results.items() if p.returncode == 0}
    for done in results.values():
        if done.returncode:
            _lost_clearly(done)
    # One deployment everywhere: the winner's (both, one after the other: the later one).
    latest = fleet.vega("history", str(fleet.root))[0]
    assert latest["deployment"] in won.values() and latest["status"] == "live", latest
    assert set(fleet.truth().values()) == {latest["deployment"]}
    for d in _history(fleet).values():
        if d["deployment"] not in known | set(won.values()):
            assert d["status"] != "live", d  # a loser that got as far as a record

    # -- a rollback on dev racing a deploy on ci.
    before = latest["deployment"]
    set_version(ci, f"ci{next(_versions)}")
    fleet.vega("build", str(ci), host="ci")
    results = _race(
        fleet, {"dev": ["rollback", "--path", str(fleet.root)], "ci": ["deploy", str(ci)]}
    )
    codes = sorted(p.returncode for p in results.values())
    assert codes in ([0, 1], [0, 0]), {h: p.stderr for h, p in results.items()}
    for done in results.values():
        if done.returncode:
            _lost_clearly(done)
    history = _history(fleet)
    live = [d for d in history.values() if d["status"] == "live"]
    serving = set(fleet.truth().values())
    assert len(serving) == 1, serving
    assert serving.pop() in {d["deployment"] for d in live}, (live, history)
    if results["dev"].returncode == 0 and results["ci"].returncode != 0:
        assert history[before]["status"] == "rolled-back", history


# -- 5. a deployment signed by an untrusted key --------------------------------------------
def test_a_deployment_signed_by_an_untrusted_key_is_refused_everywhere(fleet: Fleet):
    one = _one(fleet)
    rogue = vega_json_on(
        fleet.cluster,
        "ci",
        "keys",
        "generate",
        "--name",
        "rogue",
        "--dir",
        str(fleet.base / "ci-keys"),
    )
    assert isinstance(rogue, dict)
    ci = _other_machine(fleet, "ci-rogue", f"rogue{next(_versions)}")
    refused = fleet.vega_raw("deploy", str(ci), host="ci", VEGA_DAG_SIGNING_KEY=rogue["private"])
    said = _refused(refused, f"signed by {rogue['key_id']}, which this region does not trust")
    assert "region fra" in said or "prefetch:fra" in said, said
    assert set(fleet.truth().values()) == {one}
    # Every agent refused it, and says why in its status.
    attempt = next(
        d
        for d in _history(fleet).values()
        if d["status"] != "live" and d["deployment"] != one and d["signed_by"] == rogue["key_id"]
    )
    rows = _until_refused_everywhere(fleet, attempt["deployment"])
    for row in rows.values():
        assert "does not trust" in row["refusals"][attempt["deployment"]], row
    assert attempt["status"] == "failed", attempt

    # -- and a rollback to it: write access to the pointers alone (ci moves fra's
    # pointer straight to the refused deployment, as a rollback's write would) makes
    # no region run it; rolling that write back puts the pointer back.
    rogue_id = attempt["deployment"]
    python_on(fleet.cluster, "ci", _POINT_AT, fleet.pointers, "fra", rogue_id)
    until_status = _until_row(fleet, "fra", lambda r: r["deployment"] == rogue_id)
    assert until_status["serving"] == one, until_status
    assert fleet.served_from("r1", "fra") == one
    assert {fleet.served_from(h, r) for r, h in HOSTS.items()} == {one}
    rolled = fleet.vega("rollback", rogue_id, "--path", str(fleet.root))
    assert rolled["deployment"] == rogue_id
    assert set(fleet.truth().values()) == {one}
    events = [e for e in _history(fleet)[rogue_id]["events"] if e["region"] == "fra"]
    assert [e["to"] for e in events][-2:] == [rogue_id, one], events


# What someone with write access to the pointer bucket (and nothing else) can do.
_POINT_AT = """
import json, sys
from pathlib import Path
from vega_dag.rollout.pointers import Move, open_pointers
url, region, deployment = sys.argv[1:4]
pointers = open_pointers(Path("/nonexistent"), url)
p = pointers.pointers()[region]
pointers.swap([Move(region, p.generation, p.deployment, deployment)], deployment, "by hand", "ci")
pointers.close()
print(json.dumps(True))
"""


def _until_row(fleet: Fleet, region: str, check) -> dict:
    import time

    deadline = time.monotonic() + 30
    while True:
        row = fleet.status_rows()[region]
        if check(row):
            return row
        assert time.monotonic() < deadline, row
        time.sleep(0.3)


def _until_refused_everywhere(fleet: Fleet, deployment: str) -> dict[str, dict]:
    import time

    deadline = time.monotonic() + 30
    while True:
        rows = fleet.status_rows()
        if all(deployment in (r.get("refusals") or {}) for r in rows.values()):
            return rows
        assert time.monotonic() < deadline, rows
        time.sleep(0.3)
