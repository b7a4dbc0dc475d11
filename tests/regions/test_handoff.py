"""The connection handoff, in one process: front → worker → front, with real sockets."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import uvicorn
from uvicorn.server import ServerState

from vega_dag.regions.handoff import MAX_PACKET, Channel, is_admin, request_target
from vega_dag.regions.server import FrontProtocol, listen
from vega_dag.regions.serving import WorkerHost, WorkerProtocol

REQUEST = b"GET /api/x HTTP/1.1\r\nhost: t\r\n\r\n"


class Inbox:
    """The far end of a channel: every message it receives, to await one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    def __call__(self, header: dict, data: bytes, sock: socket.socket | None) -> None:
        self.queue.put_nowait((header, data, sock))

    async def next(self) -> tuple[dict, bytes, socket.socket | None]:
        return await asyncio.wait_for(self.queue.get(), 5)


def pair(on_message) -> tuple[Channel, Channel]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return Channel(a, on_message), Channel(b, lambda *m: None)


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, list], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.split(b"\r\n")
    headers: dict[bytes, list] = {}
    for line in lines[1:]:
        if line:
            key, _, value = line.partition(b":")
            headers.setdefault(key.strip().lower(), []).append(value.strip())
    body = await reader.readexactly(int(headers[b"content-length"][0]))
    return lines[0], headers, body


def test_request_targets():
    assert request_target(REQUEST) == b"/api/x"
    assert is_admin(b"POST /__vega/prefetch HTTP/1.1\r\n")
    assert not is_admin(b"GET /api/__vega/x HTTP/1.1\r\n") and not is_admin(b"garbage")


def test_a_channel_carries_large_messages_and_a_descriptor():
    async def main():
        inbox = Inbox()
        ours, theirs = pair(inbox)
        data = os.urandom(3 * MAX_PACKET + 17)
        left, right = socket.socketpair()
        assert theirs.send({"op": "conn"}, data, left.fileno())
        left.close()  # the message holds its own duplicate
        header, got, sock = await inbox.next()
        assert (header["op"], got) == ("conn", data)
        assert sock is not None
        sock.sendall(b"still open")
        assert right.recv(100) == b"still open"
        theirs.close()
        for s in (sock, right):
            s.close()
        await asyncio.sleep(0.01)
        assert ours.closed  # the peer went away

    asyncio.run(main())


def test_the_front_hands_over_new_connections_with_nodelay():
    """Every TCP socket the front accepts goes to the worker with Nagle off."""

    async def front_app(scope, receive, send):
        headers = [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"front"})

    async def main():
        inbox = Inbox()
        _, front_end = pair(inbox)

        class Region:
            channel: Channel | None = front_end
            split = None  # unweighted: every connection to the serving worker

            def serving_channel(self):
                return self.channel

        region = Region()
        config = uvicorn.Config(front_app, lifespan="off", log_level="warning")
        config.load()
        state = ServerState()
        protocol = type("Front", (FrontProtocol,), {"region": region})
        server = await asyncio.get_running_loop().create_server(
            lambda: protocol(config, state, {}), sock=listen(0)
        )
        port = server.sockets[0].getsockname()[1]

        # A request line in two pieces: the front waits for all of it.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST[:6])
        await writer.drain()
        await asyncio.sleep(0.05)
        assert inbox.queue.empty()
        writer.write(REQUEST[6:])
        header, data, sock = await inbox.next()
        assert header["op"] == "conn" and data == REQUEST
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert not state.connections  # the front let go of it
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nworker")
        assert (await read_response(reader))[2] == b"worker"
        writer.close()
        sock.close()

        # Admin requests, and everything when no worker is there, are the front's.
        admin = b"GET /__vega/status HTTP/1.1\r\nhost: t\r\n\r\n"
        for request, no_worker in ((admin, False), (REQUEST, True)):
            if no_worker:
                region.channel = None
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            assert (await read_response(reader))[2] == b"front"
            writer.close()
        assert inbox.queue.empty()
        server.close()

    asyncio.run(main())


