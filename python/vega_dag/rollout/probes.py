"""A gate's probes, sent from one thread over kept-alive connections, regions interleaved.

Each region of the wave gets its connections (``lanes``: several for a
narrow wave, one each for a wide one), and each lane sends its share of that
region's probes one after another on its kept-alive connection, as an HTTP
client would. One selector multiplexes the lanes: at most ``CONCURRENCY``
probes are in flight, and a lane that has its answer yields to a waiting
lane of another region, its connection kept open for its next probe. This
replaced a pool of 4 threads that each kept one connection per region: on a
wide wave about half the probes opened a new connection (up to 4 per region)
and each paid a thread hand-off.

The answer of one probe is what ``Connection.request`` gives: a GET that
finds its kept-alive connection closed before any of the answer arrived is
sent once more on a new connection (its time counted from that connection);
``TimeoutError`` after ``timeout`` seconds of one attempt; another
``OSError`` when the region cannot be reached or answers something that is
not HTTP.

A streamed response (chunked, or unsized) may never end: server-sent events
do not. Its head and first chunk are an answer: a ``text/event-stream`` one
is taken as soon as its first chunk is in, any other streamed response when
``timeout`` passes with its first chunk in (``Answer.streamed``; its time is
that of the first chunk, and its connection is closed, not kept alive).

Regions beyond loopback (on other hosts) are probed through httpx instead
(regions/remote_http.py): TLS, proxies and a pool are its business.
"""

from __future__ import annotations

import math
import os
import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass, field

from vega_dag.regions.fleet import Response, _connecting, _prepare, _Reply
from vega_dag.regions.remote_http import is_loopback

#: Probes in flight at once. Latency is what a gate measures: more at once than
#: the machine has cores (regions here are local) would measure queueing.
CONCURRENCY = 4


@dataclass
class Answer:
    """One probe's outcome: the response, or the error it met."""

    response: Response | None = None
    error: OSError | None = None
    #: answered on a connection an earlier probe had opened
    kept_alive: bool = False
    #: a streamed response, taken at its first chunk (its end not awaited)
    streamed: bool = False


def first_chunk(reply: _Reply) -> bytes | None:
    """The first chunk of a streamed response's body once it is in (else None)."""
    if reply.head is None or reply.length is not None:
        return None
    if not reply.chunked:
        return bytes(reply.buf[reply.start :]) or None
    end = reply.buf.find(b"\r\n", reply.start)
    if end < 0:
        return None
    try:
        size = int(bytes(reply.buf[reply.start : end]).split(b";")[0].strip() or b"0", 16)
    except ValueError:
        return None
    if size == 0 or len(reply.buf) < end + 2 + size:
        return None
    return bytes(reply.buf[end + 2 : end + 2 + size])


def _event_stream(reply: _Reply) -> bool:
    assert reply.head is not None
    return reply.head[1].get("content-type", "").startswith("text/event-stream")


@dataclass
class _Lane:
    url: str
    jobs: deque[tuple[int, str]]
    sock: socket.socket | None = None
    index: int = -1
    #: the current probe's request, and what of it is still to send
    request: bytes = b""
    payload: memoryview = field(default_factory=lambda: memoryview(b""))
    reply: _Reply = field(default_factory=_Reply)
    started: float = 0.0
    #: when the first chunk of a streamed response came in
    first_at: float = 0.0
    deadline: float = 0.0
    connecting: bool = False
    reused: bool = False
    #: header lines every request of the lane carries
    extra: bytes = b""
    #: the lanes with probes to send and none in flight (shared by all lanes)
    waiting: deque[_Lane] = field(default_factory=deque)


def lanes_per_region(regions: int) -> int:
    return max(1, math.ceil(CONCURRENCY / max(1, regions)))


