"""``LocalFleet.hold_and_wait_many``: one request per region for a rollback's prefetch and wait.

Against stub regions (a thread each): one that speaks ``/__vega/hold`` (a
chunked answer, its second line only once the "pointer write" has happened),
one of an older vega-dag (404: prefetched and waited for as before), and one
that refuses its target (the error comes before the write, which never runs).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet, RegionError, RegionInfo


class Stub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, kind: str, written: threading.Event) -> None:
        self.kind, self.written, self.paths = kind, written, []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Stub

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, code: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        self.server.paths.append(self.path.split("?")[0])
        if self.path.startswith("/__vega/hold"):
            if self.server.kind == "older":
                self._json(404, {"error": "unknown admin endpoint"})
            elif self.server.kind == "refusing":
                self._json(502, {"ok": False, "error": "refused dpl_a: it is not signed"})
            else:
                self.send_response(200)
                self.send_header("transfer-encoding", "chunked")
                self.send_header("connection", "close")
                self.end_headers()
                self._chunk(b'{"ok": true}\n')
                assert self.server.written.wait(10), "no pointer write"
                self._chunk(b'{"ok": true, "status": 200, "deployment": "dpl_a"}\n')
                self._chunk(b"")
        elif self.path.startswith("/__vega/wait"):
            assert self.server.written.is_set(), "an older region's wait before the write"
            self._json(200, {"ok": True, "deployment": "dpl_a"})
        else:
            self._json(404, {"error": "no"})

    def do_POST(self) -> None:
        self.server.paths.append(self.path)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        assert not self.server.written.is_set(), "a prefetch after the write"
        self._json(200, {"ok": True, "cached": True, "loaded": True})


@pytest.fixture
def fleet(tmp_path: Path) -> LocalFleet:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n')
    return LocalFleet(load_config(tmp_path))


def stubs(*kinds: str) -> tuple[list[Stub], threading.Event]:
    written = threading.Event()
    servers = [Stub(kind, written) for kind in kinds]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return servers, written


def test_the_write_comes_between_every_hold_and_every_answer(fleet: LocalFleet) -> None:
    servers, written = stubs("hold", "hold", "older")
    regions = [RegionInfo(f"r{i}", s.url, 0, 0, 0.0) for i, s in enumerate(servers)]
    try:
        answers = fleet.hold_and_wait_many(
            [(r, "dpl_a", "blake3:m") for r in regions], written.set, timeout=10
        )
    finally:
        for server in servers:
            server.shutdown()
    assert written.is_set()
    assert all(isinstance(answers[r.name], float) for r in regions), answers
    assert servers[0].paths == servers[1].paths == ["/__vega/hold"]
    # The older region: its 404, then a prefetch before the write, a wait after it.
    assert servers[2].paths == ["/__vega/hold", "/__vega/prefetch", "/__vega/wait"]


def test_a_region_that_cannot_hold_its_target_stops_it_before_the_write(
    fleet: LocalFleet,
) -> None:
    servers, written = stubs("hold", "refusing")
    regions = [RegionInfo(f"r{i}", s.url, 0, 0, 0.0) for i, s in enumerate(servers)]
    try:
        with pytest.raises(RegionError, match="refused dpl_a: it is not signed"):
            fleet.hold_and_wait_many(
                [(r, "dpl_a", "blake3:m") for r in regions], written.set, timeout=10
            )
    finally:
        written.set()  # lets the holding stub's thread finish
        for server in servers:
            server.shutdown()
