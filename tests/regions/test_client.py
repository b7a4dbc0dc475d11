"""The fleet's HTTP client: one-shot requests and kept-alive connections (what gates probe with)."""

from __future__ import annotations

import socket
import threading

import pytest

from vega_dag.regions.fleet import Connection, request, request_many


class Server:
    """A loopback server that answers each request with the next scripted reply.

    A reply is bytes to send, or None to close the connection without answering.
    """

    def __init__(self, replies: list[bytes | None]) -> None:
        self.replies = list(replies)
        self.listening = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listening.getsockname()[1]}"
        self.requests: list[tuple[int, bytes]] = []  # (connection number, request)
        self.nodelay: list[int] = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        number = 0
        while self.replies:
            conn, _ = self.listening.accept()
            number += 1
            with conn:
                while self.replies:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if not data:
                        break
                    self.requests.append((number, data))
                    reply = self.replies.pop(0)
                    if reply is None:
                        break
                    conn.sendall(reply)

    def close(self) -> None:
        self.listening.close()


def sized(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


CHUNKED = (
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=1\r\ndefg\r\n0\r\n\r\n"
)


def test_a_connection_carries_requests_one_after_another():
    server = Server([sized(b"one"), CHUNKED, sized(b"three")])
    conn = Connection(server.url)
    try:
        assert conn.request("/a")[2] == b"one"
        assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        # A chunked answer ends at its last chunk, not when the connection closes.
        assert conn.request("/b")[2] == b"abcdefg"
        assert conn.request("/c")[2] == b"three"
    finally:
        conn.close()
        server.close()
    assert [n for n, _ in server.requests] == [1, 1, 1]
    assert conn.reused == 2
    assert all(b"connection: close" not in r for _, r in server.requests)


def test_an_idle_connection_the_server_closed_is_retried_once_for_a_get():
    server = Server([sized(b"one"), None, sized(b"again"), None])
    conn = Connection(server.url)
    try:
        assert conn.request("/a")[2] == b"one"
        # The server let the idle connection go: the GET goes again, on a new one.
        assert conn.request("/b")[2] == b"again"
        assert [n for n, _ in server.requests] == [1, 1, 2]
        # A fresh connection closed without an answer is an error, not retried.
        conn.close()
        with pytest.raises(ConnectionError):
            conn.request("/c")
    finally:
        conn.close()
        server.close()


def test_a_post_on_a_stale_connection_is_not_sent_twice():
    server = Server([sized(b"one"), None, sized(b"never")])
    conn = Connection(server.url)
    try:
        conn.request("/a")
        with pytest.raises(ConnectionError):
            conn.request("/b", "POST", b"{}")
        assert len(server.requests) == 2
    finally:
        conn.close()
        server.close()


def test_connection_close_and_unsized_answers_end_the_connection():
    server = Server([sized(b"bye", b"connection: close\r\n"), sized(b"new")])
    conn = Connection(server.url)
    try:
        assert conn.request("/a")[2] == b"bye"
        assert conn.sock is None
        assert conn.request("/b")[2] == b"new"
        assert [n for n, _ in server.requests] == [1, 2]
    finally:
        conn.close()
        server.close()


def test_one_shot_requests_read_chunked_answers_and_close():
    server = Server([CHUNKED])
    try:
        status, headers, body, _ = request(server.url + "/x")
        assert (status, headers["transfer-encoding"], body) == (200, "chunked", b"abcdefg")
        assert b"connection: close" in server.requests[0][1]
    finally:
        server.close()


class Held:
    """A loopback server that reads one request per connection, then answers once released."""

    def __init__(self, n: int) -> None:
        self.listening = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listening.getsockname()[1]}"
        self.release = threading.Event()
        self.received: list[bytes] = []
        #: per connection: whether the client closed it before the release
        self.closed_early: list[bool] = []
        self.threads = [threading.Thread(target=self.serve, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def serve(self) -> None:
        conn, _ = self.listening.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            self.received.append(data)
            released = self.release.wait(10)
            conn.settimeout(0.01 if released else 10)
            try:
                early = conn.recv(1) == b""
            except TimeoutError:
                early = False
            self.closed_early.append(early)
            if not early:
                conn.sendall(sized(b"ok"))

    def join(self) -> None:
        for t in self.threads:
            t.join(10)
        self.listening.close()


def test_meanwhile_runs_once_every_request_is_out_and_the_answers_come_after():
    server = Held(3)
    calls = []

    def meanwhile() -> None:
        calls.append(len(calls))
        server.release.set()  # the servers answer only from now on

    answers = request_many(
        [(server.url + f"/w/{i}", "GET", None) for i in range(3)], 5.0, meanwhile
    )
    server.join()
    assert calls == [0]
    assert [a[0] for a in answers if not isinstance(a, OSError)] == [200, 200, 200]
    assert sorted(r.split(b" ")[1] for r in server.received) == [b"/w/0", b"/w/1", b"/w/2"]


def test_meanwhile_runs_even_when_no_request_could_be_sent():
    calls = []
    answers = request_many([("not a url", "GET", None)], 1.0, lambda: calls.append(1))
    assert calls == [1]
    assert isinstance(answers[0], OSError)


def test_what_meanwhile_raises_is_raised_and_every_connection_closed():
    server = Held(2)

    def meanwhile() -> None:
        raise RuntimeError("the pointer write failed")

    with pytest.raises(RuntimeError, match="pointer write failed"):
        request_many([(server.url + "/w", "GET", None)] * 2, 5.0, meanwhile)
    server.release.set()  # closed before this: each server finds its connection ended
    server.join()
    assert server.closed_early == [True, True]
