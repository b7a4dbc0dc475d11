"""A worker serving the connections its region's front hands over (see ``handoff``).

The worker listens on a unix ``SOCK_SEQPACKET`` socket for its front. Each
connection it is given is served by uvicorn's own HTTP/1.1 protocol, as
under ``uvicorn app:app``, with these additions:

- the bytes the front read first are fed in before anything else is read;
- every response carries ``x-vega-region`` and ``x-vega-deployment`` (what
  the front last told it to ``serve`` as), and is written in one send: the
  writes of one event-loop turn (status line and headers, body, end) are
  joined, so a small response is one segment whatever the client's ACK timing;
- on ``drain`` (its deployment is no longer the one served) every idle
  connection goes back to the front, and each busy one once its response is
  complete; a kept-alive connection whose next request is for ``/__vega/``
  goes back too, with that request;
- while its region splits requests between two deployments (``split``), a
  kept-alive connection whose next request is for the other side goes back
  to the front with that request and the decision (``to``);
- unless ``[tool.vega.observe]`` turns both off, every request is counted
  (route pattern, status class, deployment, latency) and logged, and its
  response carries ``x-request-id`` (``observe``, ``request_log``);
- the ASGI lifespan of the deployment's applications runs on this loop: the
  startup before the socket appears (a failure is the load's), the shutdown
  after the last connection, when the worker is told to stop (``lifespan``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import msgspec
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from vega_dag.regions import DEPLOYMENT_HEADER, REGION_HEADER
from vega_dag.regions.handoff import ADMIN_PREFIX, Channel, adopt, hand_over
from vega_dag.regions.observe import RequestObserver
from vega_dag.regions.request_log import NO_ROUTE
from vega_dag.regions.runtime import ASGIApp, Receive, Scope, Send
from vega_dag.regions.split import Split, head_complete

#: Longest request head a split waits for before deciding on what it has.
HEAD_LIMIT = 16 * 1024

#: A connection going back whose last response is still being written is retried
#: after this long, then twice as long each time, up to RELEASE_RETRY_MAX.
RELEASE_RETRY = 0.005
RELEASE_RETRY_MAX = 0.2


class Coalescing:
    """A transport whose writes in one event-loop turn go out as one ``send``.

    uvicorn writes a response in two or three pieces (head, body, end); each
    would be a TCP segment of its own. Everything but ``write`` and the
    calls that must see the data first goes to the real transport.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class WorkerProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol for one handed-over connection."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        host: WorkerHost,
        prefix: bytes,
    ) -> None:
        super().__init__(config, server_state, {}, host.loop)
        self.host = host
        self.prefix = prefix
        self.raw: asyncio.Transport | None = None
        #: the start of a request head a split waits to see whole
        self.held = b""
        #: the bytes being fed are a request some process already routed here
        self.routed = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.raw = transport
        super().connection_made(Coalescing(transport, self.loop))  # type: ignore[arg-type]
        # Before the transport's first read (scheduled after this call): the
        # front's bytes come first.
        if self.prefix:
            prefix, self.prefix = self.prefix, b""
            self.routed = True  # the front (or the other side) decided for it
            try:
                self.data_received(prefix)
            finally:
                self.routed = False

    def idle(self) -> bool:
        """Between requests: the last response is complete, the next request not yet parsed."""
        return (
            self.conn.our_state is h11.IDLE
            and self.conn.their_state is h11.IDLE
            and not self.transport.is_closing()
        )

    def data_received(self, data: bytes) -> None:
        if self.held:
            data, self.held = self.held + data, b""
        # A cheap look first: this runs for every request.
        space = data.find(b" ", 0, 16)
        if (
            space > 0
            and data.startswith(ADMIN_PREFIX, space + 1)
            and self.idle()
            and not self.conn.trailing_data[0]  # else `data` is not where a request starts
            and self.host.give_back(self, data)
        ):
            return
        split = self.host.split
        if (
            split is not None
            and not self.routed
            and not self.host.draining
            and self.idle()
            and not self.conn.trailing_data[0]
        ):
            if not head_complete(data) and len(data) < HEAD_LIMIT:
                self.held = data  # decided once the head is in
                return
            if split.to_primary(data) != self.host.primary:
                other = split.baseline if self.host.primary else split.deployment
                if self.host.give_back(self, data, to=other):
                    return
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.host.draining:
            # After the coalesced write of this response has been handed to the socket.
            self.loop.call_soon(self.host.release, self)


