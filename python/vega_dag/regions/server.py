"""A region's front process: the region's port, its pointer, its workers.

    python -m vega_dag.regions.server --name fra --fleet DIR --store DIR

It listens on a loopback port (uvicorn) and proxies each request to the
worker of the deployment its pointer references, adding ``x-vega-region`` and
``x-vega-deployment`` to every response. It polls its pointer every 20 ms
(``PRAGMA data_version`` first, so an idle poll reads no table) and switches
only to a deployment whose worker has loaded and verified everything: while a
new one loads, the old one keeps serving. The previous deployment's worker
stays running, so a rollback is a pointer read away.

Admin endpoints (under ``/__vega/``):

- ``GET status``;
- ``POST prefetch`` (``{"manifest": digest, "wait": bool}``): verify every blob
  of the manifest (and lay out its code once per fleet), then start loading
  its worker; answered once the worker is loaded and warm, or, with
  ``"wait": false``, as soon as the blobs are verified (the worker keeps
  loading in the background; a later prefetch with ``"wait": true`` reports
  whether it loaded);
- ``GET wait?deployment=ID&timeout=S``: re-read the pointer now, then answer
  once the region serves ``ID`` (200), failed to load it (502) or after
  ``S`` seconds (504). One request instead of polling ``status``.
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

from vega_dag.processes import pid_alive
from vega_dag.regions import DEPLOYMENT_HEADER, REGION_HEADER
from vega_dag.regions.runtime import Receive, Scope, Send, read_body, send_bytes
from vega_dag.unix_rpc import socket_dir

#: How often the pointer is polled (the rollout promises a switch within 100 ms).
POLL_SECONDS = 0.02
#: A worker that has not loaded in this long is given up on.
LOAD_TIMEOUT = 120.0
#: A proxied request that has not been answered in this long gets a 504.
PROXY_TIMEOUT = 60.0
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length"}


class WorkerLoadError(Exception):
    pass


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
    ready: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0


class Region:
    def __init__(self, name: str, fleet: Path, store: Path) -> None:
        self.name = name
        self.fleet = fleet
        self.store = store
        self.db_path = fleet / "pointers.sqlite"
        self.sockets = socket_dir(fleet)
        self.sockets.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run_dir = fleet / "run"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.workers: dict[str, WorkerHandle] = {}
        #: (deployment, manifest, generation) being served, or None
        self.serving: tuple[str, str, int] | None = None
        self.previous: str | None = None
        self.prefetched: str | None = None
        self.target: tuple[str | None, str | None, int] | None = None
        self.error: str | None = None
        self.started_at = time.time()
        self.switched_at: float | None = None
        self.zygote: Zygote | None = None
        self.zygote_lock: asyncio.Lock | None = None
        self.tasks: set[asyncio.Task] = set()
        #: manifests whose blobs this region has verified (and laid out)
        self.verified: set[str] = set()
        #: set (and replaced) whenever what the region serves, or its error, changes
        self.changed: asyncio.Event | None = None
        self.db: sqlite3.Connection | None = None

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        self.zygote_lock = asyncio.Lock()
        self.changed = asyncio.Event()
        self._spawn(self.watch())

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
        """A worker's pid: cloned by the host's loader, else forked by this region's zygote."""
        from vega_dag.regions.loader import request_worker

        pid = request_worker(self.fleet, {**request, "owner": os.getpid(), "log": self.log_hint})
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
    async def ensure_worker(self, manifest: str) -> tuple[WorkerHandle, bool]:
        """The loaded worker for ``manifest`` (and whether it was already loaded)."""
        handle = self.workers.get(manifest)
        if handle is not None and handle.ready.done():
            if handle.ready.exception() is None and pid_alive(handle.pid):
                return handle, True
            self.workers.pop(manifest, None)
            handle = None
        if handle is None:
            handle = self._new_worker(manifest)
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
        else:
            handle.seconds = time.monotonic() - handle.started
            handle.ready.set_result(True)

    async def _start_worker(self, handle: WorkerHandle) -> None:
        for stale in (handle.uds, handle.err):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        request = {
            "store": str(self.store),
            "fleet": str(self.fleet),
            "manifest": handle.manifest,
            "uds": handle.uds,
            "err": handle.err,
        }
        assert self.zygote_lock is not None
        async with self.zygote_lock:
            loop = asyncio.get_running_loop()
            handle.pid = await loop.run_in_executor(None, self._worker_call, request)
        deadline = time.monotonic() + LOAD_TIMEOUT
        delay = 0.002
        while True:
            if os.path.exists(handle.err):
                raise WorkerLoadError(Path(handle.err).read_text().strip())
            if os.path.exists(handle.uds):
                try:
                    _, writer = await asyncio.open_unix_connection(handle.uds)
                except OSError:
                    pass
                else:
                    writer.close()
                    return
            if not pid_alive(handle.pid):
                if os.path.exists(handle.err):
                    continue
                raise WorkerLoadError(f"the worker exited while loading (see {self.log_hint})")
            if time.monotonic() > deadline:
                raise WorkerLoadError(f"the worker did not load within {LOAD_TIMEOUT:.0f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    @property
    def log_hint(self) -> str:
        return str(self.fleet / "logs" / f"{self.name}.log")

    def _kill(self, handle: WorkerHandle) -> None:
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
        for manifest, handle in list(self.workers.items()):
            if manifest not in keep and handle.ready.done():
                self.workers.pop(manifest)
                self._kill(handle)

    # -- the pointer ----------------------------------------------------------
    def _read_pointer(self, db: sqlite3.Connection) -> tuple[str | None, str | None, int]:
        row = db.execute(
            "SELECT p.deployment, d.manifest, p.generation FROM pointers p "
            "LEFT JOIN deployments d ON d.id = p.deployment WHERE p.region = ?",
            (self.name,),
        ).fetchone()
        return (row[0], row[1], row[2]) if row else (None, None, 0)

    def check_pointer(self, force: bool = False) -> None:
        """Read the pointer if the store changed (or ``force``); switch if it moved."""
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
        while True:
            self.check_pointer()
            await asyncio.sleep(POLL_SECONDS)

    async def switch(self, target: tuple[str | None, str | None, int]) -> None:
        deployment, manifest, generation = target
        if deployment is None or manifest is None:
            if self.target == target:
                if self.serving is not None:
                    self.previous = self.serving[1]
                self.serving = None
                self.switched_at = time.time()
                self._notify()
            return
        try:
            await self.ensure_worker(manifest)
        except WorkerLoadError as err:
            # Never switch to what did not load: the old deployment keeps serving.
            if self.target == target:
                self.error = f"{deployment}: {err}"
                self._notify()
            return
        if self.target != target:
            return  # overtaken by a newer pointer write while loading
        if self.serving is not None and self.serving[1] != manifest:
            self.previous = self.serving[1]
        self.serving = (deployment, manifest, generation)
        self.switched_at = time.time()
        self.error = None
        self.collect()
        self._notify()

    # -- prefetch and waiting -------------------------------------------------
    def _loaded(self, manifest: str) -> bool:
        handle = self.workers.get(manifest)
        return (
            handle is not None
            and handle.ready.done()
            and handle.ready.exception() is None
            and pid_alive(handle.pid)
        )

    async def prefetch(self, manifest: str, wait: bool) -> bool:
        """Verify ``manifest``'s blobs and start its worker; whether it was loaded already.

        With ``wait``, return once the worker is loaded (WorkerLoadError if it
        cannot be); without, once the blobs are verified, the worker loading
        in the background.
        """
        if not isinstance(manifest, str):
            raise TypeError("manifest")
        if self._loaded(manifest):
            self.prefetched = manifest
            return True
        if manifest not in self.verified:
            from vega_dag.regions.worker import prepare

            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(None, prepare, self.store, self.fleet, manifest)
            except Exception as err:
                raise WorkerLoadError(str(err) or type(err).__name__) from None
            self.verified.add(manifest)
        self.prefetched = manifest
        if wait:
            _, cached = await self.ensure_worker(manifest)
            return cached
        if manifest not in self.workers:
            self._spawn(self._preload(manifest))
        return False

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
            if serving == deployment:
                return 200, {"ok": True, "deployment": deployment,
                             "seconds": round(time.monotonic() - started, 4)}  # fmt: skip
            pointer = self.target[0] if self.target else None
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
            "pointer": self.target[0] if self.target else None,
            "error": self.error,
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
        headers = [(REGION_HEADER, self.name)]
        if path == "/__vega/status":
            body = json.dumps(self.status()).encode()
            await send_bytes(send, body, 200, "application/json", headers)
            return
        if path == "/__vega/prefetch" and scope["method"] == "POST":
            started = time.monotonic()
            try:
                request = json.loads(await read_body(receive))
                manifest = request["manifest"]
                wait = bool(request.get("wait", True))
                cached = await self.prefetch(manifest, wait)
            except WorkerLoadError as err:
                payload = {"ok": False, "region": self.name, "error": str(err)}
                await send_bytes(send, json.dumps(payload).encode(), 502, "application/json")
                return
            except (ValueError, KeyError, TypeError, AttributeError):
                payload = {"ok": False, "region": self.name, "error": "expected {manifest}"}
                await send_bytes(send, json.dumps(payload).encode(), 400, "application/json")
                return
            payload = {
                "ok": True,
                "region": self.name,
                "manifest": manifest,
                "cached": cached,
                "loaded": cached or wait,
                "seconds": round(time.monotonic() - started, 4),
            }
            await send_bytes(send, json.dumps(payload).encode(), 200, "application/json", headers)
            return
        if path == "/__vega/wait":
            query = parse_qs(scope.get("query_string", b"").decode())
            want = query.get("deployment", [""])[0]
            try:
                timeout = float(query.get("timeout", ["30"])[0])
            except ValueError:
                timeout = 30.0
            code, payload = await self.wait_serving(None if want == "none" else want, timeout)
            payload["region"] = self.name
            await send_bytes(send, json.dumps(payload).encode(), code, "application/json", headers)
            return
        await send_bytes(send, b'{"error": "unknown admin endpoint"}', 404, "application/json")

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
        serving = self.serving
        if serving is None:
            await send_bytes(
                send,
                json.dumps({"error": "no deployment", "region": self.name}).encode(),
                503,
                "application/json",
                [(REGION_HEADER, self.name), (DEPLOYMENT_HEADER, "none")],
            )
            return
        deployment, manifest, _ = serving
        handle = self.workers.get(manifest)
        extra = [(REGION_HEADER, self.name), (DEPLOYMENT_HEADER, deployment)]
        if handle is None:
            await send_bytes(send, b'{"error": "worker gone"}', 503, "application/json", extra)
            return
        body = await read_body(receive)
        try:
            status, headers, data = await asyncio.wait_for(
                proxy(handle.uds, scope, body), PROXY_TIMEOUT
            )
        except TimeoutError:
            await send_bytes(send, b'{"error": "route timed out"}', 504, "application/json", extra)
            return
        except (OSError, asyncio.IncompleteReadError, ValueError) as err:
            payload = json.dumps({"error": f"worker unreachable: {err}"}).encode()
            await send_bytes(send, payload, 502, "application/json", extra)
            return
        out = [(k, v) for k, v in headers if k not in _HOP_BY_HOP]
        out.append((b"content-length", str(len(data)).encode()))
        out.extend((k.encode(), v.encode()) for k, v in extra)
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": data})


async def proxy(
    uds: str, scope: Scope, body: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Forward one request over the worker's unix socket (HTTP/1.1, one connection each)."""
    reader, writer = await asyncio.open_unix_connection(uds)
    try:
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        lines = [scope["method"].encode() + b" " + target + b" HTTP/1.1"]
        for k, v in scope["headers"]:
            if k.lower() not in (b"connection", b"content-length", b"transfer-encoding"):
                lines.append(k + b": " + v)
        lines.append(b"connection: close")
        lines.append(b"content-length: " + str(len(body)).encode())
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2:
            raise ValueError("malformed response from worker")
        status = int(parts[1])
        headers: list[tuple[bytes, bytes]] = []
        length = None
        chunked = False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.rstrip(b"\r\n").partition(b":")
            key, value = key.strip().lower(), value.strip()
            headers.append((key, value))
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            chunks = []
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readline()
            data = b"".join(chunks)
        elif length is not None:
            data = await reader.readexactly(length)
        else:
            data = await reader.read()
        return status, headers, data
    finally:
        writer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vega_dag.regions.server")
    parser.add_argument("--name", required=True)
    parser.add_argument("--fleet", required=True, type=Path)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    import uvicorn

    # Imported before the zygote forks: the zygote's workers and this
    # process's prefetches (which verify blobs) share it.
    from vega_dag.regions import worker  # noqa: F401
    from vega_dag.store.objects import write_durably

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    port = sock.getsockname()[1]
    region = Region(args.name, args.fleet, args.store)
    region.zygote = fork_zygote(sock)
    record = {
        "name": args.name,
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "port": port,
        "url": f"http://127.0.0.1:{port}",
        "started_at": time.time(),
    }
    write_durably(
        args.fleet / "regions" / f"{args.name}.json", json.dumps(record).encode(), sync=False
    )
    config = uvicorn.Config(
        region,
        log_level="warning",
        lifespan="on",
        access_log=False,
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=1,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
