"""Kept-alive connections through real regions: no stall, and they follow the pointer."""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.rollout.helpers import vega_json, write_project
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet

#: Linux's smallest delayed-ACK timeout (TCP_DELACK_MIN = HZ/25): the floor of the stall.
DELAYED_ACK_S = 0.040

#: A route whose answer can be held back: with ``?hold=1`` it writes
#: HOLD_FLAG.started, then waits for the file HOLD_FLAG (every other call,
#: the warm-up's and the gate's included, answers at once).
HOLD = (
    "import os, time\n\n\ndef handler(request):\n"
    "    if request.query.get('hold'):\n"
    "        open(os.environ['HOLD_FLAG'] + '.started', 'w').close()\n"
    "        while not os.path.exists(os.environ['HOLD_FLAG']):\n"
    "            time.sleep(0.01)\n"
    "    return {'held': True}\n"
)


def wait_for(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str | None, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    return response.status, response.getheader("x-vega-deployment"), body


def fra_url(root: Path) -> str:
    return next(r.url for r in LocalFleet(load_config(root)).regions() if r.name == "fra")


def test_fifty_kept_alive_requests_do_not_stall(project: Path) -> None:
    out = vega_json("deploy", str(project))
    deployment = out["deployment"]
    # The gates probe over kept-alive connections too (the canary's: more
    # probes of one region than there are probers, so some reuse theirs).
    assert out["gates"][0]["kept_alive"] > 0
    conn = connect(fra_url(project))
    try:
        seconds = []
        for _ in range(50):
            started = time.perf_counter()
            status, answered_by, body = get(conn, "/api")
            seconds.append(time.perf_counter() - started)
            assert (status, answered_by) == (200, deployment)
            assert json.loads(body)["version"] == "v1"
            if len(seconds) == 1:
                sock = conn.sock
            # One connection throughout: the region kept it alive.
            assert conn.sock is sock
    finally:
        conn.close()
    # Nagle meeting delayed ACKs (the bug this guards against) holds a
    # kept-alive response until the client's delayed-ACK timer fires: at
    # least DELAYED_ACK_S, a floor no fast machine gets under (Linux quick-ACKs
    # now and then, so most requests, not all, pay it; the median of 49 does).
    # Without the stall each takes about a millisecond of work on loopback:
    # noise only adds time, and for the median to reach 40 ms it would have to
    # hold more than half of them back by 40 ms each. The structural checks
    # (TCP_NODELAY on the handed-over socket, one write per response) are in
    # test_handoff.py.
    median = sorted(seconds[1:])[24]
    assert median < DELAYED_ACK_S, f"the median kept-alive request took {median * 1000:.1f} ms"


def test_a_kept_alive_connection_follows_the_pointer(tmp_path: Path) -> None:
    from tests.rollout.helpers import stop_fleet

    flag = tmp_path / "release"
    root = write_project(tmp_path / "proj", extra={"api/hold.py": HOLD})
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'env = { GREETING = "hi" }', f'env = {{ GREETING = "hi", HOLD_FLAG = "{flag}" }}'
        )
    )
    try:
        first = vega_json("deploy", str(root))["deployment"]
        (root / "lib" / "version.py").write_text('VERSION = "v2"\n')
        second = vega_json("deploy", str(root))["deployment"]
        url = fra_url(root)

        idle, busy = connect(url), connect(url)
        assert get(idle, "/api")[1] == second
        assert get(busy, "/api/hold")[1] == second
        idle_sock, busy_sock = idle.sock, busy.sock

        held: dict[str, object] = {}

        def hold() -> None:
            held["answer"] = get(busy, "/api/hold?hold=1")

        waiting = threading.Thread(target=hold)
        waiting.start()
        wait_for(flag.with_name("release.started"))  # the request is in the worker
        # The rollback returns once every region answers with `first`.
        rolled = vega_json("rollback", "--path", str(root))
        assert rolled["deployment"] == second
        # An idle kept-alive connection is answered by the new deployment at
        # once, on the same connection.
        status, answered_by, body = get(idle, "/api")
        assert (status, answered_by, json.loads(body)["version"]) == (200, first, "v1")
        assert idle.sock is idle_sock

        # The request in flight at the switch finishes, answered by the
        # deployment it began on; the connection's next request goes to the new one.
        assert waiting.is_alive()
        flag.write_text("")
        waiting.join(10)
        assert held["answer"] == (200, second, b'{"held": true}')
        assert get(busy, "/api")[1] == first
        assert busy.sock is busy_sock

        # And back again: the connections move whichever way the pointer does.
        (root / "lib" / "version.py").write_text('VERSION = "v3"\n')
        third = vega_json("deploy", str(root))["deployment"]
        assert get(idle, "/api")[1] == third and get(busy, "/api")[1] == third
        assert (idle.sock, busy.sock) == (idle_sock, busy_sock)
        idle.close()
        busy.close()
    finally:
        stop_fleet(root)


def test_admin_requests_on_a_kept_alive_connection_are_the_fronts(project: Path) -> None:
    deployment = vega_json("deploy", str(project))["deployment"]
    conn = connect(fra_url(project))
    try:
        assert get(conn, "/api")[1] == deployment
        conn.request("GET", "/__vega/status")
        response = conn.getresponse()
        status = json.loads(response.read())
        assert response.status == 200 and status["region"] == "fra"
        assert status["deployment"] == deployment
        # The front's answers end their connection, and say so.
        assert response.getheader("connection") == "close"
        assert get(conn, "/api")[1] == deployment  # http.client reconnects
    finally:
        conn.close()