async def hold(event: asyncio.Event, scope, receive, send):
    if scope["path"] == "/hold":
        await event.wait()
    body = scope["path"].encode()
    headers = [(b"x-app", b"1"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Worker:
    """A WorkerHost on this loop, its front's end of the channel, and a TCP port to connect to."""

    async def start(self, tmp_path: Path, app) -> Worker:
        self.host = WorkerHost(app)
        config = uvicorn.Config(self.host, lifespan="off", log_level="warning", http="h11")
        config.load()
        self.state = ServerState()
        self.state.default_headers = [(b"date", b"today"), (b"server", b"uvicorn")]
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listening.bind(str(tmp_path / "w.sock"))
        listening.listen(1)
        self.host.start(config, self.state, listening)
        self.inbox = Inbox()
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control.setblocking(False)
        await asyncio.get_running_loop().sock_connect(self.control, str(tmp_path / "w.sock"))
        self.front = Channel(self.control, self.inbox)
        self.front.send({"op": "serve", "deployment": "dpl_a", "region": "fra"})
        self.tcp = listen(0)
        return self

    async def connect(self, first: bytes):
        """A client connection, handed to the worker with ``first`` already read."""
        port = self.tcp.getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(first)
        await writer.drain()
        accepted, _ = self.tcp.accept()
        read = accepted.recv(65536)
        self.front.send({"op": "conn"}, read, accepted.fileno())
        accepted.close()
        return reader, writer

    def close(self) -> None:
        self.tcp.close()
        self.front.close()


def test_a_worker_serves_handed_over_connections_and_gives_them_back(tmp_path: Path):
    async def main():
        release = asyncio.Event()
        worker = await Worker().start(
            tmp_path, lambda scope, receive, send: hold(release, scope, receive, send)
        )
        state, inbox, front, connect = worker.state, worker.inbox, worker.front, worker.connect

        reader, writer = await connect(REQUEST)
        status, headers, body = await read_response(reader)
        assert (status, body) == (b"HTTP/1.1 200 OK", b"/api/x")
        expected = {
            b"x-vega-region": b"fra",
            b"x-vega-deployment": b"dpl_a",
            b"date": b"today",
            b"server": b"uvicorn",
            b"x-app": b"1",
        }
        for name, value in expected.items():
            assert headers[name] == [value], name  # each once

        # A kept-alive response is written in one send (one segment).
        (protocol,) = state.connections
        assert isinstance(protocol, WorkerProtocol)
        writes = []
        raw_write = protocol.raw.write
        protocol.raw.write = lambda data: (writes.append(data), raw_write(data))[1]
        writer.write(REQUEST)
        assert (await read_response(reader))[2] == b"/api/x"
        assert len(writes) == 1 and writes[0].endswith(b"\r\n\r\n/api/x")

        # A kept-alive connection's admin request goes back to the front, with the request.
        admin = b"GET /__vega/status HTTP/1.1\r\nhost: t\r\n\r\n"
        writer.write(admin)
        header, data, sock = await inbox.next()
        assert (header["op"], data) == ("conn", admin)
        assert not state.connections
        sock.close()
        writer.close()

        # Draining: an idle connection goes back at once, with the start of a
        # request not all in yet; a busy one once its response is complete.
        idle_reader, idle_writer = await connect(REQUEST)
        await read_response(idle_reader)
        idle_writer.write(b"GET /ne")
        await idle_writer.drain()
        busy_reader, busy_writer = await connect(b"GET /hold HTTP/1.1\r\nhost: t\r\n\r\n")
        await asyncio.sleep(0.05)
        front.send({"op": "drain"})
        header, data, idle_sock = await inbox.next()
        assert data == b"GET /ne"
        idle_writer.write(b"xt HTTP/1.1\r\n")  # the rest reaches whoever holds it now
        assert idle_sock.recv(100) == b"xt HTTP/1.1\r\n"
        assert inbox.queue.empty()
        release.set()
        status, headers, body = await read_response(busy_reader)
        assert body == b"/hold" and headers[b"x-vega-deployment"] == [b"dpl_a"]
        assert b"connection" not in headers  # the connection stays open
        header, data, busy_sock = await inbox.next()
        assert data == b"" and not state.connections
        busy_writer.write(REQUEST)
        assert busy_sock.recv(100) == REQUEST
        for sock in (idle_sock, busy_sock):
            sock.close()
        for w in (idle_writer, busy_writer):
            w.close()
        worker.close()

    asyncio.run(main())


def test_a_connection_goes_back_only_once_its_last_write_is_out(tmp_path: Path):
    async def main():
        worker = await Worker().start(tmp_path, lambda *a: hold(asyncio.Event(), *a))
        reader, writer = await worker.connect(REQUEST)
        await read_response(reader)
        (protocol,) = worker.state.connections
        # Bytes written this turn wait in the coalescing buffer: a drain now
        # must not let go of the connection before they are in the socket.
        protocol.transport.write(b"late")
        worker.host.draining = True
        worker.host.release(protocol)
        assert worker.inbox.queue.empty() and worker.state.connections
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"late"
        _, data, sock = await worker.inbox.next()
        assert data == b"" and not worker.state.connections
        sock.close()
        writer.close()
        worker.close()

    asyncio.run(main())
