"""A region's front process: the region's port, its pointer, its workers.

    python -m vega_dag.regions.server --name fra --fleet DIR --store DIR

It listens on a loopback port and, once a new connection's first request
line is in, hands the connection itself to the worker of the deployment its
pointer references (``handoff``): the worker serves it from then on, as the
application's own server would, adding ``x-vega-region`` and
``x-vega-deployment`` to every response. The front answers only its admin
endpoints and the region's own errors (no deployment, no worker), each on a
connection that then closes. It re-reads its pointer when a pointer write
wakes it (``regions.wakeup``: inotify on a file the store touches after each
commit) and polls it every 200 ms as the fallback (``PRAGMA data_version``
first, so an idle poll reads no table), and switches only to a deployment
whose worker has loaded and verified everything: while a new one loads, the
old one keeps serving. The previous deployment's worker stays
running, so a rollback is a pointer read away.

A weighted pointer splits the region's requests between two deployments,
both warm (``regions.split``): the front decides for a connection's first
request, the worker holding it for each later one, and a request for the
other side comes back to the front, which hands it on.

A switch takes effect for every request that begins after it, on new and
kept-alive connections alike: the old worker hands its idle connections back
at once and each busy one once its response is complete (in-flight requests
finish, answered by the deployment they began on), and the front routes them
to the new worker. No connection is closed by a switch.

Admin endpoints (under ``/__vega/``):

- ``GET status``;
- ``POST prefetch`` (``{"manifest": digest, "wait": bool, "load_timeout": s}``):
  verify every blob of the manifest (and lay out its code once per fleet),
  then start loading its worker; answered once the worker is loaded and warm,
  or, with ``"wait": false``, as soon as the blobs are verified (the worker
  keeps loading in the background; a later prefetch with ``"wait": true``
  reports whether it loaded, without loading again if it did not). A worker
  that has not loaded within ``load_timeout`` seconds (default 60), or exits
  while loading, fails the prefetch with a message naming the route it was
  loading and what happened (``regions.loading``);
- ``GET wait?deployment=ID&timeout=S``: re-read the pointer now, then answer
  once the region serves ``ID`` (200), failed to load it (502) or after
  ``S`` seconds (504). One request instead of polling ``status``;
- ``GET hold?deployment=ID&manifest=M&timeout=S``: a prefetch of M (with
  ``wait``, naming ID), then a wait for ID, in one chunked answer: its first
  line once the region holds M, its second once it serves ID (``Region.hold``;
  what a rollback asks, its pointer write between the two lines);
- ``GET metrics``: Prometheus metrics, the front's and its workers' (``observe``);
- ``POST flush``: every worker writes out its request log's buffer, answered
  once they have (a bake reads a window that ends now: ``rollout.bake``);
- ``POST observe`` (``{"metrics": bool, "request_log": bool}``, either or
  both): what the region records from now on, until it restarts (then
  ``[tool.vega.observe]`` again). To shed the cost under load, and what the
  observe bench flips to compare one region with itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from uvicorn.protocols.http.h11_impl import H11Protocol

from vega_dag.processes import pid_alive
from vega_dag.regions import DEPLOYMENT_HEADER, REGION_HEADER
from vega_dag.regions.handoff import Channel, adopt, hand_over, is_admin, nodelay
from vega_dag.regions.loader import FALLBACK_LOAD_TIMEOUT
from vega_dag.regions.loading import (
    clear_trail,
    describe_failure,
    dump_and_kill,
    wait_exit_record,
)
from vega_dag.regions.runtime import Receive, Scope, Send, read_body, send_bytes
from vega_dag.regions.split import Split, head_complete
from vega_dag.unix_rpc import socket_dir

#: How often the pointer is polled. A pointer write wakes the region at once
#: (``regions.wakeup``); the poll is the fallback for a wake-up that never
#: came, and idle polls of 24 regions every 20 ms cost a third of a core.
#: ``VEGA_DAG_POINTER_POLL_S`` overrides it (the wake-up tests set an hour).
POLL_SECONDS = 0.2


def _poll_seconds() -> float:
    """The poll interval: ``VEGA_DAG_POINTER_POLL_S`` if it is a positive number."""
    try:
        value = float(os.environ.get("VEGA_DAG_POINTER_POLL_S") or POLL_SECONDS)
    except ValueError:
        return POLL_SECONDS
    return min(value, 86400.0) if value > 0 else POLL_SECONDS


#: A worker that has not loaded in this long is given up on, unless a
#: prefetch asked for another time (a deploy asks for the project's
#: ``load_timeout_s``; this is for loads no deploy asked for).
LOAD_TIMEOUT = FALLBACK_LOAD_TIMEOUT
#: Longest a prefetch may ask for.
MAX_LOAD_TIMEOUT = 3600.0
#: A new connection that sends no request line in this long is closed.
FIRST_LINE_TIMEOUT = 30.0
#: Read at most this much looking for the first request line, then hand over anyway.
FIRST_LINE_LIMIT = 16 * 1024
#: What the front's own answers carry: each is the last on its connection, so a
#: kept-alive connection is only ever held by a worker.
_FRONT_HEADERS = [("connection", "close")]


#: Admin endpoints that only read, answered on any address the front listens
#: on (the gates' probes and load balancers use them); every other one (prefetch,
#: flush, observe) answers only a request that came in on loopback.
PUBLIC_ADMIN = frozenset({"/__vega/status", "/__vega/wait", "/__vega/metrics"})


def on_loopback(scope: Scope) -> bool:
    """Whether the request came in on a loopback address (or a unix socket)."""
    import ipaddress

    server = scope.get("server")
    if not server or not server[0] or str(server[0]).startswith("/"):
        return True  # a unix socket
    try:
        address = ipaddress.ip_address(str(server[0]).split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


class WorkerLoadError(Exception):
    pass


class FrontMetrics:
    """The region's own metrics: worker loads and failures, the pointer's generation."""

    def __init__(self, region: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        from vega_dag.regions.observe import Window

        self.registry = CollectorRegistry(auto_describe=False)
        labels = ["region"]
        self.loads = Counter(
            "vega_worker_loads",
            "Worker loads finished, by outcome (loaded, failed).",
            ["region", "outcome"],
            registry=self.registry,
        )
        self.exits = Counter(
            "vega_worker_failures",
            "Loaded workers that went away without the region stopping them.",
            labels,
            registry=self.registry,
        )
        self.workers = Gauge(
            "vega_workers", "Loaded workers running.", labels, registry=self.registry
        )
        self.generation = Gauge(
            "vega_pointer_generation",
            "Generation of the pointer the region serves.",
            labels,
            registry=self.registry,
        )
        self.switches = Counter(
            "vega_switches",
            "Switches to the deployment its pointer references.",
            labels,
            registry=self.registry,
        )
        self.window = Window()
        # Every series from the start, at zero: "no failures" is a sample, not an absence.
        for outcome in ("loaded", "failed"):
            self.loads.labels(region, outcome)
        self.exits.labels(region)
        self.switches.labels(region)


@dataclass
class Zygote:
    pid: int
    stdin: Any
    stdout: Any


def fork_zygote(listening: socket.socket) -> Zygote:
    """Fork the zygote from this process before its event loop starts.

    This process has already imported the serving stack, so the zygote costs
    a fork rather than an interpreter start.
    """
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            listening.close()
            os.dup2(to_child, 0)
            os.dup2(from_child, 1)
            for fd in (to_child, from_parent, to_parent, from_child):
                os.close(fd)
            from vega_dag.regions import zygote

            zygote.main()
        finally:
            os._exit(0)
    os.close(to_child)
    os.close(from_child)
    return Zygote(pid, os.fdopen(from_parent, "w"), os.fdopen(to_parent, "r"))


@dataclass
class WorkerHandle:
    manifest: str
    uds: str
    err: str
    pid: int = 0
    #: the handoff channel, once the worker is loaded and listening
    channel: Channel | None = None
    ready: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    load_timeout: float = LOAD_TIMEOUT
    #: stopped by the region (not a failure when its channel closes)
    killed: bool = False


def _split_of(
    deployment: str | None,
    manifest: str | None,
    weight: int,
    baseline: str | None,
    baseline_manifest: str | None,
    rollout: dict,
) -> Split | None:
    """The split a weighted pointer asks for, or None when it gives every request to one side.

    The sticky names are the deploy's (``[tool.vega.rollout]`` in its config snapshot).
    """
    if not (deployment and manifest and baseline and baseline_manifest and 0 <= weight < 100):
        return None
    header, cookie = rollout.get("sticky_header"), rollout.get("sticky_cookie")
    return Split(
        weight,
        deployment,
        manifest,
        baseline,
        baseline_manifest,
        header.lower().encode("latin-1") if header else None,
        cookie.encode("latin-1") if cookie else None,
    )


class Region:
    def __init__(
        self,
        name: str,
        fleet: Path,
        store: Path,
        observe: dict | None = None,
        pointers: str | None = None,
    ) -> None:
        self.name = name
        self.fleet = fleet
        self.store = store
        self.db_path = fleet / "pointers.sqlite"
        #: the pointer store's URL (NATS JetStream), or None: the fleet's SQLite file
        self.pointers = pointers
        #: the JetStream buckets, once connected (rollout.jetstream.Buckets)
        self._nats: Any = None
        #: deployment → its record, as the deployments bucket first said (what is
        #: signed in it never changes; a record altered since is not believed)
        self._records: dict[str, dict] = {}
        self.sockets = socket_dir(fleet)
        self.sockets.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run_dir = fleet / "run"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.workers: dict[str, WorkerHandle] = {}
        #: (deployment, manifest, generation) being served, or None
        self.serving: tuple[str, str, int] | None = None
        #: with a weighted pointer: how ``serving`` shares the requests with its baseline
        self.split: Split | None = None
        self.previous: str | None = None
        self.prefetched: str | None = None
        self.target: tuple[str | None, str | None, int, Split | None] | None = None
        self.error: str | None = None
        self.started_at = time.time()
        self.switched_at: float | None = None
        self.zygote: Zygote | None = None
        self.zygote_lock: asyncio.Lock | None = None
        self.tasks: set[asyncio.Task] = set()
        #: manifests whose blobs this region has verified (and laid out)
        self.verified: set[str] = set()
        #: manifest → the load timeout its last prefetch asked for
        self.load_timeouts: dict[str, float] = {}
        #: set (and replaced) whenever what the region serves, or its error, changes
        self.changed: asyncio.Event | None = None
        self.db: sqlite3.Connection | None = None
        #: the public keys this region trusts (rollout.signing; read lazily)
        self.trust: Any = None
        #: (uvicorn config, server state) of this front, for the connections workers hand back
        self.http: tuple[Any, Any] | None = None
        #: [tool.vega.observe], as the fleet started the region with it
        self.observe = {"metrics": True, "request_log": True, **(observe or {})}
        self.metrics: FrontMetrics | None = None
        if self.observe["metrics"]:
            self.metrics = FrontMetrics(name)
        #: replies awaited from workers (``op: metrics``), by ask number
        self._asks: dict[int, asyncio.Future] = {}
        self._ask = 0

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        self.zygote_lock = asyncio.Lock()
        self.changed = asyncio.Event()
        self._spawn(self.watch() if self.pointers is None else self.watch_nats())
        if self.metrics is not None:
            self._spawn(self.sample())

    def _notify(self) -> None:
        assert self.changed is not None
        self.changed.set()
        self.changed = asyncio.Event()

    def _zygote_call(self, request: dict) -> int:
        assert self.zygote is not None
        self.zygote.stdin.write(json.dumps(request) + "\n")
        self.zygote.stdin.flush()
        line = self.zygote.stdout.readline()
        if not line:
            raise WorkerLoadError(f"the region's zygote is gone (see {self.log_hint})")
        return int(json.loads(line)["pid"])

    def _worker_call(self, request: dict) -> int:
        """A worker's pid: cloned by the host's loader, else forked by this region's zygote.

        WorkerLoadError when the loader's template did not load the deployment.
        """
        from vega_dag.regions.loader import TemplateLoadError, request_worker

        # The loader answers once its template has loaded (or given up), and
        # may be busy with another region's first request for as long.
        wait = 2 * request["load_timeout"] + 5.0
        try:
            pid = request_worker(
                self.fleet, {**request, "owner": os.getpid(), "log": self.log_hint}, wait
            )
        except TemplateLoadError as err:
            raise WorkerLoadError(str(err)) from None
        return pid if pid is not None else self._zygote_call(request)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for handle in list(self.workers.values()):
            self._kill(handle)
        if self.zygote is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.zygote.pid, signal.SIGKILL)

    # -- workers --------------------------------------------------------------
    async def ensure_worker(self, manifest: str, retry: bool = True) -> tuple[WorkerHandle, bool]:
        """The loaded worker for ``manifest`` (and whether it was already loaded).

        Without ``retry``, a load that failed is not tried again: its
        WorkerLoadError is raised (a prefetch collecting the load it started).
        """
        handle = self.workers.get(manifest)
        if handle is not None and handle.ready.done():
            if handle.ready.exception() is None and self._alive(handle):
                return handle, True
            if not retry and isinstance(handle.ready.exception(), WorkerLoadError):
                raise handle.ready.exception()  # type: ignore[misc]
            self.workers.pop(manifest, None)
            handle = None
        if handle is None:
            handle = self._new_worker(manifest)
            handle.load_timeout = self.load_timeouts.get(manifest, LOAD_TIMEOUT)
            self.workers[manifest] = handle
            self._spawn(self._load(handle))
        await asyncio.shield(handle.ready)
        return handle, False

    def _new_worker(self, manifest: str) -> WorkerHandle:
        tag = manifest.rpartition(":")[2][:16]
        uds = str(self.sockets / f"{self.name}-{tag}.sock")
        err = str(self.run_dir / f"{self.name}-{tag}.err")
        return WorkerHandle(manifest=manifest, uds=uds, err=err)

    async def _load(self, handle: WorkerHandle) -> None:
        try:
            await self._start_worker(handle)
        except Exception as err:
            self._kill(handle)
            if not handle.ready.done():
                handle.ready.set_exception(WorkerLoadError(str(err)))
                handle.ready.exception()  # retrieved: no "never retrieved" warning
            if self.metrics is not None:
                self.metrics.loads.labels(self.name, "failed").inc()
        else:
            handle.seconds = time.monotonic() - handle.started
            handle.ready.set_result(True)
            if self.metrics is not None:
                self.metrics.loads.labels(self.name, "loaded").inc()

    async def _start_worker(self, handle: WorkerHandle) -> None:
        for stale in (handle.uds, handle.err):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        clear_trail(handle.err)
        request = {
            "store": str(self.store),
            "fleet": str(self.fleet),
            "manifest": handle.manifest,
            "uds": handle.uds,
            "err": handle.err,
            "load_timeout": handle.load_timeout,
            "since": handle.started,
        }
        assert self.zygote_lock is not None
        async with self.zygote_lock:
            loop = asyncio.get_running_loop()
            handle.pid = await loop.run_in_executor(None, self._worker_call, request)
        deadline = time.monotonic() + handle.load_timeout
        delay = 0.002
        while True:
            if os.path.exists(handle.err):
                clear_trail(handle.err)
                raise WorkerLoadError(Path(handle.err).read_text().strip())
            if os.path.exists(handle.uds):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, handle.uds)
                except OSError:
                    sock.close()
                else:
                    handle.channel = Channel(
                        sock, self._handed_back, lambda: self._worker_gone(handle)
                    )
                    return
            if not pid_alive(handle.pid):
                if os.path.exists(handle.err):
                    continue
                # Its zygote reaps it and records how it ended.
                how = await loop.run_in_executor(None, wait_exit_record, handle.err)
                why = describe_failure(
                    handle.err, f"did not load: the worker {how or 'exited'}"
                ) + ("" if how else f" (see {self.log_hint})")
                clear_trail(handle.err)
                raise WorkerLoadError(why)
            if time.monotonic() > deadline:
                await loop.run_in_executor(None, dump_and_kill, handle.pid, handle.err)
                why = describe_failure(handle.err, f"did not load within {handle.load_timeout:g} s")
                clear_trail(handle.err)
                raise WorkerLoadError(why)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    @property
    def log_hint(self) -> str:
        return str(self.fleet / "logs" / f"{self.name}.log")

    def _alive(self, handle: WorkerHandle) -> bool:
        return handle.channel is not None and not handle.channel.closed and pid_alive(handle.pid)

    def _worker_gone(self, handle: WorkerHandle) -> None:
        """A loaded worker's channel closed: a failure unless the region stopped it."""
        if not handle.killed and self.metrics is not None:
            self.metrics.exits.labels(self.name).inc()

    def _kill(self, handle: WorkerHandle) -> None:
        handle.killed = True
        if handle.channel is not None:
            handle.channel.close()
        if handle.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.pid, signal.SIGTERM)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.uds)

    def collect(self) -> None:
        """Stop the workers of every deployment but the serving, previous and prefetched ones."""
        keep = {self.previous, self.prefetched}
        if self.serving is not None:
            keep.add(self.serving[1])
        if self.split is not None:
            keep.add(self.split.baseline_manifest)
        for manifest, handle in list(self.workers.items()):
            if manifest not in keep and handle.ready.done():
                self.workers.pop(manifest)
                self._kill(handle)

    # -- the pointer ----------------------------------------------------------
    def _read_pointer(
        self, db: sqlite3.Connection
    ) -> tuple[str | None, str | None, int, Split | None]:
        try:
            row = db.execute(
                "SELECT p.deployment, d.manifest, p.generation, p.weight, p.baseline, "
                "b.manifest, d.config FROM pointers p "
                "LEFT JOIN deployments d ON d.id = p.deployment "
                "LEFT JOIN deployments b ON b.id = p.baseline WHERE p.region = ?",
                (self.name,),
            ).fetchone()
        except sqlite3.OperationalError as err:
            if "no such column" not in str(err):
                raise
            # A store no deploy has opened since weights exist (it adds the columns).
            row = db.execute(
                "SELECT p.deployment, d.manifest, p.generation, 100, NULL, NULL, NULL "
                "FROM pointers p LEFT JOIN deployments d ON d.id = p.deployment "
                "WHERE p.region = ?",
                (self.name,),
            ).fetchone()
        if not row:
            return (None, None, 0, None)
        deployment, manifest, generation, weight, baseline, baseline_manifest, config = row
        try:
            rollout = json.loads(config or "{}").get("rollout") or {}
        except ValueError:
            rollout = {}
        split = _split_of(deployment, manifest, weight, baseline, baseline_manifest, rollout)
        return (deployment, manifest, generation, split)

    def check_pointer(self, force: bool = False) -> None:
        """Read the pointer if the store changed (or ``force``); switch if it moved."""
        if self.pointers is not None:
            if force and self._nats is not None:
                self._spawn(self._read_nats())
            return
        if self.db is None:
            if not self.db_path.exists():
                return
            self.db = sqlite3.connect(str(self.db_path), timeout=5.0, isolation_level=None)
        try:
            version = self.db.execute("PRAGMA data_version").fetchone()[0]
            if force or version != self._last_version:
                self._last_version = version
                target = self._read_pointer(self.db)
                if target != self.target:
                    self.target = target
                    self._spawn(self.switch(target))
        except sqlite3.Error as err:
            self.error = f"pointer store: {err}"

    _last_version: int | None = None

    async def watch(self) -> None:
        from vega_dag.regions.wakeup import open_wakeup

        wakeup = open_wakeup(self.db_path)
        if wakeup is not None:
            loop = asyncio.get_running_loop()
            loop.add_reader(wakeup.fileno(), self._woken, wakeup)
        interval = _poll_seconds()
        try:
            while True:
                self.check_pointer()
                await asyncio.sleep(interval)
        finally:
            if wakeup is not None:
                loop.remove_reader(wakeup.fileno())
                wakeup.close()

    async def watch_nats(self) -> None:
        """The pointer from NATS: a KV watch on this region's key wakes a re-read of it.

        The read, not the watch, is the truth: a nats-py watcher can say its
        initial values are done before it delivers them (nats.py issue 842),
        so the key is also re-read every second, and on every reconnect.
        """
        from vega_dag.errors import VegaError
        from vega_dag.rollout.jetstream import open_reader, parse_pointers_url

        assert self.pointers is not None
        where = parse_pointers_url(self.pointers)
        interval = max(_poll_seconds(), 1.0)
        while True:
            nc = None
            try:
                # Through the host's leaf node when VEGA_DAG_POINTERS_LEAF names one.
                nc, buckets = await open_reader(where, name=f"vega-region-{self.name}")
                watcher = await buckets.pointers.watch(self.name)
                self._nats = buckets
                while True:
                    await self._read_nats()
                    with contextlib.suppress(Exception):
                        # Any update, or none within the interval: read the key again.
                        await watcher.updates(timeout=interval)
            except asyncio.CancelledError:
                raise
            except (VegaError, Exception) as err:  # a lost server: say so, then try again
                self.error = f"pointer store {where.where}: {err or type(err).__name__}"
                self._nats = None
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()
                await asyncio.sleep(interval)

    def _nats_identity(self) -> str:
        from vega_dag.rollout.jetstream import store_identity

        return store_identity(self.pointers)

    async def _read_nats(self) -> None:
        from nats.js.errors import KeyNotFoundError

        from vega_dag.rollout.jetstream import decode_pointer

        buckets = self._nats
        if buckets is None:
            return
        try:
            entry = await buckets.pointers.get(self.name)
            pointer = decode_pointer(self.name, entry.value, entry.revision)
        except KeyNotFoundError:
            pointer = None
        target: tuple[str | None, str | None, int, Split | None] = (None, None, 0, None)
        if pointer is not None and pointer.deployment is not None:
            record = await self._record_nats(pointer.deployment)
            manifest = record["manifest"] if record else None
            split = None
            if pointer.baseline is not None and pointer.weight < 100:
                base = await self._record_nats(pointer.baseline)
                split = _split_of(
                    pointer.deployment,
                    manifest,
                    pointer.weight,
                    pointer.baseline,
                    base["manifest"] if base else None,
                    (record or {}).get("config", {}).get("rollout") or {},
                )
            target = (pointer.deployment, manifest, pointer.generation, split)
        if self.error and self.error.startswith("pointer store "):
            self.error = None
        if target != self.target:
            self.target = target
            self._spawn(self.switch(target))

    async def _record_nats(self, deployment: str) -> dict | None:
        """``deployment``'s record from the deployments bucket (cached), or None."""
        from nats.js.errors import InvalidKeyError, KeyNotFoundError

        if deployment not in self._records and self._nats is not None:
            with contextlib.suppress(KeyNotFoundError, InvalidKeyError):
                entry = await self._nats.deployments.get(deployment)
                self._records[deployment] = json.loads(entry.value)
        return self._records.get(deployment)

    def _woken(self, wakeup: Any) -> None:
        if wakeup.drain():
            self.check_pointer()

    async def switch(self, target: tuple[str | None, str | None, int, Split | None]) -> None:
        deployment, manifest, generation, split = target
        if deployment is None or manifest is None:
            if self.target == target:
                if self.serving is not None:
                    self.previous = self.serving[1]
                    self._tell(self.serving[1], {"op": "drain"})
                if self.split is not None:
                    self._tell(self.split.baseline_manifest, {"op": "drain"})
                self.serving = None
                self.split = None
                self.switched_at = time.time()
                self._notify()
            return
        refused = self.refusal(deployment, manifest)
        if refused is None and split is not None:
            # The other side of a split runs code too: it must be trusted as well.
            why = self.refusal(split.baseline, split.baseline_manifest)
            refused = None if why is None else f"its baseline {split.baseline}: {why}"
        if refused is not None:
            # A pointer moved to a record no trusted key signed: keep serving.
            if self.target == target:
                self.error = f"{deployment}: refused: {refused}"
                self._notify()
            return
        try:
            if manifest not in self.verified:
                # A pointer this process never prefetched (it was restarted):
                # it serves only what it has verified itself, as after a prefetch.
                await self._verify(manifest)
            await self.ensure_worker(manifest)
            if split is not None:
                # Both sides warm before either takes a request of the split.
                await self._verify(split.baseline_manifest)
                await self.ensure_worker(split.baseline_manifest)
        except WorkerLoadError as err:
            # Never switch to what did not load: the old deployment keeps serving.
            if self.target == target:
                self.error = f"{deployment}: {err}"
                self._notify()
            return
        if self.target != target:
            return  # overtaken by a newer pointer write while loading
        # The new worker learns what it answers as before its first connection
        # (the channel keeps order); the old one hands its connections back.
        self._tell(manifest, self._serve_message(deployment))
        active = {manifest}
        if split is None:
            if self.split is not None:
                self._tell(manifest, {"op": "split", "weight": None})
        else:
            self._tell(manifest, split.message(primary=True))
            self._tell(split.baseline_manifest, self._serve_message(split.baseline))
            self._tell(split.baseline_manifest, split.message(primary=False))
            active.add(split.baseline_manifest)
        before = [self.serving[1]] if self.serving is not None else []
        if self.split is not None:
            before.append(self.split.baseline_manifest)
        for old in before:
            if old not in active:
                self.previous = old
                self._tell(old, {"op": "drain"})
        self.serving = (deployment, manifest, generation)
        self.split = split
        self.switched_at = time.time()
        self.error = None
        if self.metrics is not None:
            self.metrics.generation.labels(self.name).set(generation)
            self.metrics.switches.labels(self.name).inc()
        self.collect()
        self._notify()

    def _trust(self) -> Any:
        from vega_dag.rollout.signing import TRUST_DIR, Trust

        if self.trust is None:
            self.trust = Trust(self.fleet / TRUST_DIR)
        self.trust.refresh()
        return self.trust

    def _trusted_keys(self) -> list[str]:
        """The key ids this region trusts, and any key file it could not read."""
        trust = self._trust()
        return sorted(trust.keys) + [f"unreadable: {p}" for p in trust.problems]

    def refusal(self, deployment: str, manifest: str) -> str | None:
        """Why this region must not serve ``deployment`` (as ``manifest``), or None.

        With trusted keys (``.vega/fleet/trusted/``), only a deployment record
        signed by one of them, naming this manifest, serves.
        """
        trust = self._trust()
        if not trust.enforced:
            return None
        record = self._deployment_record(deployment)
        if isinstance(record, str):
            return record
        return trust.record_refusal(deployment, manifest, record)

    def _deployment_record(self, deployment: str) -> dict | str | None:
        """``deployment``'s record from the pointer store (None: there is none), or why not."""
        if self.pointers is not None:
            return self._records.get(deployment)  # read with the pointer (_read_nats)
        try:
            db = self.db or sqlite3.connect(str(self.db_path), timeout=5.0, isolation_level=None)
            self.db = db
            row = db.execute(
                "SELECT manifest, config, env, signed_by, signature FROM deployments WHERE id=?",
                (deployment,),
            ).fetchone()
        except sqlite3.Error as err:
            return f"cannot read its deployment record: {err}"
        if row is None:
            return None
        names = ("manifest", "config", "env", "signed_by", "signature")
        record = dict(zip(names, row, strict=True))
        record["config"], record["env"] = json.loads(row[1]), json.loads(row[2])
        return record

    def _serve_message(self, deployment: str) -> dict:
        from vega_dag.regions.request_log import log_path

        return {
            "op": "serve",
            "deployment": deployment,
            "region": self.name,
            "observe": self.observe,
            "log": str(log_path(self.fleet, self.name)),
        }

    # -- metrics --------------------------------------------------------------
    async def worker_families(
        self, timeout: float = 1.0, op: str = "metrics"
    ) -> list[tuple[int, list[dict]]]:
        """(pid, samples) of every loaded worker that answers within ``timeout``.

        ``op="flush"`` asks each to write out its request log's buffer instead (no samples).
        """
        loop = asyncio.get_running_loop()
        waiting = []
        for handle in list(self.workers.values()):
            if handle.channel is None or handle.channel.closed:
                continue
            self._ask += 1
            future = loop.create_future()
            self._asks[self._ask] = future
            if handle.channel.send({"op": op, "ask": self._ask}):
                waiting.append((self._ask, future))
            else:
                self._asks.pop(self._ask)
        out = []
        if waiting:
            await asyncio.wait([f for _, f in waiting], timeout=timeout)
        for ask, future in waiting:
            self._asks.pop(ask, None)
            if future.done():
                out.append(future.result())
            else:
                future.cancel()
        return out

    async def current_totals(self) -> dict:
        from vega_dag.regions.observe import totals

        current: dict = {}
        # Short: a worker whose loop is blocked must not make `status` slow.
        for pid, families in await self.worker_families(timeout=0.25):
            current.update(totals(families, pid))
        return current

    async def sample(self) -> None:
        """Every few seconds, the workers' totals: the live window's past."""
        from vega_dag.regions.observe import SAMPLE_SECONDS

        metrics = self.metrics
        assert metrics is not None
        # Until metrics are turned off (a later turn on starts a new sampler).
        while self.metrics is metrics:
            await asyncio.sleep(SAMPLE_SECONDS)
            if self.serving is not None and self.metrics is metrics:
                metrics.window.add(await self.current_totals())

    def set_observe(self, changes: dict[str, bool]) -> None:
        """Record what ``changes`` say from now on, here and in every worker."""
        self.observe = {**self.observe, **changes}
        if not self.observe["metrics"]:
            self.metrics = None
        elif self.metrics is None:
            self.metrics = FrontMetrics(self.name)
            if self.serving is not None:
                self.metrics.generation.labels(self.name).set(self.serving[2])
            self._spawn(self.sample())
        message = {**self._serve_message(""), "op": "observe"}
        for handle in list(self.workers.values()):
            if handle.channel is not None:
                handle.channel.send(message)

    async def traffic(self) -> dict | None:
        """The last minute's requests, errors, error rate and p99 (None with metrics off)."""
        if self.metrics is None:
            return None
        return self.metrics.window.traffic(await self.current_totals())

    async def exposition(self) -> bytes:
        from vega_dag.regions.observe import merged_exposition

        assert self.metrics is not None
        self.metrics.workers.labels(self.name).set(
            sum(1 for h in self.workers.values() if self._alive(h))
        )
        families = [f for _, f in await self.worker_families()]
        return merged_exposition(self.metrics.registry, families)

    # -- connections ----------------------------------------------------------
    def _tell(self, manifest: str, message: dict) -> None:
        handle = self.workers.get(manifest)
        if handle is not None and handle.channel is not None:
            handle.channel.send(message)

    def serving_channel(self) -> Channel | None:
        """The handoff channel of the worker serving now, if it is there to take connections."""
        if self.serving is None:
            return None
        return self._channel(self.serving[1])

    def split_channel(self, split: Split, head: bytes) -> Channel | None:
        """The channel of the side of ``split`` the request ``head`` goes to."""
        return self._channel(split.manifest if split.to_primary(head) else split.baseline_manifest)

    def _channel(self, manifest: str) -> Channel | None:
        handle = self.workers.get(manifest)
        if handle is None or handle.channel is None or handle.channel.closed:
            return None
        return handle.channel

    def _pass_on(self, to: str, data: bytes, sock: socket.socket) -> bool:
        """Give a connection a worker sent back to the side of the split its next request is for."""
        split = self.split
        if split is None or to not in (split.deployment, split.baseline):
            return False  # the split changed meanwhile: the front decides again
        channel = self._channel(
            split.manifest if to == split.deployment else split.baseline_manifest
        )
        if channel is None or not channel.send({"op": "conn"}, data, sock.fileno()):
            return False
        sock.close()  # this process's descriptor only: the worker holds its own
        return True

    def _handed_back(self, header: dict, data: bytes, sock: socket.socket | None) -> None:
        """A worker gives a connection back (it drains, or the next request is an admin one)."""
        if header.get("op") == "metrics":
            import msgspec

            future = self._asks.get(header.get("ask", -1))
            if future is not None and not future.done():
                with contextlib.suppress(ValueError):
                    future.set_result((int(header.get("pid", 0)), msgspec.json.decode(data)))
            return
        if sock is None:
            return
        if header.get("op") != "conn" or self.http is None:
            sock.close()
            return
        to = header.get("to")
        if to is not None and self._pass_on(str(to), data, sock):
            return
        config, state = self.http
        # Idle until its next request: as long as a worker would keep it.
        protocol = config.http_protocol_class(
            config, state, {}, prefix=data, timeout=config.timeout_keep_alive
        )
        self._spawn(adopt(asyncio.get_running_loop(), sock, protocol))

    # -- prefetch and waiting -------------------------------------------------
    def _loaded(self, manifest: str) -> bool:
        handle = self.workers.get(manifest)
        return (
            handle is not None
            and handle.ready.done()
            and handle.ready.exception() is None
            and self._alive(handle)
        )

    async def prefetch(
        self,
        manifest: str,
        wait: bool,
        load_timeout: float | None = None,
        deployment: str | None = None,
    ) -> bool:
        """Verify ``manifest``'s blobs and start its worker; whether it was loaded already.

        With ``wait``, return once the worker is loaded (WorkerLoadError if it
        cannot be, or if the load the last prefetch started failed); without,
        once the blobs are verified, the worker loading in the background (a
        new load, if the last one failed).
        """
        if not isinstance(manifest, str):
            raise TypeError("manifest")
        if deployment is not None:
            if self.pointers is not None:
                await self._record_nats(str(deployment))
            # A deploy names its deployment: one this region would refuse to
            # serve fails the deploy here, before any pointer moves.
            refused = self.refusal(str(deployment), manifest)
            if refused is not None:
                raise WorkerLoadError(f"refused {deployment}: {refused}")
        if load_timeout is not None:
            self.load_timeouts[manifest] = load_timeout
        if self._loaded(manifest):
            self.prefetched = manifest
            return True
        await self._verify(manifest)
        self.prefetched = manifest
        if wait:
            _, cached = await self.ensure_worker(manifest, retry=False)
            return cached
        handle = self.workers.get(manifest)
        if handle is None or (handle.ready.done() and handle.ready.exception() is not None):
            self._spawn(self._preload(manifest))
        return False

    async def answer_prefetch(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, answer) to a prefetch request ``{manifest, wait, load_timeout,
        deployment}``, whether it came to the admin route or (an agent's) over NATS."""
        started = time.monotonic()
        try:
            request = json.loads(body)
            manifest = request["manifest"]
            wait = bool(request.get("wait", True))
            load_timeout = request.get("load_timeout")
            if load_timeout is not None:
                load_timeout = min(max(float(load_timeout), 0.0), MAX_LOAD_TIMEOUT)
            deployment = request.get("deployment")
            cached = await self.prefetch(manifest, wait, load_timeout, deployment)
        except WorkerLoadError as err:
            return 502, {"ok": False, "region": self.name, "error": str(err)}
        except (ValueError, KeyError, TypeError, AttributeError):
            return 400, {"ok": False, "region": self.name, "error": "expected {manifest}"}
        return 200, {
            "ok": True,
            "region": self.name,
            "manifest": manifest,
            "cached": cached,
            "loaded": cached or wait,
            "seconds": round(time.monotonic() - started, 4),
        }

    async def _verify(self, manifest: str) -> None:
        """Verify every blob of ``manifest`` (and lay out its code), once per process."""
        if manifest in self.verified:
            return
        from vega_dag.regions.worker import prepare

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, prepare, self.store, self.fleet, manifest)
        except Exception as err:
            raise WorkerLoadError(str(err) or type(err).__name__) from None
        self.verified.add(manifest)

    async def _preload(self, manifest: str) -> None:
        with contextlib.suppress(WorkerLoadError):
            await self.ensure_worker(manifest)

    async def wait_serving(self, deployment: str | None, timeout: float) -> tuple[int, dict]:
        """(HTTP status, payload) once serving ``deployment``, failed to, or timed out."""
        started = time.monotonic()
        deadline = started + max(0.0, min(timeout, 600.0))
        self.check_pointer(force=True)
        while True:
            serving = self.serving[0] if self.serving else None
            # A weight changed on the same deployment: once the region serves that write.
            behind = (
                self.serving is not None
                and self.target is not None
                and self.target[0] == deployment
                and self.target[2] != self.serving[2]
            )
            pointer = self.target[0] if self.target else None
            # Its pointer too: a wait sent before the write (rollback) must not
            # be answered by a region that lags behind the pointer it replaces.
            if serving == deployment and not behind and pointer == deployment:
                return 200, {"ok": True, "deployment": deployment,
                             "seconds": round(time.monotonic() - started, 4)}  # fmt: skip
            if pointer == deployment and self.error and self.error.startswith(f"{deployment}: "):
                return 502, {"ok": False, "deployment": serving, "error": self.error}
            left = deadline - time.monotonic()
            if left <= 0:
                why = self.error or "it did not switch"
                return 504, {"ok": False, "deployment": serving, "error": why}
            assert self.changed is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
            self.check_pointer()

    # -- HTTP -----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "region": self.name,
            "pid": os.getpid(),
            "deployment": self.serving[0] if self.serving else None,
            "manifest": self.serving[1] if self.serving else None,
            "generation": self.serving[2] if self.serving else 0,
            "weight": self.split.weight if self.split else 100,
            "baseline": self.split.baseline if self.split else None,
            "pointer": self.target[0] if self.target else None,
            # Which store it watches: a deploy writing another would wait for nothing.
            "pointers": "sqlite" if self.pointers is None else self._nats_identity(),
            "error": self.error,
            "trusted": self._trusted_keys(),
            "started_at": self.started_at,
            "switched_at": self.switched_at,
            "workers": [
                {
                    "manifest": h.manifest,
                    "pid": h.pid,
                    "ready": h.ready.done() and h.ready.exception() is None,
                }
                for h in self.workers.values()
            ],
        }

    async def admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        headers = [(REGION_HEADER, self.name), *_FRONT_HEADERS]
        if path not in PUBLIC_ADMIN and not on_loopback(scope):
            # A front listening beyond loopback (a region agent) serves its
            # traffic there, but what changes its state answers only on loopback.
            body = b'{"error": "admin endpoint: loopback only"}'
            await send_bytes(send, body, 403, "application/json", headers)
            return
        if path == "/__vega/status":
            status = self.status()
            status["traffic"] = await self.traffic()
            body = json.dumps(status).encode()
            await send_bytes(send, body, 200, "application/json", headers)
            return
        if path == "/__vega/metrics":
            if self.metrics is None:
                body = b'{"error": "metrics are off ([tool.vega.observe] metrics = false)"}'
                await send_bytes(send, body, 404, "application/json", headers)
                return
            from prometheus_client import CONTENT_TYPE_LATEST

            body = await self.exposition()
            await send_bytes(send, body, 200, CONTENT_TYPE_LATEST, headers)
            return
        if path == "/__vega/flush" and scope["method"] == "POST":
            flushed = await self.worker_families(timeout=1.0, op="flush")
            body = json.dumps({"ok": True, "region": self.name, "workers": len(flushed)}).encode()
            await send_bytes(send, body, 200, "application/json", headers)
            return
        if path == "/__vega/observe" and scope["method"] == "POST":
            try:
                changes = json.loads(await read_body(receive))
                if (
                    not isinstance(changes, dict)
                    or not changes
                    or any(
                        k not in ("metrics", "request_log") or not isinstance(v, bool)
                        for k, v in changes.items()
                    )
                ):
                    raise ValueError
            except ValueError:
                payload = {
                    "ok": False,
                    "region": self.name,
                    "error": "expected {metrics: bool, request_log: bool}",
                }
                await send_bytes(
                    send, json.dumps(payload).encode(), 400, "application/json", headers
                )
                return
            self.set_observe(changes)
            payload = {"ok": True, "region": self.name, "observe": self.observe}
            await send_bytes(send, json.dumps(payload).encode(), 200, "application/json", headers)
            return
        if path == "/__vega/prefetch" and scope["method"] == "POST":
            code, answer = await self.answer_prefetch(await read_body(receive))
            await send_bytes(send, json.dumps(answer).encode(), code, "application/json", headers)
            return
        if path == "/__vega/hold":
            await self.hold(scope, receive, send, headers)
            return
        if path == "/__vega/wait":
            query = parse_qs(scope.get("query_string", b"").decode())
            want = query.get("deployment", [""])[0]
            try:
                timeout = float(query.get("timeout", ["30"])[0])
            except ValueError:
                timeout = 30.0
            waited = await self._wait_unless_gone(
                None if want == "none" else want, timeout, receive
            )
            if waited is None:
                return
            code, payload = waited
            payload["region"] = self.name
            await send_bytes(send, json.dumps(payload).encode(), code, "application/json", headers)
            return
        await send_bytes(
            send, b'{"error": "unknown admin endpoint"}', 404, "application/json", headers
        )

    async def hold(self, scope: Scope, receive: Receive, send: Send, headers: list) -> None:
        """``GET /__vega/hold?deployment=D&manifest=M&timeout=S``: a prefetch, then a wait.

        What a rollback asks of each region in one request, instead of a
        prefetch and then a wait (two connections, two requests for each of
        24 fronts to accept and parse on a machine's few cores): the region
        loads M (as ``POST prefetch`` with ``wait``; D is checked as a prefetch
        naming its deployment checks it, so a record this region would refuse
        fails here) and answers the first line of a chunked 200
        (``{"ok": true, ...}``, the prefetch's answer) once it holds it; the
        second line (the wait's payload, with its ``status``) comes once it
        serves D, as ``/__vega/wait`` would answer. A prefetch that fails is a
        whole answer, as ``POST prefetch`` gives it. No M (D ``none``): nothing
        to load, the first line at once. The client writes the pointers
        between the two lines; if it goes instead, the wait ends with it.
        """
        query = parse_qs(scope.get("query_string", b"").decode())
        want = query.get("deployment", [""])[0]
        manifest = query.get("manifest", [""])[0]
        try:
            timeout = float(query.get("timeout", ["30"])[0])
        except ValueError:
            timeout = 30.0
        deployment = None if want == "none" else want
        if manifest:
            body = {"manifest": manifest, "wait": True, "deployment": deployment}
            code, answer = await self.answer_prefetch(json.dumps(body).encode())
            if code != 200:
                await send_bytes(
                    send, json.dumps(answer).encode(), code, "application/json", headers
                )
                return
        else:
            answer = {"ok": True, "region": self.name, "manifest": None}
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/x-ndjson"),
                    *((k.encode(), v.encode()) for k, v in headers),
                ],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": json.dumps(answer).encode() + b"\n",
                "more_body": True,
            }
        )
        waited = await self._wait_unless_gone(deployment, timeout, receive)
        if waited is None:
            return
        status, payload = waited
        payload["region"], payload["status"] = self.name, status
        await send({"type": "http.response.body", "body": json.dumps(payload).encode() + b"\n"})

    async def _wait_unless_gone(
        self, deployment: str | None, timeout: float, receive: Receive
    ) -> tuple[int, dict] | None:
        """``wait_serving``'s answer, or None once the client has gone.

        A rollback asks before its pointer write: if it then fails (or goes),
        its connection closes and the wait ends with it.
        """
        waiting = asyncio.ensure_future(self.wait_serving(deployment, timeout))
        gone = asyncio.ensure_future(_disconnected(receive))
        await asyncio.wait((waiting, gone), return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
            return None
        gone.cancel()
        return waiting.result()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["path"].startswith("/__vega/"):
            await self.admin(scope, receive, send)
            return
        # Requests reach the front only when no worker could take the connection.
        await read_body(receive)
        if self.serving is None:
            payload = {"error": "no deployment", "region": self.name}
            extra = [(REGION_HEADER, self.name), (DEPLOYMENT_HEADER, "none"), *_FRONT_HEADERS]
            await send_bytes(send, json.dumps(payload).encode(), 503, "application/json", extra)
            return
        payload = {"error": "the deployment's worker is not running", "region": self.name}
        extra = [(REGION_HEADER, self.name), (DEPLOYMENT_HEADER, self.serving[0]), *_FRONT_HEADERS]
        await send_bytes(send, json.dumps(payload).encode(), 502, "application/json", extra)


async def _disconnected(receive: Receive) -> None:
    """Return once the client has closed the connection (the request's body is read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class FrontProtocol(asyncio.Protocol):
    """A connection to the region's port until its first request line is in.

    Then the connection goes to the serving worker (``handoff``), or, for an
    admin request or when no worker can take it, is served here by uvicorn's
    own HTTP/1.1 protocol with the region as the application. uvicorn
    creates one per accepted connection (it is the server's ``http``
    protocol class); the region creates one per connection a worker hands back.
    """

    region: Region  # set by main(), for the one region this process is

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict,
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        prefix: bytes = b"",
        timeout: float = FIRST_LINE_TIMEOUT,
    ) -> None:
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.buffer = bytearray(prefix)
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            nodelay(sock)
        self.server_state.connections.add(self)
        self.timer = self.loop.call_later(self.timeout, transport.close)
        self._route()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._route()

    def _route(self) -> None:
        if b"\n" not in self.buffer and len(self.buffer) < FIRST_LINE_LIMIT:
            return
        split = self.region.split
        # A split may route on a header: the whole head first (unsplit, the first line).
        if (
            split is not None
            and not head_complete(self.buffer)
            and len(self.buffer) < FIRST_LINE_LIMIT
        ):
            return
        assert self.transport is not None and self.timer is not None
        self.timer.cancel()
        data = bytes(self.buffer)
        self.buffer.clear()
        self.server_state.connections.discard(self)
        if not is_admin(data):
            channel = (
                self.region.serving_channel()
                if split is None
                else self.region.split_channel(split, data)
            )
            if hand_over(channel, self.transport, data):
                return
        protocol = H11Protocol(self.config, self.server_state, self.app_state, self.loop)
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return None  # nothing to answer: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()

    def shutdown(self) -> None:
        """uvicorn's graceful stop: no request has begun here, so just close."""
        if self.transport is not None:
            self.transport.close()


def listen(port: int, host: str = "127.0.0.1") -> socket.socket:
    """The region's listening socket on ``host:port`` (0: any free port; loopback by default)."""
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets it sees are
    # TCP (the handoff sets TCP_NODELAY itself too).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def start(region: Region, sock: socket.socket, url: str) -> None:
    """Fork ``region``'s zygote, record where it answers (``regions/NAME.json``), serve it.

    The record is what the fleet, the supervisor and ``status`` read to find
    the region: its process (group), port and advertised ``url``.
    """
    from vega_dag.store.objects import write_durably

    region.zygote = fork_zygote(sock)
    record = {
        "name": region.name,
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "port": sock.getsockname()[1],
        "url": url,
        "started_at": time.time(),
    }
    write_durably(
        region.fleet / "regions" / f"{region.name}.json", json.dumps(record).encode(), sync=False
    )
    run(region, sock)


def run(region: Region, sock: socket.socket) -> None:
    """Serve ``region`` on ``sock`` until stopped (its zygote already forked)."""
    import uvicorn

    from vega_dag.regions.serving import QuietServer

    protocol = type("FrontProtocol", (FrontProtocol,), {"region": region})
    config = uvicorn.Config(
        region,
        log_level="warning",
        lifespan="on",
        access_log=False,
        loop="asyncio",
        http=protocol,
        timeout_graceful_shutdown=1,
    )
    server = QuietServer(config)
    region.http = (config, server.server_state)
    server.run(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vega_dag.regions.server")
    parser.add_argument("--name", required=True)
    parser.add_argument("--fleet", required=True, type=Path)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--observe", type=json.loads, default={}, help="[tool.vega.observe]")
    parser.add_argument("--pointers", default=None, help="the pointer store's URL (NATS)")
    args = parser.parse_args(argv)

    # Imported before the zygote forks: the zygote's workers and this
    # process's prefetches (which verify blobs) share it.
    from vega_dag.regions import worker  # noqa: F401

    sock = listen(args.port)
    region = Region(args.name, args.fleet, args.store, args.observe, args.pointers)
    start(region, sock, f"http://127.0.0.1:{sock.getsockname()[1]}")


if __name__ == "__main__":
    main()