class WorkerHost:
    """The worker's side of its front: the channel, what it answers as, its connections."""

    def __init__(self, app: ASGIApp) -> None:
        self.loop = asyncio.get_running_loop()
        self.app = app
        #: the headers every response gets: (x-vega-region, …), (x-vega-deployment, …)
        self.extra: list[tuple[bytes, bytes]] = []
        #: not the deployment served: connections go back to the front
        self.draining = True
        self.channel: Channel | None = None
        self.config: uvicorn.Config | None = None
        self.state: ServerState | None = None
        self.tasks: set[asyncio.Task] = set()
        self.listening: socket.socket | None = None
        #: the deployment answered as (x-vega-deployment), for metrics and logs
        self.deployment = ""
        #: metrics and request log, once the front has said what to record (``serve``);
        #: None while both are off
        self.observer: RequestObserver | None = None
        #: the region's split while it has one, and whether this worker is its new side
        self.split: Split | None = None
        self.primary = True
        self._recorder: RequestObserver | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The worker's ASGI app: the deployment's router, every answer stamped."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        observer = self.observer
        if observer is None:
            extra = self.extra

            async def stamped(message: dict) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
                await send(message)

            await self.app(scope, receive, stamped)
            return
        started = time.perf_counter()
        request_id = observer.request_id(scope["headers"])
        # Decoded once: the app's scope and the log record share the str.
        scope["vega.request_id"] = request_id_str = request_id.decode("ascii", "replace")
        extra = self.extra
        deployment = self.deployment
        status = 500  # what the client gets if the app never starts a response

        async def observed(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", ()), *extra, (b"x-request-id", request_id)],
                }
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            # The router names the pattern it matched in the scope it was given.
            route = scope.get("vega.route", NO_ROUTE)
            observer.record(
                deployment, route, status, time.perf_counter() - started, scope, request_id_str
            )

    def start(self, config: uvicorn.Config, state: ServerState, listening: socket.socket) -> None:
        self.config, self.state, self.listening = config, state, listening
        listening.setblocking(False)
        self.loop.add_reader(listening.fileno(), self._accept)

    def _accept(self) -> None:
        assert self.listening is not None
        while True:
            try:
                sock, _ = self.listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            # The front connects once per worker; a later connection replaces it.
            if self.channel is not None:
                self.channel.close()
            self.channel = Channel(sock, self.on_message)

    def on_message(self, header: dict, data: bytes, sock: socket.socket | None) -> None:
        op = header.get("op")
        if op == "conn" and sock is not None:
            assert self.config is not None and self.state is not None
            protocol = WorkerProtocol(self.config, self.state, self, data)
            task = self.loop.create_task(adopt(self.loop, sock, protocol))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif op == "serve":
            self.extra = [
                (REGION_HEADER.encode(), str(header["region"]).encode()),
                (DEPLOYMENT_HEADER.encode(), str(header["deployment"]).encode()),
            ]
            self.deployment = str(header["deployment"])
            self._observe(str(header["region"]), header)
            self.draining = False
        elif op == "split":
            self.split = Split.from_message(header) if header.get("weight") is not None else None
            self.primary = bool(header.get("primary", True))
        elif op == "observe":
            self._observe(str(header["region"]), header)
        elif op == "drain":
            self.draining = True
            self.split = None
            assert self.state is not None
            for connection in list(self.state.connections):
                if isinstance(connection, WorkerProtocol):
                    self.release(connection)
        elif op in ("metrics", "flush"):
            if op == "flush":
                # A bake judges a window that ends now: what is buffered goes to the file first.
                if self._recorder is not None:
                    self._recorder.flush()
                families = []
            else:
                families = self._recorder.families() if self._recorder is not None else []
            reply = {"op": "metrics", "ask": header.get("ask"), "pid": os.getpid()}
            if self.channel is not None:
                self.channel.send(reply, msgspec.json.encode(families))
        elif sock is not None:
            sock.close()

    def _observe(self, region: str, header: dict) -> None:
        """Record what the front says: at each ``serve``, and at ``observe`` (changed at run time).

        One recorder per worker (it serves one region), kept while both are
        off: its counts go on from where they were if metrics come back.
        """
        settings = header.get("observe")
        if not settings:
            return
        if self._recorder is None:
            if not (settings.get("metrics") or settings.get("request_log")):
                return
            self._recorder = RequestObserver(region, settings, header.get("log"))
        else:
            self._recorder.configure(settings)
        self.observer = self._recorder if self._recorder.active else None

    def close(self) -> None:
        """On the way out: what the request log holds in memory goes to the file."""
        if self._recorder is not None:
            self._recorder.flush()

    def give_back(self, protocol: WorkerProtocol, data: bytes, to: str | None = None) -> bool:
        """Hand ``protocol``'s connection to the front, with ``data`` not yet parsed."""
        assert protocol.raw is not None
        return hand_over(self.channel, protocol.raw, data, to)

    def release(self, protocol: WorkerProtocol, retry: float = RELEASE_RETRY) -> None:
        """While draining, send an idle connection back (a busy one: once its response is out).

        The start of a request that is not all in yet goes with it: the
        request begins after the switch, so the new deployment answers it.
        """
        if not self.draining or protocol.raw is None or not protocol.idle():
            return  # busy: on_response_complete calls again
        if protocol.transport.get_write_buffer_size():
            # The last response is not all in the socket yet (or not even
            # flushed from this turn's writes): letting go now would cut it.
            later = min(retry * 2, RELEASE_RETRY_MAX)
            self.loop.call_later(retry, self.release, protocol, later)
            return
        # A head a split was waiting to see whole is not in h11's buffer: it goes too.
        if not self.give_back(protocol, protocol.held or protocol.conn.trailing_data[0]):
            protocol.shutdown()  # no front to go back to: close it, as on shutdown


