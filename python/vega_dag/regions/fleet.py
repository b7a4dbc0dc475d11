"""The local fleet: N region processes of one project on this machine.

State lives in ``<project>/.vega/fleet/``: ``pointers.sqlite`` (the pointer
store), ``regions/<name>.json`` (pid, process group, port, URL of each running
region), ``logs/<name>.log``, ``logs/requests/<name>.jsonl`` (its request log,
``regions.request_log``), and the content-addressed ``bundles/`` and
``layers/`` the workers load. Each region is its own session (process group),
so stopping it stops its zygote and workers too.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

import vega_dag
from vega_dag.config import ProjectConfig
from vega_dag.errors import VegaError
from vega_dag.processes import pid_alive
from vega_dag.regions import FALLBACK_LOAD_TIMEOUT, REGION_NAMES

#: How long ``up`` waits for every region to answer.
START_TIMEOUT = 60.0
#: What a region's prefetch may take to verify a deployment's blobs (and lay
#: out its code) before its worker loads.
PREFETCH_VERIFY_SECONDS = 60.0


class RegionError(VegaError):
    """A region is down, unreachable, or refused a request."""

    def __init__(self, region: str, reason: str) -> None:
        super().__init__(f"region {region}: {reason}")
        self.region = region
        self.reason = reason


@dataclass(frozen=True)
class RegionInfo:
    name: str
    url: str
    pid: int = 0
    pgid: int = 0
    started_at: float = 0.0


def fleet_dir(config: ProjectConfig) -> Path:
    return config.store_dir / "fleet"


Response = tuple[int, dict[str, str], bytes, float]


def _prepare(
    url: str, method: str, body: bytes | None, keep_alive: bool = False
) -> tuple[tuple[str, int], bytes]:
    """(address, request bytes) of one HTTP/1.1 request (the last on its connection, unless
    ``keep_alive``).

    A few lines of HTTP rather than ``http.client``: the regions are ours,
    on loopback, and ``rollback`` is timed from its first instruction.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme != "http":
        raise ValueError(f"not an http:// URL: {url}")
    netloc, slash, path = rest.partition("/")
    path = slash + path if slash else "/"
    host, colon, port = netloc.rpartition(":")
    if not colon or not port.isdigit():
        host, port = netloc, "80"
    host = host.strip("[]")
    data = body or b""
    close = "" if keep_alive else "connection: close\r\n"
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: {netloc}\r\n{close}"
        f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
    )
    return (host, int(port)), head.encode("latin-1") + data


def _loopback(url: str) -> bool:
    # Beyond loopback, regions/remote_http.py (httpx) carries the request.
    from vega_dag.regions.remote_http import is_loopback

    return is_loopback(url)


def _nodelay(sock: socket.socket) -> None:
    # Nagle off on every TCP socket of the path (see handoff.nodelay): a
    # request in more than one segment would wait for the first one's ACK.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _connecting(address: tuple[str, int]) -> socket.socket:
    """A non-blocking socket whose connect to ``address`` has begun (refused: an error)."""
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
    _nodelay(sock)
    sock.setblocking(False)
    code = sock.connect_ex(address)
    if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
        sock.close()
        raise ConnectionRefusedError(code, os.strerror(code))
    return sock


