"""Streamed responses through a real region: gates and the worker's threads.

- An endless server-sent-events route (Starlette's ``StreamingResponse``)
  without a configured probe passes the gate on its status line and first
  event; a chunked WSGI stream that outlasts the probe's timeout passes on
  its first chunk. The gate's summary says how many probes were streams.
- A WSGI stream that waits does not hold the worker's route thread: a second
  request (a sync handler, which runs on that thread) is answered while the
  stream is still open, and it is what lets the stream end.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.rollout.helpers import stop_fleet, vega, write_project
from vega_dag.regions.fleet import request

EVENTS = """\
import asyncio

from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route


async def ticks():
    n = 0
    while True:  # endless, as an event feed is
        yield f"data: tick {n}\\n\\n"
        n += 1
        await asyncio.sleep(0.2)


async def events(request):
    return StreamingResponse(ticks(), media_type="text/event-stream")


app = Starlette(routes=[Route("/api/events", events)])
"""

# Waits for the release file (written by /api/release), yielding an empty
# chunk now and then: a client gone is noticed between chunks.
STREAM = """\
import os
import time


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"started\\n"
    flag = os.environ["RELEASE_FLAG"]
    deadline = time.monotonic() + 60
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.02)
        yield b""
    yield b"released\\n" if os.path.exists(flag) else b"never released\\n"
"""

RELEASE = """\
import os


def handler(request):
    if request.query.get("go"):
        open(os.environ["RELEASE_FLAG"], "w").close()
    return {"released": bool(request.query.get("go"))}
"""


@pytest.fixture
def streaming_project(tmp_path):
    flag = tmp_path / "release.flag"
    root = write_project(
        tmp_path / "proj",
        regions=1,
        extra={"api/events.py": EVENTS, "api/stream.py": STREAM, "api/release.py": RELEASE},
    )
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'GREETING = "hi"', f'GREETING = "hi", RELEASE_FLAG = "{flag}"'
        )
    )
    yield root
    stop_fleet(root)


def test_streams_pass_gates_and_do_not_hold_the_route_thread(streaming_project):
    proc = vega("deploy", str(streaming_project), "--json", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "live", out["problems"]
    by_route = {r["route"]: r for g in out["gates"] for r in g["routes"]}
    assert by_route["/api/events"]["statuses"] == {"200": 3}
    assert by_route["/api/stream"]["statuses"] == {"200": 3}
    # The SSE route's three and the WSGI stream's three, each at its first chunk.
    assert sum(g["streamed"] for g in out["gates"]) == 6
    url = out["regions"][0]["url"]

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("GET", "/api/stream")
        stream = conn.getresponse()
        assert stream.status == 200
        assert stream.readline() == b"started\n"
        # The stream is open and waiting; the route thread is free.
        status, _, body, _ = request(url + "/api/release?go=1", timeout=60)
        assert (status, json.loads(body)) == (200, {"released": True})
        assert stream.read() == b"released\n"
    finally:
        conn.close()
