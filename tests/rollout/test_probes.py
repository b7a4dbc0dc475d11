"""The gate's prober gives what ``Connection.request`` gives, probe for probe."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from vega_dag.regions.fleet import Connection
from vega_dag.rollout import probes
from vega_dag.rollout.probes import probe_all

STREAMS = {
    "/events": b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n",
    "/export": b"HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\n"
    b"transfer-encoding: chunked\r\n\r\n3\r\nid\n\r\n",
    "/silent": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
}


class Server:
    """A loopback HTTP/1.1 server; ``close_after`` requests per connection, then it hangs up."""

    def __init__(self, close_after: int = 0, hang: str = "") -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.close_after = close_after
        self.hang = hang
        self.connections = 0
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        served = 0
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                path = head.split(b" ")[1].decode()
                if path == self.hang:
                    self.stopped.wait(5)
                    return
                if path in STREAMS:
                    # A stream that does not end: its head, its first chunk (or none), then waits.
                    conn.sendall(STREAMS[path])
                    self.stopped.wait(5)
                    return
                body = path.encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nx-path: %s\r\n\r\n%s"
                    % (len(body), body, body)
                )
                served += 1
                if served == self.close_after:
                    # Lets the connection go idle-closed: the next request finds it gone.
                    conn.shutdown(socket.SHUT_RDWR)
                    return

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.close()


def test_answers_in_order_each_region_on_kept_alive_connections(servers) -> None:
    servers.extend(Server() for _ in range(6))
    jobs = [(s.url, f"/p{i}") for i in range(5) for s in servers]
    answers = probe_all(jobs, timeout=5.0)
    assert [a.response[1]["x-path"] for a in answers if a.response] == [p for _, p in jobs]
    assert all(a.error is None and a.response and a.response[0] == 200 for a in answers)
    # One connection per region on a wave wider than the concurrency: every
    # probe after a region's first is kept alive.
    assert [s.connections for s in servers] == [1] * 6
    assert sum(a.kept_alive for a in answers) == len(jobs) - 6


def test_a_narrow_wave_gets_a_few_connections(servers) -> None:
    servers.append(Server())
    answers = probe_all([(servers[0].url, f"/{i}") for i in range(12)], timeout=5.0)
    assert all(a.response for a in answers)
    assert servers[0].connections == probes.CONCURRENCY
    assert sum(a.kept_alive for a in answers) == 12 - probes.CONCURRENCY


def test_a_connection_closed_while_idle_is_sent_again_fresh(servers, monkeypatch) -> None:
    servers.append(Server(close_after=2))
    url = servers[0].url
    paths = ["/a", "/b", "/c", "/d", "/e"]
    monkeypatch.setattr(probes, "CONCURRENCY", 1)  # one lane: a wide wave's share
    answers = probe_all([(url, p) for p in paths], 5.0)
    assert [a.response[1]["x-path"] for a in answers if a.response] == paths
    assert [a.kept_alive for a in answers] == [False, True, False, True, False]
    # What Connection does, request for request.
    conn = Connection(url)
    try:
        assert [conn.request(p)[1]["x-path"] for p in paths] == paths
        assert conn.reused == 2
    finally:
        conn.close()


def test_timeouts_and_unreachable_regions_are_errors_of_their_probe(servers) -> None:
    servers.append(Server(hang="/hang"))
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed = f"http://127.0.0.1:{free.getsockname()[1]}"
    free.close()
    answers = probe_all([(servers[0].url, "/hang"), (closed, "/x"), (servers[0].url, "/ok")], 0.3)
    assert isinstance(answers[0].error, TimeoutError)
    assert isinstance(answers[1].error, OSError) and "Connection refused" in str(answers[1].error)
    with pytest.raises(OSError) as expected:
        Connection(closed).request("/x")
    assert str(answers[1].error) == str(expected.value)
    assert answers[2].response is not None and answers[2].response[0] == 200


def test_a_stream_that_does_not_end_is_answered_by_its_head_and_first_chunk(servers) -> None:
    servers.append(Server())
    url = servers[0].url
    answers = probe_all([(url, "/events"), (url, "/export"), (url, "/silent"), (url, "/ok")], 0.5)
    events, export, silent, ok = answers
    # Server-sent events at their first chunk; another stream once the timeout passes.
    assert events.streamed and events.response is not None
    assert events.response[0] == 200 and events.response[2] == b"data: 1\n\n"
    assert export.streamed and export.response is not None and export.response[2] == b"id\n"
    assert isinstance(silent.error, TimeoutError)
    assert str(silent.error) == "timed out: status 200, but no chunk of its streamed body"
    assert ok.response is not None and not ok.streamed