class _Reply:
    """An HTTP/1.1 response read incrementally: ``feed`` until it says it is complete."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.head: tuple[int, dict[str, str]] | None = None
        self.start = 0
        self.length: int | None = None
        self.chunked = False

    def feed(self, data: bytes) -> bool:
        """Whether the response is complete (``b""`` means the peer closed)."""
        self.buf += data
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if not data:
                    raise ConnectionError("the connection closed before a response")
                return False
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise ConnectionError(f"malformed response: {lines[0][:80]!r}")
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            self.head = (int(parts[1]), headers)
            self.start = end + 4
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self.chunked = True
            elif "content-length" in headers:
                self.length = int(headers["content-length"])
        if self.length is not None:
            if len(self.buf) - self.start >= self.length:
                return True
        elif self.chunked:
            if _chunked_end(self.buf, self.start) is not None:
                return True
        else:
            return not data  # unsized: read to the end
        if not data:
            raise ConnectionError("the connection closed mid-response")
        return False

    @property
    def keeps_alive(self) -> bool:
        """Whether the connection may carry another request after this response."""
        assert self.head is not None
        sized = self.length is not None or self.chunked
        return sized and "close" not in self.head[1].get("connection", "").lower()

    def result(self, seconds: float) -> Response:
        assert self.head is not None
        body = bytes(self.buf[self.start :])
        if self.length is not None:
            body = body[: self.length]
        elif self.chunked:
            body = _dechunk(body)
        return self.head[0], self.head[1], body, seconds


def _chunked_end(data: bytes | bytearray, pos: int) -> int | None:
    """Where the chunked body starting at ``pos`` ends, or None while it is not all in."""
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return None
        try:
            size = int(bytes(data[pos:end]).split(b";")[0].strip() or b"0", 16)
        except ValueError:
            raise ConnectionError("malformed chunked response") from None
        if size == 0:
            # The last chunk, then trailers (usually none) up to an empty line.
            stop = data.find(b"\r\n\r\n", end)
            return None if stop < 0 else stop + 4
        pos = end + 2 + size + 2
        if pos > len(data):
            return None


def _dechunk(data: bytes) -> bytes:
    out: list[bytes] = []
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise ConnectionError("malformed chunked response")
        size = int(data[pos:end].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2


def request(
    url: str, method: str = "GET", body: bytes | None = None, timeout: float = 5.0
) -> Response:
    """One HTTP request: (status, lower-case headers, body, seconds).

    TimeoutError when ``timeout`` passes, another OSError when the region
    cannot be reached or answers something that is not HTTP.
    """
    if not _loopback(url):
        from vega_dag.regions import remote_http

        return remote_http.request(url, method, body, timeout)[0]
    address, payload = _prepare(url, method, body)
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    with socket.create_connection(address, timeout=timeout) as sock:
        _nodelay(sock)
        sock.sendall(payload)
        reply = _Reply()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(left)
            if reply.feed(sock.recv(65536)):
                return reply.result(time.perf_counter() - started)


def _send_some(sel: selectors.BaseSelector, sock: socket.socket, state: list) -> bool:
    """Send what the socket takes of ``state[1]`` (the request's unsent bytes); whether it
    is all sent now (the socket then waits for its answer). A failed connect raises."""
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise ConnectionRefusedError(code, os.strerror(code))
    sent = sock.send(state[1])
    state[1] = state[1][sent:]
    if state[1]:
        return False
    sel.modify(sock, selectors.EVENT_READ, state)
    return True


def request_many(
    requests: list[tuple[str, str, bytes | None]],
    timeout: float = 5.0,
    meanwhile: Callable[[], object] | None = None,
) -> list[Response | OSError]:
    """Many requests at once, from this one thread: each result or its error, in order.

    (url, method, body) each; a request unanswered after ``timeout`` gets a TimeoutError.
    ``meanwhile`` runs once every request has been sent (or has failed), before
    the answers are read, and ``timeout`` counts from its end: a request the
    servers answer only once something has happened (a region's ``/__vega/wait``
    before a pointer write) is already there when it happens. What it raises is
    raised, every connection closed.
    """
    results: list[Response | OSError | None] = [None] * len(requests)
    remote = [i for i, (url, _, _) in enumerate(requests) if not _loopback(url)]
    if remote:
        from vega_dag.regions import remote_http

        got = remote_http.request_many([requests[i] for i in remote], timeout)
        for i, answer in zip(remote, got, strict=True):
            results[i] = answer if isinstance(answer, OSError) else answer[0]
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    #: requests not yet sent in full (``meanwhile`` runs when none are left)
    unsent = 0
    try:
        for i, (url, method, body) in enumerate(requests):
            if results[i] is not None:
                continue  # answered through httpx above
            try:
                address, payload = _prepare(url, method, body)
                sock = _connecting(address)
            except (OSError, ValueError) as err:
                results[i] = err if isinstance(err, OSError) else OSError(str(err))
                continue
            sel.register(sock, selectors.EVENT_WRITE, [i, memoryview(payload), _Reply()])
            unsent += 1
        while sel.get_map() or meanwhile is not None:
            if meanwhile is not None and unsent == 0:
                then, meanwhile = meanwhile, None
                then()
                deadline = time.monotonic() + timeout
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, events in sel.select(left):
                ready, state = key.fileobj, key.data
                assert isinstance(ready, socket.socket)
                sock = ready
                i = state[0]
                try:
                    if events & selectors.EVENT_WRITE:
                        if _send_some(sel, sock, state):
                            unsent -= 1
                        continue
                    if state[2].feed(sock.recv(65536)):
                        results[i] = state[2].result(time.perf_counter() - started)
                except BlockingIOError:
                    continue
                except OSError as err:
                    results[i] = err
                    if state[1]:
                        unsent -= 1  # failed before it was sent in full
                if results[i] is not None:
                    sel.unregister(sock)
                    sock.close()
        if meanwhile is not None:  # timed out before every request was sent: run it still
            meanwhile()
    finally:
        for key in list(sel.get_map().values()):
            i = key.data[0]
            results[i] = TimeoutError("timed out")
            sel.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        sel.close()
    return [r if r is not None else TimeoutError("timed out") for r in results]


def _first_chunk(reply: _Reply) -> bytes | None:
    """The first chunk of a chunked response whose head is in, once it is all in."""
    buf, pos = reply.buf, reply.start
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    try:
        size = int(bytes(buf[pos:end]).split(b";")[0].strip() or b"0", 16)
    except ValueError:
        raise ConnectionError("malformed chunked response") from None
    if len(buf) < end + 2 + size:
        return None
    return bytes(buf[end + 2 : end + 2 + size])


def hold_many(
    urls: list[str],
    hold_timeout: float,
    timeout: float,
    meanwhile: Callable[[list[bytes | Response | OSError]], object],
) -> list[Response | OSError]:
    """GETs answered in two parts (``/__vega/hold``), from this one thread.

    ``meanwhile(firsts)`` runs once every request has its first part (the
    first chunk of a chunked answer: ``bytes``) or its whole answer (a
    ``Response``, or an OSError: it failed, or ``hold_timeout`` passed); what
    it raises is raised, every connection closed. Then each answer is read
    in full (``timeout`` counting from the end of ``meanwhile``): its body is
    every chunk, the first one included.
    """
    results: list[Response | OSError | None] = [None] * len(urls)
    firsts: list[bytes | None] = [None] * len(urls)
    started = time.perf_counter()
    deadline = time.monotonic() + hold_timeout
    sel = selectors.DefaultSelector()
    pending: Callable[[list[bytes | Response | OSError]], object] | None = meanwhile
    try:
        for i, url in enumerate(urls):
            try:
                address, payload = _prepare(url, "GET", None)
                sock = _connecting(address)
            except (OSError, ValueError) as err:
                results[i] = err if isinstance(err, OSError) else OSError(str(err))
                continue
            sel.register(sock, selectors.EVENT_WRITE, [i, memoryview(payload), _Reply()])
        while sel.get_map() or pending is not None:
            if pending is not None and all(
                r is not None or f is not None for r, f in zip(results, firsts, strict=True)
            ):
                then, pending = pending, None
                then([f if f is not None else r for r, f in zip(results, firsts, strict=True)])  # type: ignore[misc]
                deadline = time.monotonic() + timeout
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                if pending is None:
                    break
                for key in list(sel.get_map().values()):
                    i = key.data[0]
                    if firsts[i] is None:  # never held: it counts as failed
                        results[i] = TimeoutError("timed out")
                        sel.unregister(key.fileobj)
                        key.fileobj.close()  # type: ignore[union-attr]
                continue
            for key, events in sel.select(left):
                ready, state = key.fileobj, key.data
                assert isinstance(ready, socket.socket)
                sock = ready
                i = state[0]
                try:
                    if events & selectors.EVENT_WRITE:
                        _send_some(sel, sock, state)
                        continue
                    reply = state[2]
                    if reply.feed(sock.recv(65536)):
                        results[i] = reply.result(time.perf_counter() - started)
                    elif firsts[i] is None and reply.head is not None and reply.chunked:
                        firsts[i] = _first_chunk(reply)
                except BlockingIOError:
                    continue
                except OSError as err:
                    results[i] = err
                if results[i] is not None:
                    sel.unregister(sock)
                    sock.close()
    finally:
        for key in list(sel.get_map().values()):
            results[key.data[0]] = TimeoutError("timed out")
            sel.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        sel.close()
    return [r if r is not None else TimeoutError("timed out") for r in results]


class Connection:
    """A kept-alive HTTP/1.1 connection to one region: one request after another on one socket.

    What browsers, API clients and load balancers use, so what the gates
    probe with too. A GET that finds the connection closed by the region
    before any of its answer arrived (an idle connection the region let go)
    is sent again once on a new connection, as HTTP clients do.
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.sock: socket.socket | None = None
        #: requests answered on a connection that was already open
        self.reused = 0

    def request(
        self, path: str, method: str = "GET", body: bytes | None = None, timeout: float = 5.0
    ) -> Response:
        """(status, lower-case headers, body, seconds), as ``request``; errors as ``request``."""
        address, payload = _prepare(self.url + path, method, body, keep_alive=True)
        if self.sock is not None:
            try:
                answer = self._exchange(payload, time.perf_counter(), timeout)
            except _Stale as err:
                if method not in ("GET", "HEAD"):
                    raise ConnectionError(str(err)) from None
            else:
                self.reused += 1
                return answer
        started = time.perf_counter()
        try:
            self.sock = socket.create_connection(address, timeout=timeout)
            _nodelay(self.sock)
            return self._exchange(payload, started, timeout)
        except _Stale as err:
            raise ConnectionError(str(err)) from None

    def _exchange(self, payload: bytes, started: float, timeout: float) -> Response:
        assert self.sock is not None
        deadline = time.monotonic() + timeout
        reply = _Reply()
        try:
            self.sock.sendall(payload)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out")
                self.sock.settimeout(left)
                if reply.feed(self.sock.recv(65536)):
                    break
        except (ConnectionError, OSError) as err:
            self.close()  # in an unknown state: never reused
            if reply.buf or isinstance(err, TimeoutError):
                raise
            raise _Stale(str(err) or type(err).__name__) from None
        if not reply.keeps_alive:
            self.close()
        return reply.result(time.perf_counter() - started)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _Stale(ConnectionError):
    """The connection was closed before any of the answer came: nothing was processed."""


def _record_alive(path: Path) -> bool:
    try:
        return pid_alive(int(json.loads(path.read_text())["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return False


class LocalFleet:
    """Region processes on loopback ports; the first RegionTarget implementation."""

    name = "local"

    def __init__(self, config: ProjectConfig) -> None:
        self.config = config
        self.dir = fleet_dir(config)
        self.db_path = self.dir / "pointers.sqlite"

    # -- discovery ------------------------------------------------------------
    def regions(self) -> list[RegionInfo]:
        """The running regions, in fleet order (records of dead ones are removed)."""
        found = []
        for path in sorted((self.dir / "regions").glob("*.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not pid_alive(rec["pid"]):
                path.unlink(missing_ok=True)
                continue
            found.append(
                RegionInfo(rec["name"], rec["url"], rec["pid"], rec["pgid"], rec["started_at"])
            )
        order = {name: i for i, name in enumerate(REGION_NAMES)}
        return sorted(found, key=lambda r: (order.get(r.name, len(order)), r.name))

    # -- lifecycle ------------------------------------------------------------
    def up(self, count: int) -> tuple[list[RegionInfo], bool]:
        """Start ``count`` regions unless some run; (regions, whether they were started).

        What a deploy calls: it starts a fleet, never a part of one (a region
        that is down is the supervisor's to bring back, or ``start_missing``'s,
        and the deploy's ``on_region_down`` policy says what to do meanwhile).
        """
        running = self.regions()
        if running:
            return running, False
        regions, _ = self.start_missing(count)
        return regions, True

    def wanted(self) -> list[str]:
        """The regions of this fleet (what ``up`` started), running or not."""
        from vega_dag.regions.supervisor import read_wanted

        wanted = read_wanted(self.dir)
        if wanted is None:  # a fleet started before there was a supervisor
            return [r.name for r in self.regions()]
        return wanted

    def start_missing(self, count: int) -> tuple[list[RegionInfo], list[str]]:
        """Start the fleet's regions that do not run (all ``count``, when none does).

        (the running regions, the names started). A fleet keeps the size it
        was started with until ``down``.
        """
        from vega_dag.regions import supervisor

        running = self.regions()
        wanted = self.wanted() if running else []
        if not wanted:
            if not 1 <= count <= len(REGION_NAMES):
                raise RegionError("fleet", f"a local fleet has 1 to {len(REGION_NAMES)} regions")
            wanted = list(REGION_NAMES[:count])
        missing = [n for n in wanted if n not in {r.name for r in running}]
        from vega_dag.rollout.jetstream import pointers_url
        from vega_dag.rollout.pointers import PointerStore

        pointers = pointers_url(self.config)
        if pointers is None:
            PointerStore(self.db_path).close()  # the schema exists before any region polls it
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.dir / "regions").mkdir(parents=True, exist_ok=True)
        supervisor.write_wanted(self.dir, wanted)
        env = dict(os.environ)
        # The regions run this very vega-dag, wherever it was imported from.
        here = str(Path(vega_dag.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])
        env.pop("VEGA_DAG_TEST_KILL_AT", None)
        from vega_dag.regions.loader import loader_record

        if not _record_alive(loader_record(self.dir)):
            # The host's loader first: a region that asks before it listens
            # loads with its own zygote instead (see vega_dag.regions.loader).
            self._start("loader", ["vega_dag.regions.loader", "--fleet", str(self.dir)], env)
        state = supervisor.read_state(self.dir)
        if state is None:
            # Its first pass starts every wanted region that does not run.
            args = ["vega_dag.regions.supervisor", "--fleet", str(self.dir)]
            # [tool.vega.observe]: what each region records of its traffic (regions.observe).
            args += ["--observe", msgspec.json.encode(self.config.vega.observe).decode()]
            if pointers is not None:
                # Every region of the fleet watches the same store (a fleet started
                # on one store serves from it until `regions down`).
                args += ["--pointers", pointers]
            self._start("supervisor", [*args, "--store", str(self.config.store_dir)], env)
        elif missing:
            # Now, whatever their backoff: someone asked.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(state["pid"]), signal.SIGHUP)
        if missing:
            self.wait_ready(missing)
        return self.regions(), missing

    def settle(self, regions: list[RegionInfo], timeout: float = 15.0) -> list[RegionInfo]:
        """The running regions, once the ones the supervisor is bringing back answer.

        A deploy asks first: a region killed a moment ago is not "down" for it
        while it is being restarted (for at most ``timeout`` seconds).
        """
        from vega_dag.regions import supervisor

        state = supervisor.read_state(self.dir)
        if state is None:
            return regions
        running = {r.name for r in regions}
        wanted = set(self.wanted())
        soon = time.time() + timeout / 2
        pending = [
            name
            for name, rec in state.get("regions", {}).items()
            if name not in running
            and name in wanted
            and (
                rec.get("state") in ("starting", "restarting")
                or (rec.get("state") == "backoff" and (rec.get("next_start") or 0) <= soon)
            )
        ]
        if pending:
            with contextlib.suppress(RegionError):
                self.wait_ready(pending, timeout)
        return self.regions()

    def down_regions(self, regions: list[RegionInfo]) -> dict[str, str]:
        """The fleet's regions that do not run: name → what the supervisor knows of it."""
        from vega_dag.regions import supervisor

        running = {r.name for r in regions}
        state = supervisor.read_state(self.dir)
        records = state.get("regions", {}) if state else {}
        out = {}
        for name in self.wanted():
            if name in running:
                continue
            rec = records.get(name) or {}
            last = (rec.get("history") or [{}])[-1]
            if state is None:
                why = "no supervisor runs"
            elif rec.get("state") == "backoff" and rec.get("next_start"):
                left = max(0.0, rec["next_start"] - time.time())
                why = f"the supervisor restarts it in {left:.0f}s"
            else:
                why = "the supervisor has not restarted it"
            if last.get("how"):
                why = f"{last['how']}, {rec.get('restarts', 0)} restart(s); {why}"
            out[name] = why
        return out

    def converge_later(self, skipped: list[str], deployment: str, moved: list[str]) -> None:
        """Remember that ``skipped`` should serve ``deployment`` once they are back.

        Called holding the deploy lock; the supervisor converges each one once
        it serves again (see vega_dag.regions.supervisor).
        """
        from vega_dag.regions import supervisor

        pending = supervisor.read_converge(self.dir)
        for name in moved:
            pending.pop(name, None)
        for name in skipped:
            pending[name] = deployment
        supervisor.write_converge(self.dir, pending)

    def _start(self, log_name: str, module_args: list[str], env: dict[str, str]) -> None:
        """``python -m MODULE_ARGS`` in its own session, logging to logs/LOG_NAME.log."""
        from vega_dag.processes import spawn_detached

        log = self.dir / "logs" / f"{log_name}.log"
        spawn_detached([sys.executable, "-m", *module_args], log, self.dir, env)

    def wait_ready(
        self, names: tuple[str, ...] | list[str], timeout: float = START_TIMEOUT
    ) -> None:
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for info in self.regions():
                if info.name in pending:
                    with contextlib.suppress(OSError):
                        if request(info.url + "/__vega/status", timeout=1.0)[0] == 200:
                            pending.discard(info.name)
            if not pending:
                return
            if time.monotonic() > deadline:
                log = self.dir / "logs" / f"{sorted(pending)[0]}.log"
                raise RegionError(
                    ", ".join(sorted(pending)), f"did not start within {timeout:.0f}s ({log})"
                )
            time.sleep(0.05)

    def down(self) -> list[str]:
        """Stop every region (and its zygote and workers); the names stopped."""
        from vega_dag.regions import supervisor

        # The supervisor first, so it restarts nothing it sees stop: without
        # wanted.json it starts nothing, and it is gone before any region is.
        supervisor.wanted_path(self.dir).unlink(missing_ok=True)
        state = supervisor.read_state(self.dir)
        if state is not None:
            pid = int(state["pid"])
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5.0
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        supervisor.state_path(self.dir).unlink(missing_ok=True)
        regions = self.regions()
        for info in regions:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(info.pgid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(pid_alive(r.pid) for r in regions):
            time.sleep(0.05)
        for info in regions:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(info.pgid, signal.SIGKILL)
            (self.dir / "regions" / f"{info.name}.json").unlink(missing_ok=True)
        self._stop_loader()
        import shutil

        from vega_dag.unix_rpc import socket_dir

        shutil.rmtree(socket_dir(self.dir), ignore_errors=True)
        return [r.name for r in regions]

    def _stop_loader(self) -> None:
        from vega_dag.regions.loader import loader_record

        record = loader_record(self.dir)
        try:
            info = json.loads(record.read_text())
        except (FileNotFoundError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(info["pgid"]), signal.SIGKILL)
        record.unlink(missing_ok=True)

    # -- talking to regions ---------------------------------------------------
    def status(self, region: RegionInfo, timeout: float = 2.0) -> dict:
        try:
            code, _, data, _ = request(region.url + "/__vega/status", timeout=timeout)
        except OSError as err:
            raise RegionError(region.name, f"unreachable at {region.url}: {err}") from None
        if code != 200:
            raise RegionError(region.name, f"status answered {code}")
        return json.loads(data)

    def statuses(self, regions: list[RegionInfo]) -> dict[str, dict | RegionError]:
        answers = request_many(
            [(r.url + "/__vega/status", "GET", None) for r in regions], timeout=2.0
        )
        out: dict[str, dict | RegionError] = {}
        for r, answer in zip(regions, answers, strict=True):
            if isinstance(answer, OSError):
                out[r.name] = RegionError(r.name, f"unreachable at {r.url}: {answer}")
            elif answer[0] != 200:
                out[r.name] = RegionError(r.name, f"status answered {answer[0]}")
            else:
                out[r.name] = json.loads(answer[2])
        return out

    def prefetch(
        self,
        region: RegionInfo,
        manifest: str,
        timeout: float | None = None,
        *,
        wait: bool = True,
        load_timeout: float | None = None,
        deployment: str | None = None,
    ) -> dict:
        """Ask the region to verify every blob of ``manifest`` and load its worker.

        With ``wait`` (the default) the answer comes once the worker is loaded
        and warm; without, once the blobs are verified, the worker loading in
        the background (a later ``prefetch`` with ``wait`` collects it). The
        worker must load within ``load_timeout`` seconds (None: the region's
        own limit for loads no deploy asked for, 60).
        """
        return self.prefetch_many(
            [region], manifest, timeout, wait=wait, load_timeout=load_timeout, deployment=deployment
        )[region.name]

    def prefetch_many(
        self,
        regions: list[RegionInfo],
        manifest: str | dict[str, str],
        timeout: float | None = None,
        *,
        wait: bool = True,
        errors: bool = False,
        load_timeout: float | None = None,
        deployment: str | None = None,
    ) -> dict[str, Any]:
        """``prefetch`` in every region at once (``manifest`` may be per region name).

        RegionError for the first region that failed, unless ``errors``: then
        each failed region's RegionError is its value. ``timeout`` (of the
        answers) defaults to what verifying and loading may take.
        """
        wanted = {
            r.name: manifest if isinstance(manifest, str) else manifest[r.name] for r in regions
        }
        body: dict[str, Any] = {"wait": wait}
        if load_timeout is not None:
            body["load_timeout"] = load_timeout
        if deployment is not None:
            # The region checks the deployment's record is one it may serve
            # (signed by a key it trusts) before it verifies or loads anything.
            body["deployment"] = deployment
        if timeout is None:
            # A region's load is bounded by its load timeout; the host's
            # loader may make it wait for one other load first.
            timeout = PREFETCH_VERIFY_SECONDS + 2 * (load_timeout or FALLBACK_LOAD_TIMEOUT) + 5.0
        answers = request_many(
            [
                (
                    r.url + "/__vega/prefetch",
                    "POST",
                    json.dumps({"manifest": wanted[r.name], **body}).encode(),
                )
                for r in regions
            ],
            timeout=timeout,
        )
        out: dict[str, Any] = {}
        for r, answer in zip(regions, answers, strict=True):
            if isinstance(answer, OSError):
                out[r.name] = RegionError(r.name, f"unreachable at {r.url}: {answer}")
                continue
            code, _, data, _ = answer
            try:
                payload = json.loads(data)
            except ValueError:
                payload = {"error": data[:200].decode(errors="replace")}
            if code != 200 or not payload.get("ok"):
                # The region's message names what did not load: the route and
                # what happened, or the blob that is missing or damaged.
                out[r.name] = RegionError(r.name, str(payload.get("error")))
            else:
                out[r.name] = payload
        if not errors:
            for value in out.values():
                if isinstance(value, RegionError):
                    raise value
        return out

    def wait_serving(
        self, region: RegionInfo, deployment: str | None, timeout: float = 30.0
    ) -> float:
        """Seconds until the region serves ``deployment``; RegionError if it does not."""
        value = self.wait_serving_many([(region, deployment)], timeout)[region.name]
        if isinstance(value, RegionError):
            raise value
        return value

    def wait_serving_many(
        self,
        pairs: list[tuple[RegionInfo, str | None]],
        timeout: float = 30.0,
        meanwhile: Callable[[], object] | None = None,
    ) -> dict[str, float | RegionError]:
        """Seconds until each region serves its deployment (or why it does not).

        One request per region, answered by the region when it has switched
        (it re-reads its pointer on the request, so the switch does not wait
        for its next poll). With ``meanwhile`` (the pointer write that makes
        them switch), the requests are sent first and ``meanwhile`` runs once
        every region has its request, the seconds counting from its end: the
        regions answer as they switch, with no request left to make, accept
        and parse after the write. Only for regions not on their deployment
        yet (one already on it answers at once). What it raises is raised.
        """
        started = time.perf_counter()
        write = meanwhile

        def written() -> None:
            nonlocal started
            assert write is not None
            write()
            started = time.perf_counter()

        answers = request_many(
            [
                (
                    f"{r.url}/__vega/wait?deployment={d or 'none'}&timeout={timeout:g}",
                    "GET",
                    None,
                )
                for r, d in pairs
            ],
            timeout=timeout + 5.0,
            meanwhile=None if write is None else written,
        )
        out: dict[str, float | RegionError] = {}
        for (r, d), answer in zip(pairs, answers, strict=True):
            if not isinstance(answer, OSError) and answer[0] == 404:
                # A region started by an older vega-dag: poll its status.
                try:
                    out[r.name] = self._poll_serving(r, d, timeout)
                except RegionError as err:
                    out[r.name] = err
                continue
            if isinstance(answer, OSError):
                why = f"unreachable at {r.url}: {answer}"
            else:
                try:
                    payload = json.loads(answer[2])
                except ValueError:
                    payload = {}
                if answer[0] == 200 and payload.get("ok"):
                    out[r.name] = time.perf_counter() - started
                    continue
                why = payload.get("error") or f"answered {answer[0]}"
                if answer[0] == 502:
                    out[r.name] = RegionError(r.name, f"cannot serve {d}: {why}")
                    continue
            out[r.name] = RegionError(r.name, f"not serving {d} after {timeout:.0f}s: {why}")
        return out

    def hold_and_wait_many(
        self,
        items: list[tuple[RegionInfo, str | None, str | None]],
        meanwhile: Callable[[], object],
        timeout: float = 30.0,
    ) -> dict[str, float | RegionError]:
        """(region, deployment, its manifest) each: every region loads its manifest, then
        ``meanwhile`` (the pointer write), then each answers once it serves its deployment.

        A prefetch and ``wait_serving_many(…, meanwhile=)`` in one request per
        region (``/__vega/hold``). A region that cannot hold its deployment
        (it would refuse it, or its load failed) raises its RegionError
        before ``meanwhile`` runs; a region of an older vega-dag (no such
        endpoint) is prefetched and waited for as before. Seconds count from
        the end of ``meanwhile``.
        """
        hold_timeout = PREFETCH_VERIFY_SECONDS + 2 * FALLBACK_LOAD_TIMEOUT + 5.0
        urls = [
            f"{r.url}/__vega/hold?deployment={d or 'none'}&timeout={timeout:g}"
            + (f"&manifest={m}" if m else "")
            for r, d, m in items
        ]
        older: list[tuple[RegionInfo, str | None, str | None]] = []
        written = 0.0

        def held(firsts: list[bytes | Response | OSError]) -> None:
            nonlocal written
            for (r, d, m), first in zip(items, firsts, strict=True):
                if isinstance(first, bytes) or (isinstance(first, tuple) and first[0] == 200):
                    continue  # held (a whole 200: held, and already answered in full)
                if isinstance(first, OSError):
                    raise RegionError(r.name, f"unreachable at {r.url}: {first}")
                if first[0] == 404:
                    older.append((r, d, m))
                    continue
                try:
                    payload = json.loads(first[2])
                except ValueError:
                    payload = {"error": first[2][:200].decode(errors="replace")}
                raise RegionError(r.name, str(payload.get("error")))
            groups: dict[str | None, list[tuple[RegionInfo, str]]] = {}
            for r, d, m in older:
                if m is not None:
                    groups.setdefault(d, []).append((r, m))
            for d, held_by in groups.items():  # each region at once, as prefetch_many does
                self.prefetch_many(
                    [r for r, _ in held_by], {r.name: m for r, m in held_by}, deployment=d
                )
            meanwhile()
            written = time.perf_counter()

        answers = hold_many(urls, hold_timeout, timeout + 5.0, held)
        out: dict[str, float | RegionError] = {}
        for (r, d, _), answer in zip(items, answers, strict=True):
            if any(o[0] is r for o in older):
                continue
            if isinstance(answer, OSError):
                out[r.name] = RegionError(r.name, f"unreachable at {r.url}: {answer}")
                continue
            lines = answer[2].splitlines()
            try:
                payload = json.loads(lines[1]) if len(lines) > 1 else {}
            except ValueError:
                payload = {}
            if payload.get("status") == 200 and payload.get("ok"):
                out[r.name] = time.perf_counter() - written
                continue
            why = payload.get("error") or "it did not answer"
            if payload.get("status") == 502:
                out[r.name] = RegionError(r.name, f"cannot serve {d}: {why}")
                continue
            out[r.name] = RegionError(r.name, f"not serving {d} after {timeout:.0f}s: {why}")
        if older:
            out.update(self.wait_serving_many([(r, d) for r, d, _ in older], timeout))
        return out

    def _poll_serving(self, region: RegionInfo, deployment: str | None, timeout: float) -> float:
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        delay = 0.002
        last = None
        while True:
            try:
                status = self.status(region, timeout=2.0)
            except RegionError:
                status = None
            if status is not None:
                if status["deployment"] == deployment:
                    return time.perf_counter() - started
                last = status
            if time.monotonic() > deadline:
                why = (last or {}).get("error") or "it did not switch"
                raise RegionError(
                    region.name, f"not serving {deployment} after {timeout:.0f}s: {why}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
