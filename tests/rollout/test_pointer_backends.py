"""One suite, both pointer stores: SQLite (the default) and NATS JetStream (a real server)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from vega_dag.rollout.pointers import (
    LockHeldError,
    Move,
    PointerConflictError,
    PointerStoreError,
    open_pointers,
)


@pytest.fixture
def store(tmp_path, pointer_url):
    s = open_pointers(tmp_path / "p.sqlite", pointer_url)
    yield s
    s.close()


def test_compare_and_swap_refuses_a_stale_write_and_leaves_every_pointer(store):
    a = store.create_deployment("blake3:a", "/p", {"k": 1}, {"K": "v"}, "me")
    b = store.create_deployment("blake3:b", "/p", {}, {}, "me")
    store.swap([Move("fra", 0, None, a.id), Move("iad", 0, None, a.id)], a.id, "promote", "me")
    fra, iad = store.pointer("fra"), store.pointer("iad")
    assert (fra.deployment, iad.deployment) == (a.id, a.id)
    assert fra.generation > 0 and iad.generation > 0
    store.swap([Move("fra", fra.generation, a.id, b.id)], b.id, "promote", "me")
    fra2 = store.pointer("fra")
    assert fra2.deployment == b.id and fra2.generation > fra.generation
    with pytest.raises(PointerConflictError, match="region iad"):
        # iad is not at this generation: fra's move is not kept either.
        store.swap(
            [Move("fra", fra2.generation, b.id, a.id), Move("iad", 10**6, a.id, b.id)],
            b.id,
            "x",
            "me",
        )
    assert store.pointer("fra").deployment == b.id
    assert store.pointer("iad").deployment == a.id
    # A first pointer written twice: the second finds one there.
    with pytest.raises(PointerConflictError, match="region fra"):
        store.swap([Move("fra", 0, None, b.id)], b.id, "promote", "me")
    assert store.touched_by(b.id) == {"fra": a.id}
    assert store.touched_by(a.id) == {"fra": None, "iad": None}
    assert store.require(a.id).env == {"K": "v"} and store.require(a.id).config == {"k": 1}
    assert {r: p.deployment for r, p in store.pointers().items()} == {"fra": b.id, "iad": a.id}
    with pytest.raises(LookupError, match="unknown deployment 'dpl_x'"):
        store.require("dpl_x")


def test_deployments_newest_first_and_status(store):
    ids = [store.create_deployment(f"blake3:{i}", "/p", {}, {}, "me").id for i in range(3)]
    assert [d.id for d in store.deployments()] == ids[::-1]
    assert [d.id for d in store.deployments(2)] == ids[:0:-1]
    store.set_status(ids[0], "failed", "gate 0 failed")
    got = store.deployment(ids[0])
    assert got is not None and (got.status, got.detail) == ("failed", "gate 0 failed")
    assert store.deployment(ids[1]).status == "rolling"


def test_history_is_in_order_newest_first(store):
    a = store.create_deployment("blake3:a", "/p", {}, {}, "alice")
    b = store.create_deployment("blake3:b", "/p", {}, {}, "bob")
    store.swap([Move("fra", 0, None, a.id)], a.id, "promote", "alice")
    g = store.pointer("fra").generation
    store.swap([Move("iad", 0, None, a.id)], a.id, "promote", "alice")
    store.swap([Move("fra", g, a.id, b.id)], b.id, "promote", "bob")
    g = store.pointer("fra").generation
    store.swap([Move("fra", g, b.id, a.id)], b.id, "rollback", "carol")
    every = store.history()
    assert [(e.deployment, e.region, e.before, e.after, e.reason, e.actor) for e in every] == [
        (b.id, "fra", b.id, a.id, "rollback", "carol"),
        (b.id, "fra", a.id, b.id, "promote", "bob"),
        (a.id, "iad", None, a.id, "promote", "alice"),
        (a.id, "fra", None, a.id, "promote", "alice"),
    ]
    assert [e.seq for e in every] == sorted((e.seq for e in every), reverse=True)
    assert [e.at for e in every] == sorted((e.at for e in every), reverse=True)
    assert [e.reason for e in store.history(b.id)] == ["rollback", "promote"]
    assert [e.region for e in store.history(limit=2)] == ["fra", "fra"]
    assert store.history("dpl_none") == []
    # One swap of several regions: its entries in the order of its moves.
    c = store.create_deployment("blake3:c", "/p", {}, {}, "dave")
    ptrs = store.pointers()
    regions = ["sfo", "fra", "lhr", "iad"]
    moves = [
        Move(
            r,
            ptrs[r].generation if r in ptrs else 0,
            ptrs[r].deployment if r in ptrs else None,
            c.id,
        )
        for r in regions
    ]
    store.swap(moves, c.id, "promote", "dave")
    assert [e.region for e in store.history(c.id)] == regions[::-1]


def test_deploy_lock_is_exclusive_and_taken_from_a_dead_holder(tmp_path, pointer_url, store):
    other = open_pointers(tmp_path / "p.sqlite", pointer_url)
    try:
        with (
            store.deploy_lock("deploy by alice"),
            pytest.raises(LockHeldError, match="deploy by alice"),
            other.deploy_lock("deploy by bob", timeout=0.2),
        ):
            pass
        assert store.lock_holder() is None
        with other.deploy_lock("deploy by bob", timeout=0.2) as took_over:
            assert not took_over
            holder = store.lock_holder()
            assert holder is not None and holder[0] == "deploy by bob" and holder[3]
    finally:
        other.close()
    # A holder killed with -9 leaves its lock; the next deploy on its host takes it over.
    code = (
        "import os, signal; from pathlib import Path;"
        "from vega_dag.rollout.pointers import open_pointers;"
        f"s = open_pointers(Path({str(tmp_path / 'p.sqlite')!r}), {pointer_url!r});"
        "cm = s.deploy_lock('deploy by dead'); cm.__enter__();"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    holder = store.lock_holder()
    assert holder is not None and holder[0] == "deploy by dead" and not holder[3]
    with store.deploy_lock("deploy by bob", timeout=0.5) as took_over:
        assert took_over


def test_a_watcher_sees_a_write(store):
    a = store.create_deployment("blake3:a", "/p", {}, {}, "me")
    assert store.wait_moved("fra", 0, timeout=0.1) is None
    seen: list = []
    started = threading.Event()

    def watch() -> None:
        started.set()
        seen.append(store.wait_moved("fra", 0, timeout=20))

    watcher = threading.Thread(target=watch)
    watcher.start()
    started.wait()
    time.sleep(0.2)
    store.swap([Move("fra", 0, None, a.id)], a.id, "promote", "me")
    watcher.join(25)
    assert seen and seen[0] is not None and seen[0].deployment == a.id


# -- JetStream only ----------------------------------------------------------
def test_a_lock_whose_holder_stops_refreshing_expires(nats_url):
    from vega_dag.rollout.jetstream import JetStreamPointers

    first = JetStreamPointers(nats_url, lock_ttl=1)
    second = JetStreamPointers(nats_url, lock_ttl=1)
    try:
        # A holder on another host that vanished: its lock cannot be judged by pid.
        record = b'{"acquired_at": 1.0, "holder": "deploy by gone", "host": "elsewhere", "pid": 1}'
        first._run(first._put_lock(record, 0))
        with (
            pytest.raises(LockHeldError, match="deploy by gone"),
            second.deploy_lock("deploy by bob", timeout=0.1),
        ):
            pass
        # Its TTL runs out (nothing refreshes it); a live holder's never does.
        with second.deploy_lock("deploy by bob", timeout=10):
            time.sleep(1.5)
            with (
                pytest.raises(LockHeldError, match="deploy by bob"),
                first.deploy_lock("deploy by carol", timeout=0.1),
            ):
                pass
    finally:
        first.close()
        second.close()


def test_a_server_that_does_not_answer_is_named(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        PointerStoreError, match=rf"pointers nats://127.0.0.1:{port}: cannot connect"
    ):
        open_pointers(tmp_path / "p.sqlite", f"nats://alice:secret@127.0.0.1:{port}")


def test_a_move_whose_history_entry_was_lost_is_still_rolled_back(nats_url):
    from vega_dag.rollout.jetstream import JetStreamPointers, pointer_record
    from vega_dag.rollout.pointers import RegionPointer

    store = JetStreamPointers(nats_url)
    try:
        a = store.create_deployment("blake3:a", "/p", {}, {}, "me")
        b = store.create_deployment("blake3:b", "/p", {}, {}, "me")
        store.swap([Move("fra", 0, None, a.id), Move("iad", 0, None, a.id)], a.id, "promote", "me")
        store.swap(
            [Move("fra", store.pointer("fra").generation, a.id, b.id)], b.id, "promote", "me"
        )
        # iad's pointer written, the connection lost before its history entry.
        record = pointer_record(
            RegionPointer("iad", b.id, 0, time.time()), moved_from=a.id, by=b.id, reason="promote"
        )
        store._run(store.b.pointers.update("iad", record, last=store.pointer("iad").generation))
        assert store.touched_by(b.id) == {"fra": a.id, "iad": a.id}
    finally:
        store.close()
