"""Traffic weights without a fleet: the split's decision, the pointer record, the config."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.regions.binomial import within
from vega_dag.config import config_digest, load_config
from vega_dag.errors import VegaError
from vega_dag.regions.split import Split, bucket, cookie_value, header_value
from vega_dag.rollout.pointers import Move, PointerStore, PointerStoreError

NEW, OLD = "dpl_new00001", "dpl_old00001"
SPLIT = Split(30, NEW, "m:new", OLD, "m:old", b"x-client", b"session")


def head(*lines: str) -> bytes:
    return ("GET /api HTTP/1.1\r\nhost: x\r\n" + "".join(f"{h}\r\n" for h in lines)).encode() + (
        b"\r\n"
    )


def test_a_sticky_header_decides_by_its_bucket() -> None:
    for client in (f"client-{i}" for i in range(50)):
        want = bucket(client.encode()) < 30
        assert all(SPLIT.to_primary(head(f"X-Client: {client}")) is want for _ in range(5))


def test_a_sticky_cookie_decides_too_and_the_header_comes_first() -> None:
    value = next(f"s{i}" for i in range(100) if bucket(f"s{i}".encode()) >= 30)
    assert not SPLIT.to_primary(head(f"cookie: theme=dark; session={value}"))
    first = next(f"c{i}" for i in range(100) if bucket(f"c{i}".encode()) < 30)
    assert SPLIT.to_primary(head(f"x-client: {first}", f"cookie: session={value}"))


def test_raising_the_weight_keeps_sticky_clients_on_the_new_side() -> None:
    clients = [f"user-{i}".encode() for i in range(200)]
    on_new = {w: {c for c in clients if bucket(c) < w} for w in (10, 50, 100)}
    assert on_new[10] <= on_new[50] <= on_new[100] == set(clients)


def test_a_request_naming_either_side_goes_there() -> None:
    assert SPLIT.to_primary(head(f"x-vega-deployment: {NEW}"))
    assert not SPLIT.to_primary(head(f"x-vega-deployment: {OLD}"))


def test_header_and_cookie_parsing() -> None:
    data = head('Cookie: a=1; b = "two" ', "X-Thing:  v ")
    assert header_value(data, b"x-thing") == b"v"
    assert cookie_value(data, b"b") == b"two"
    assert cookie_value(data, b"c") is None
    # The body is not the head.
    assert header_value(head() + b"x-thing: no", b"x-thing") is None


def test_the_message_round_trips() -> None:
    copy = Split.from_message(SPLIT.message(primary=False))
    assert (copy.weight, copy.deployment, copy.baseline, copy.header, copy.cookie) == (
        30,
        NEW,
        OLD,
        b"x-client",
        b"session",
    )


# -- the pointer record ----------------------------------------------------------

OLD_SCHEMA = """
CREATE TABLE deployments (id TEXT PRIMARY KEY, manifest TEXT NOT NULL, project TEXT NOT NULL,
    config TEXT NOT NULL, env TEXT NOT NULL, created_at REAL NOT NULL, actor TEXT NOT NULL,
    status TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');
CREATE TABLE pointers (region TEXT PRIMARY KEY, deployment TEXT, generation INTEGER NOT NULL,
    updated_at REAL NOT NULL);
CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, deployment TEXT NOT NULL,
    region TEXT NOT NULL, from_dpl TEXT, to_dpl TEXT, at REAL NOT NULL, reason TEXT NOT NULL,
    actor TEXT NOT NULL);
CREATE TRIGGER history_no_update BEFORE UPDATE ON history
    BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
INSERT INTO pointers VALUES ('fra', 'dpl_old00001', 3, 1.0);
INSERT INTO history (deployment, region, from_dpl, to_dpl, at, reason, actor)
    VALUES ('dpl_old00001', 'fra', NULL, 'dpl_old00001', 1.0, 'promote', 'me');
