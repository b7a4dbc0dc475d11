"""A front listening beyond loopback answers its state-changing admin endpoints only on
loopback; the read-only ones anywhere (issue 12, item 3)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from tests.agents.helpers import Agents, Backends
from vega_dag.regions.fleet import request
from vega_dag.regions.server import PUBLIC_ADMIN, Region, on_loopback


@pytest.mark.parametrize(
    ("server", "loopback"),
    [
        (("127.0.0.1", 80), True),
        (("127.5.6.7", 80), True),
        (("::1", 80), True),
        (("::ffff:127.0.0.1", 80), True),
        (("/run/vega.sock", None), True),
        (None, True),
        (("10.1.2.3", 80), False),
        (("192.168.0.9", 80), False),
        (("fe80::1%eth0", 80), False),
        (("::ffff:10.0.0.1", 80), False),
    ],
)
def test_which_addresses_are_loopback(server, loopback: bool) -> None:
    assert on_loopback({"server": server}) is loopback


def _answer(region: Region, path: str, method: str, server: tuple[str, int]) -> tuple[int, dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": method, "server": server,
             "query_string": b""}  # fmt: skip
    asyncio.run(region.admin(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_state_changing_endpoints_refuse_a_non_loopback_address(tmp_path: Path) -> None:
    region = Region("fra", tmp_path / "fleet", tmp_path / "store", {"metrics": False})
    outside = ("10.1.2.3", 8080)
    for path in ("/__vega/prefetch", "/__vega/flush", "/__vega/observe"):
        code, payload = _answer(region, path, "POST", outside)
        assert code == 403, path
        assert "loopback only" in payload["error"]
    assert "/__vega/status" in PUBLIC_ADMIN
    code, payload = _answer(region, "/__vega/status", "GET", outside)
    assert code == 200 and payload["region"] == "fra"
    # On loopback the same request is answered as ever (here: a malformed prefetch).
    code, payload = _answer(region, "/__vega/prefetch", "POST", ("127.0.0.1", 8080))
    assert code == 400 and payload["error"] == "expected {manifest}"


def _outside_address() -> str | None:
    """A non-loopback address of this host, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: it only picks a route
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_an_agent_on_every_address_keeps_its_admin_on_loopback(
    tmp_path: Path, backends: Backends, agents: Agents
) -> None:
    address = _outside_address()
    if address is None:
        pytest.skip("this host has no non-loopback address")
    from tests.servers import free_port

    port = free_port()
    agent = agents.start("fra", listen=f"0.0.0.0:{port}", url=f"http://127.0.0.1:{port}")
    outside = f"http://{address}:{port}"
    assert request(f"{outside}/__vega/status")[0] == 200
    code, _, body, _ = request(f"{outside}/__vega/prefetch", "POST", b'{"manifest": "x"}')
    assert code == 403, body
    code, _, body, _ = request(f"{agent.url}/__vega/prefetch", "POST", b"{}")
    assert code == 400, body
    # Traffic is served on every address: no deployment yet, the region's own 503.
    code, headers, _, _ = request(f"{outside}/api")
    assert code == 503 and headers["x-vega-region"] == "fra"
