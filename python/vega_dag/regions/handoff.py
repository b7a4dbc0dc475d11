"""Connections handed between a region's front and its workers (SCM_RIGHTS).

The front accepts every connection on the region's port and reads until it
has the first request line; then it hands the connection itself (the socket,
with the bytes it read) to the worker of the deployment its pointer
references, over a unix ``SOCK_SEQPACKET`` socket, and forgets it. The worker
serves the connection with uvicorn from then on: a kept-alive connection costs
the front nothing after its first request, and the worker answers exactly as
the application's own server would, in one process, in one send.

When the pointer moves to another deployment the front tells the old worker
to ``drain``: its idle kept-alive connections come straight back to the front
(the socket again, with any bytes of a request begun but not parsed), which
routes each to the new worker as if it were new; a connection with a request
in flight comes back once that response is complete. Nothing is closed, so a
client never sees its connection dropped by a switch, and no request waits in
a kernel buffer of a process that will not read it: whatever it sent is read
by whoever holds the socket next. A worker also hands back a kept-alive
connection whose next request is for ``/__vega/`` (the front answers those).

Messages are ``{"op": …, "size": n}`` as a JSON line, then ``n`` bytes of
data, split over packets of at most ``MAX_PACKET`` bytes; an ``op: conn``
message carries the connection's descriptor on its first packet. Ops: front →
worker ``serve`` (``deployment``, ``region``: what to answer as), ``drain``,
``split`` (its share of a weighted pointer, ``regions.split``), ``conn``;
worker → front ``conn`` (with ``to``: a request for the other side of a split).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import traceback
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

#: One packet on the channel; well under the default unix socket buffer.
MAX_PACKET = 32 * 1024
#: Where the region's own endpoints live: those requests are the front's.
ADMIN_PREFIX = b"/__vega/"

Message = Callable[[dict, bytes, "socket.socket | None"], None]


def request_target(data: bytes) -> bytes:
    """The target of the request line at the start of ``data`` (``b""`` if there is none)."""
    parts = data.split(b"\n", 1)[0].split(b" ", 2)
    return parts[1] if len(parts) == 3 else b""


def is_admin(data: bytes) -> bool:
    return request_target(data).startswith(ADMIN_PREFIX)


def nodelay(sock: Any) -> None:
    """Turn Nagle's algorithm off on a TCP socket (no-op on others).

    A response written as headers then body, with Nagle on, holds the body
    until the client acknowledges the headers, and the client delays that
    acknowledgement by 40 ms: every kept-alive request would take 40 ms more.
    asyncio does this for the sockets it accepts only when they were created
    with ``IPPROTO_TCP``, so it is done here explicitly for every socket the
    regions accept, hand over, or connect with.
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Channel:
    """One end of a front↔worker ``SOCK_SEQPACKET`` socket, on the running event loop.

    ``on_message(header, data, sock)`` is called for every message received
    (``sock``: the connection it carried, now this process's, or None);
    ``on_close()`` once, when the peer goes away or sending fails. Sending
    never blocks: what the socket does not take now is queued.
    """

    def __init__(
        self, sock: socket.socket, on_message: Message, on_close: Callable[[], None] | None = None
    ) -> None:
        self.sock = sock
        self.on_message = on_message
        self.on_close = on_close
        self.closed = False
        self.loop = asyncio.get_running_loop()
        sock.setblocking(False)
        #: (packet, descriptor to pass with it or None), oldest first
        self._out: deque[tuple[bytes, int | None]] = deque()
        self._writing = False
        #: a message whose data is still arriving: (header, data so far, its socket)
        self._partial: tuple[dict, bytearray, socket.socket | None] | None = None
        self.loop.add_reader(sock.fileno(), self._readable)

    # -- sending --------------------------------------------------------------
    def send(self, header: dict, data: bytes = b"", fd: int | None = None) -> bool:
        """Queue one message (``fd`` is duplicated now); False if the channel is closed."""
        if self.closed:
            return False
        head = json.dumps({**header, "size": len(data)}).encode() + b"\n"
        first = max(0, MAX_PACKET - len(head))
        self._out.append((head + data[:first], os.dup(fd) if fd is not None else None))
        for i in range(first, len(data), MAX_PACKET):
            self._out.append((data[i : i + MAX_PACKET], None))
        self._flush()
        return not self.closed

    def _flush(self) -> None:
        while self._out:
            packet, fd = self._out[0]
            try:
                if fd is None:
                    self.sock.send(packet)
                else:
                    socket.send_fds(self.sock, [packet], [fd])
            except (BlockingIOError, InterruptedError):
                if not self._writing:
                    self._writing = True
                    self.loop.add_writer(self.sock.fileno(), self._flush)
                return
            except OSError:
                self.close()
                return
            self._out.popleft()
            if fd is not None:
                os.close(fd)
        if self._writing:
            self._writing = False
            self.loop.remove_writer(self.sock.fileno())

    # -- receiving ------------------------------------------------------------
    def _readable(self) -> None:
        while not self.closed:
            try:
                packet, fds, flags, _ = socket.recv_fds(
                    self.sock, MAX_PACKET, 1, socket.MSG_CMSG_CLOEXEC
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if not packet and not fds:
                self.close()  # the peer is gone
                return
            conn = socket.socket(fileno=fds[0]) if fds else None
            if flags & socket.MSG_CTRUNC and conn is None:
                print("vega-dag: a handed-over connection was lost (MSG_CTRUNC)", file=sys.stderr)
            if self._partial is None:
                head, _, data = packet.partition(b"\n")
                try:
                    header = json.loads(head)
                    size = int(header["size"])
                except (ValueError, KeyError, TypeError):
                    self._protocol_error(conn, f"malformed message {head[:80]!r}")
                    return
                header["size"] = size
                self._partial = (header, bytearray(data), conn)
            else:
                if conn is not None:
                    self._protocol_error(conn, "a descriptor in the middle of a message")
                    return
                self._partial[1].extend(packet)
            header, received, conn = self._partial
            if len(received) >= header["size"]:
                self._partial = None
                try:
                    self.on_message(header, bytes(received), conn)
                except Exception:
                    traceback.print_exc(file=sys.stderr)
                    if conn is not None:
                        conn.close()

    def _protocol_error(self, conn: socket.socket | None, why: str) -> None:
        print(f"vega-dag: handoff channel: {why}; closing it", file=sys.stderr)
        if conn is not None:
            conn.close()
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.sock.fileno())
        if self._writing:
            with contextlib.suppress(Exception):
                self.loop.remove_writer(self.sock.fileno())
        for _, fd in self._out:
            if fd is not None:
                os.close(fd)
        self._out.clear()
        if self._partial is not None and self._partial[2] is not None:
            self._partial[2].close()
        self._partial = None
        self.sock.close()
        if self.on_close is not None:
            self.on_close()


def hand_over(
    channel: Channel | None, transport: asyncio.Transport, data: bytes, to: str | None = None
) -> bool:
    """Send ``transport``'s connection (and ``data``, read from it) over ``channel``; then let go.

    The descriptor is duplicated into the message before the transport
    closes its own: the connection stays open, and what the client sends
    meanwhile waits in the kernel for the next holder. False (and the
    transport untouched) if the channel is closed. ``to``: the deployment of a
    split that ``data``'s request is for (a worker giving back a request for
    the other side; ``regions.split``).
    """
    if channel is None or channel.closed:
        return False
    sock = transport.get_extra_info("socket")
    header = {"op": "conn"} if to is None else {"op": "conn", "to": to}
    if sock is None or not channel.send(header, data, sock.fileno()):
        return False
    transport.abort()  # closes this process's descriptor only: no FIN, no RST
    return True


def adopt(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: asyncio.Protocol
) -> Coroutine[Any, Any, Any]:
    """Serve a handed-over ``sock`` with ``protocol`` on ``loop`` (await it, or make it a task)."""
    nodelay(sock)
    return loop.connect_accepted_socket(lambda: protocol, sock)
