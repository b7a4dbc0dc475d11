"""Traffic weights through a real region: the share, sticky clients, rollback to 0, the record."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.regions.binomial import within
from tests.rollout.helpers import stop_fleet, vega, vega_json, write_project
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet, request
from vega_dag.regions.split import bucket
from vega_dag.rollout.pointers import Move, PointerStore

WEIGHT = 30
#: Requests of the share test: enough that a skew of five points fails the bound.
REQUESTS = 600
CONNECTIONS = 6


@pytest.fixture
def project(tmp_path: Path):
    root = write_project(tmp_path / "proj", regions=1)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "regions = 1\n", f'regions = 1\nweights = [{WEIGHT}, 100]\nsticky_header = "x-client"\n'
        )
    )
    yield root
    stop_fleet(root)


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)


def answered_by(conn: http.client.HTTPConnection, headers: dict[str, str] | None = None) -> str:
    conn.request("GET", "/api", headers=headers or {})
    response = conn.getresponse()
    body = json.loads(response.read())
    deployment = response.getheader("x-vega-deployment")
    assert response.status == 200 and deployment is not None
    return f"{deployment}:{body['version']}"


def expected(client: str, new: str, old: str) -> str:
    """The side a sticky client is on at WEIGHT."""
    return f"{new}:v2" if bucket(client.encode()) < WEIGHT else f"{old}:v1"


def split_heads(url: str, client: str) -> list[str]:
    """Two requests on one connection, each head sent in two segments."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    answers = []
    try:
        for _ in range(2):
            sock.sendall(b"GET /api HTTP/1.1\r\nhost: x\r\nx-client: " + client.encode())
            time.sleep(0.05)
            sock.sendall(b"\r\n\r\n")
            # One response at a time: nothing is read past its end.
            response = http.client.HTTPResponse(sock)
            response.begin()
            body = json.loads(response.read())
            answers.append(f"{response.getheader('x-vega-deployment')}:{body['version']}")
    finally:
        sock.close()
    return answers


def served(url: str) -> dict[str, float]:
    """Requests counted in the region's metrics, by deployment."""
    _, _, body, _ = request(url + "/__vega/metrics", timeout=5.0)
    counts: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("vega_requests_total{"):
            deployment = re.search(r'deployment="([^"]*)"', line)
            assert deployment is not None
            counts[deployment[1]] = counts.get(deployment[1], 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def test_a_weight_splits_requests_sticky_clients_stay_and_rollback_restores_zero(
    project: Path,
) -> None:
    old = vega_json("deploy", str(project))["deployment"]
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    out = vega_json("deploy", str(project))
    new = out["deployment"]
    # The wave went in two gated steps, the first at the configured weight.
    assert len(out["gates"]) == 2 and all(g["passed"] for g in out["gates"])
    history = {d["deployment"]: d for d in vega_json("history", str(project))}
    assert [(e["to"], e["weight"]) for e in history[new]["events"]] == [(new, WEIGHT), (new, 100)]

    # Back to the weighted step, as a wave between its gates is: NEW 30 %, OLD the rest.
    fleet = LocalFleet(load_config(project))
    url = next(r.url for r in fleet.regions() if r.name == "fra")
    store = PointerStore(fleet.db_path)
    try:
        p = store.pointer("fra")
        store.swap([Move("fra", p.generation, new, new, WEIGHT, old)], new, "promote", "test")
    finally:
        store.close()
    status, _, body, _ = request(f"{url}/__vega/wait?deployment={new}&timeout=10", timeout=15.0)
    assert status == 200, body
    rows = vega_json("status", str(project))["regions"]
    assert (rows[0]["weight"], rows[0]["baseline"]) == (WEIGHT, old)

    before = served(url)
    conns = [connect(url) for _ in range(CONNECTIONS)]
    try:
        seen = [answered_by(conns[i % CONNECTIONS]) for i in range(REQUESTS)]
        sockets = [c.sock for c in conns]
        # Sticky clients, interleaved on the same kept-alive connections.
        clients = [f"client-{i}" for i in range(24)]
        sticky: dict[str, set[str]] = {c: set() for c in clients}
        for i in range(5 * len(clients)):
            client = clients[i % len(clients)]
            sticky[client].add(answered_by(conns[i % CONNECTIONS], {"x-client": client}))
        # A head in two segments: the front (first request) and the worker (the next)
        # wait for the sticky header before deciding.
        assert split_heads(url, clients[0]) == [expected(clients[0], new, old)] * 2
        # Asked for by name: a probe of either side.
        assert answered_by(conns[0], {"x-vega-deployment": old}) == f"{old}:v1"
        assert answered_by(conns[0], {"x-vega-deployment": new}) == f"{new}:v2"
        # The split moved requests, never connections: each client kept its own.
        assert [c.sock for c in conns] == sockets
    finally:
        for conn in conns:
            conn.close()
    assert set(seen) == {f"{new}:v2", f"{old}:v1"}
    hits = seen.count(f"{new}:v2")
    assert within(hits, REQUESTS, WEIGHT / 100), f"{hits} of {REQUESTS} on the new deployment"
    for client, sides in sticky.items():
        assert sides == {expected(client, new, old)}, client
    # Each side counted its own requests, under its own deployment.
    after = served(url)
    sticky_new = sum(bucket(c.encode()) < WEIGHT for c in clients) * 5
    on_new = hits + sticky_new + 1 + 2 * (bucket(clients[0].encode()) < WEIGHT)
    assert after[new] - before.get(new, 0) == on_new
    assert after[old] - before.get(old, 0) == 5 * len(clients) + REQUESTS + 2 + 2 - on_new

    # Rollback: the new deployment's share is 0 at once, on the same kept-alive connections.
    conn = connect(url)
    try:
        assert answered_by(conn)  # a connection open across the rollback
        rolled = vega_json("rollback", "--path", str(project))
        assert [r["to"] for r in rolled["regions"]] == [old]
        assert {answered_by(conn) for _ in range(100)} == {f"{old}:v1"}
    finally:
        conn.close()
    rows = vega_json("status", str(project))["regions"]
    assert (rows[0]["deployment"], rows[0]["weight"], rows[0]["baseline"]) == (old, 100, None)
    history = {d["deployment"]: d for d in vega_json("history", str(project))}
    last = history[new]["events"][-1]
    assert (last["reason"], last["from"], last["to"], last["weight"]) == ("rollback", new, old, 100)

    # A gate failing at the weighted step puts every request back on the old deployment.
    (project / "api" / "index.py").write_text(
        "def handler(request):\n    return {'version': 'broken'}, 500\n"
    )
    proc = vega("deploy", "--json", str(project))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = json.loads(proc.stdout)
    assert failed["status"] == "rolled-back" and len(failed["gates"]) == 1
    events = {d["deployment"]: d for d in vega_json("history", str(project))}
    moves = [(e["reason"], e["to"], e["weight"]) for e in events[failed["deployment"]]["events"]]
    assert moves == [("promote", failed["deployment"], WEIGHT), ("auto-rollback", old, 100)]
    conn = connect(url)
    try:
        assert {answered_by(conn) for _ in range(20)} == {f"{old}:v1"}
    finally:
        conn.close()