class QuietServer(uvicorn.Server):
    """uvicorn's server, woken once a second rather than ten times, and at once to stop.

    uvicorn's main loop sleeps 0.1 s between ticks to refresh its date header
    (once a second) and to notice a stop signal. A host runs a front and a
    few workers per region, idle most of the time: 24 regions' fronts and
    workers woke ~700 times a second for nothing. The tick here is the date
    header's own second; a stop signal wakes the loop itself, so a stop
    is noticed as soon as before.
    """

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            # uvicorn refreshes the date on every tenth tick: each of ours is a second.
            counter = (counter + 10) % 864000
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)


class WorkerServer(QuietServer):
    """uvicorn's server, writing out the request log's buffer when told to stop.

    At the signal itself, not only after the graceful stop: uvicorn re-raises
    the signal once it has stopped (the process ends there), and a fleet going
    down kills what is left of a region's process group soon after.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        host: WorkerHost,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(config)
        self.host = host
        self.on_shutdown = on_shutdown

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.host.close()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets)
            # After the last response, as uvicorn runs an app's lifespan shutdown.
            if self.on_shutdown is not None:
                await self.on_shutdown()
        finally:
            self.host.close()  # what the last responses added


def serve_host(
    app: ASGIApp,
    uds: str,
    startup: Callable[[], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
    failed: Callable[[Exception], None] | None = None,
) -> None:
    """Serve ``app`` to the connections handed over on the unix socket ``uds``, until SIGTERM.

    ``startup`` runs first, on the serving loop (the applications' lifespans);
    if it raises, ``failed`` is told (and does not return). ``shutdown`` runs
    after the last connection is done.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(uds)
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    tmp = f"{uds}.{os.getpid()}.tmp"
    listening.bind(tmp)
    listening.listen(16)

    async def main() -> None:
        if startup is not None:
            try:
                await startup()
            except Exception as err:
                if failed is None:
                    raise
                failed(err)
        # The front connects once it exists: it is listening, and started, by then.
        os.replace(tmp, uds)
        host = WorkerHost(app)
        config = uvicorn.Config(
            host,
            log_level="warning",
            lifespan="off",
            access_log=False,
            loop="asyncio",
            http="h11",
        )
        config.load()
        server = WorkerServer(config, host, shutdown)
        host.start(config, server.server_state, listening)
        # No listening sockets of its own: uvicorn's server runs the
        # connections it is given (the date header, signals, a graceful stop).
        await server.serve(sockets=[])

    asyncio.run(main())