def probe_all(
    jobs: list[tuple[str, str]], timeout: float, deployment: str | None = None
) -> list[Answer]:
    """GET each (region URL, path) of ``jobs``; their answers, in order.

    ``deployment``: asked for by name (``x-vega-deployment``), so a region
    splitting its requests (``regions.split``) answers the probe from it.
    """
    extra = f"x-vega-deployment: {deployment}\r\n".encode() if deployment else b""
    answers: list[Answer] = [Answer() for _ in jobs]
    by_url: dict[str, list[tuple[int, str]]] = {}
    remote: list[int] = []
    for i, (url, path) in enumerate(jobs):
        if is_loopback(url):
            by_url.setdefault(url.rstrip("/"), []).append((i, path))
        else:
            remote.append(i)
    if remote:
        _probe_remote(jobs, remote, answers, timeout, deployment)
    width = lanes_per_region(len(by_url))
    lanes = [
        _Lane(url, deque(mine[k::width]), extra=extra)
        for url, mine in by_url.items()
        for k in range(min(width, len(mine)))
    ]
    sel = selectors.DefaultSelector()
    waiting = deque(lanes[CONCURRENCY:])
    for lane in lanes:
        lane.waiting = waiting
    try:
        for lane in lanes[:CONCURRENCY]:
            _start(sel, lane, answers, timeout)
        while sel.get_map():
            now = time.monotonic()
            soonest = min(key.data.deadline for key in sel.get_map().values())
            for key, _ in sel.select(max(0.0, soonest - now)):
                _step(sel, key.data, answers, timeout)
            now = time.monotonic()
            for key in list(sel.get_map().values()):
                lane = key.data
                if lane.deadline <= now:
                    _expire(sel, lane, answers, timeout)
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        for lane in lanes:
            _close(sel, lane)
        sel.close()
    return answers


def _probe_remote(
    jobs: list[tuple[str, str]],
    which: list[int],
    answers: list[Answer],
    timeout: float,
    deployment: str | None,
) -> None:
    """The probes of regions beyond loopback, through httpx (regions/remote_http.py)."""
    from vega_dag.regions import remote_http

    headers = {"x-vega-deployment": deployment} if deployment else None
    results = remote_http.request_many(
        [(jobs[i][0].rstrip("/") + jobs[i][1], "GET", None) for i in which], timeout, headers
    )
    for i, result in zip(which, results, strict=True):
        if isinstance(result, OSError):
            answers[i] = Answer(error=result)
        else:
            answers[i] = Answer(result[0], kept_alive=result[1])


def _next(sel: selectors.BaseSelector, lane: _Lane, answers: list[Answer], timeout: float) -> None:
    """After a probe of ``lane``: the next lane waiting for its turn goes, or this one again."""
    if lane.jobs:
        lane.waiting.append(lane)  # its connection stays open for its turn
    else:
        _close(sel, lane)
    if lane.waiting:
        _start(sel, lane.waiting.popleft(), answers, timeout)


def _start(sel: selectors.BaseSelector, lane: _Lane, answers: list[Answer], timeout: float) -> None:
    """Send the lane's next probe, or the next waiting lane's if it has none left."""
    while True:
        while lane.jobs:
            lane.index, path = lane.jobs.popleft()
            try:
                _, payload = _prepare(lane.url + path, "GET", None, keep_alive=True)
            except ValueError as err:
                answers[lane.index] = Answer(error=OSError(str(err)))
                continue
            if lane.extra:
                payload = payload.replace(b"\r\n", b"\r\n" + lane.extra, 1)
            lane.request = payload
            lane.payload = memoryview(payload)
            if lane.sock is not None:
                lane.reused = True
                _send(sel, lane, timeout)
                return
            if _connect(sel, lane, answers, timeout):
                return
        _close(sel, lane)
        if not lane.waiting:
            return
        lane = lane.waiting.popleft()


def _connect(
    sel: selectors.BaseSelector, lane: _Lane, answers: list[Answer], timeout: float
) -> bool:
    """Open the lane's connection for its probe; False (the probe answered) if it cannot be."""
    lane.reused = False
    lane.started = time.perf_counter()
    lane.first_at = 0.0
    lane.deadline = time.monotonic() + timeout
    lane.reply = _Reply()
    try:
        address, _ = _prepare(lane.url, "GET", None)
        sock = _connecting(address)
    except (OSError, ValueError) as err:
        answers[lane.index] = Answer(error=err if isinstance(err, OSError) else OSError(str(err)))
        return False
    lane.sock = sock
    lane.connecting = True
    sel.register(sock, selectors.EVENT_WRITE, lane)
    return True