"""


def test_a_store_from_before_weights_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "pointers.sqlite"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    store = PointerStore(path)
    try:
        p = store.pointer("fra")
        assert (p.deployment, p.generation, p.weight, p.baseline, p.split) == (
            OLD,
            3,
            100,
            None,
            False,
        )
        assert [e.weight for e in store.history()] == [100]
        store.swap([Move("fra", 3, OLD, NEW, 10, OLD)], NEW, "promote", "me")
        p = store.pointer("fra")
        assert (p.deployment, p.generation, p.weight, p.baseline, p.split) == (
            NEW,
            4,
            10,
            OLD,
            True,
        )
        # Opening it again adds nothing twice.
        PointerStore(path).close()
    finally:
        store.close()


def test_weighted_moves_are_compare_and_swap_and_recorded(tmp_path: Path) -> None:
    store = PointerStore(tmp_path / "pointers.sqlite")
    try:
        store.swap([Move("fra", 0, None, OLD)], OLD, "promote", "me")
        store.swap([Move("fra", 1, OLD, NEW, 10, OLD)], NEW, "promote", "me")
        store.swap([Move("fra", 2, NEW, NEW, 50, OLD)], NEW, "promote", "me")
        with pytest.raises(PointerStoreError, match="moved underneath"):
            store.swap([Move("fra", 2, NEW, NEW, 100)], NEW, "promote", "me")
        store.swap([Move("fra", 3, NEW, OLD)], NEW, "rollback", "me")
        p = store.pointer("fra")
        assert (p.deployment, p.weight, p.baseline) == (OLD, 100, None)
        assert [(e.after, e.weight) for e in reversed(store.history(NEW))] == [
            (NEW, 10),
            (NEW, 50),
            (OLD, 100),
        ]
        # What a rollback reads: the region served OLD before NEW first reached it.
        assert store.touched_by(NEW) == {"fra": OLD}
        # A weight with nobody to share with is every request.
        store.swap([Move("iad", 0, None, NEW, 10, None)], NEW, "promote", "me")
        assert store.pointer("iad").weight == 100
    finally:
        store.close()


@pytest.mark.parametrize("weight", [-1, 101, 12.5])
def test_a_weight_that_is_no_percentage_is_refused(tmp_path: Path, weight: object) -> None:
    store = PointerStore(tmp_path / "pointers.sqlite")
    try:
        with pytest.raises(PointerStoreError, match="region fra: weight"):
            store.swap([Move("fra", 0, None, NEW, weight, OLD)], NEW, "promote", "me")  # type: ignore[arg-type]
        assert store.pointer("fra").generation == 0
    finally:
        store.close()


# -- configuration ---------------------------------------------------------------


def write(root: Path, rollout: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f"[tool.vega]\n\n[tool.vega.rollout]\n{rollout}\n")
    return root


@pytest.mark.parametrize(
    ("weights", "why"),
    [
        ("[]", "is empty"),
        ("[0, 100]", "percentage from 1 to 100"),
        ("[50, 10, 100]", "must rise"),
        ("[10, 50]", "last step must be 100"),
    ],
)
def test_bad_weights_are_named(tmp_path: Path, weights: str, why: str) -> None:
    with pytest.raises(VegaError, match=rf"pyproject.toml.*\[tool.vega.rollout\] weights.*{why}"):
        load_config(write(tmp_path, f"weights = {weights}"))


def test_weights_change_no_build(tmp_path: Path) -> None:
    plain = load_config(write(tmp_path / "a", ""))
    weighted = load_config(write(tmp_path / "b", 'weights = [10, 100]\nsticky_header = "x-client"'))
    assert weighted.vega.rollout.weights == [10, 100]
    assert plain.vega.rollout.weights == [100]
    # How a rollout moves is not what the build makes: the same digest either way.
    assert config_digest(plain) == config_digest(weighted)


def test_random_requests_follow_the_weight_within_a_binomial_bound() -> None:
    n = 2000
    hits = sum(SPLIT.to_primary(head()) for _ in range(n))
    assert within(hits, n, 0.30), hits
    # The bound itself: the expected share passes, 37.5 % instead of 30 does not.
    assert within(600, 2000, 0.30)
    assert not within(750, 2000, 0.30)