def _send(sel: selectors.BaseSelector, lane: _Lane, timeout: float) -> None:
    """A request on the lane's open connection: writable at once, so register for it."""
    assert lane.sock is not None
    lane.started = time.perf_counter()
    lane.first_at = 0.0
    lane.deadline = time.monotonic() + timeout
    lane.reply = _Reply()
    lane.connecting = False
    sel.register(lane.sock, selectors.EVENT_WRITE, lane)


def _step(sel: selectors.BaseSelector, lane: _Lane, answers: list[Answer], timeout: float) -> None:
    sock = lane.sock
    assert sock is not None
    try:
        if lane.payload:
            if lane.connecting:
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise ConnectionRefusedError(code, os.strerror(code))
                lane.connecting = False
            sent = sock.send(lane.payload)
            lane.payload = lane.payload[sent:]
            if not lane.payload:
                sel.modify(sock, selectors.EVENT_READ, lane)
            return
        if not lane.reply.feed(sock.recv(65536)):
            if not lane.first_at and first_chunk(lane.reply) is not None:
                lane.first_at = time.perf_counter()
                if _event_stream(lane.reply):
                    _streamed(sel, lane, answers, timeout)  # endless by design
            return
    except BlockingIOError:
        return
    except OSError as err:
        _finish(sel, lane, answers, timeout, error=err)
        return
    _finish(sel, lane, answers, timeout)


def _expire(
    sel: selectors.BaseSelector, lane: _Lane, answers: list[Answer], timeout: float
) -> None:
    """The lane's probe ran out of time: a stream with its first chunk in is answered."""
    if lane.first_at:
        _streamed(sel, lane, answers, timeout)
        return
    reply = lane.reply
    if reply.head is not None and reply.length is None:
        why = f"timed out: status {reply.head[0]}, but no chunk of its streamed body"
    else:
        why = "timed out"
    _finish(sel, lane, answers, timeout, error=TimeoutError(why))


def _streamed(
    sel: selectors.BaseSelector, lane: _Lane, answers: list[Answer], timeout: float
) -> None:
    """Answer the lane's probe with a streamed response's head and first chunk."""
    reply = lane.reply
    assert reply.head is not None and lane.sock is not None
    body = first_chunk(reply) or b""
    response = (reply.head[0], reply.head[1], body, lane.first_at - lane.started)
    answers[lane.index] = Answer(response, kept_alive=lane.reused, streamed=True)
    _close(sel, lane)  # the rest of the stream is still coming: never reused
    lane.first_at = 0.0
    _next(sel, lane, answers, timeout)


def _finish(
    sel: selectors.BaseSelector,
    lane: _Lane,
    answers: list[Answer],
    timeout: float,
    error: OSError | None = None,
) -> None:
    """Record the lane's probe (or retry it once, fresh), then start its next."""
    assert lane.sock is not None
    sel.unregister(lane.sock)
    if error is None:
        answers[lane.index] = Answer(
            lane.reply.result(time.perf_counter() - lane.started), kept_alive=lane.reused
        )
        if not lane.reply.keeps_alive:
            _close(sel, lane)
        _next(sel, lane, answers, timeout)
        return
    stale = not lane.reply.buf and not isinstance(error, TimeoutError)
    _close(sel, lane)  # in an unknown state: never reused
    if stale and lane.reused:
        # The region let an idle connection go before this request reached
        # it: nothing was processed, so it goes again on a new connection.
        lane.payload = memoryview(lane.request)
        if _connect(sel, lane, answers, timeout):
            return
        _next(sel, lane, answers, timeout)
        return
    if stale:
        error = ConnectionError(str(error) or type(error).__name__)
    answers[lane.index] = Answer(error=error)
    _next(sel, lane, answers, timeout)


def _close(sel: selectors.BaseSelector, lane: _Lane) -> None:
    if lane.sock is not None:
        if lane.sock in sel.get_map():
            sel.unregister(lane.sock)
        lane.sock.close()
        lane.sock = None
