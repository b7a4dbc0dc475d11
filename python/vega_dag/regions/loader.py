"""The host's loader: a deployment is imported once per host, then cloned per region.

Every region on a host runs the same deployments. Importing one (verifying
its blobs, executing every module of every route, calling each route once to
warm it) costs ~0.2 CPU-s for the generated 217-module API; 24 regions each
doing it spend ~5 CPU-s, which on two cores is most of a deploy. So, as AWS
Lambda SnapStart restores many instances from one initialised snapshot, the
loader keeps one warm **template** process per deployment, loaded and warmed
exactly as a region's own worker would be, and forks each region's worker
from it: a fork, not a load.

Nothing is shared at run time: every worker is its own process (copy-on-write
memory), serving its region on its own unix socket, exactly as if its region's
zygote had forked and loaded it. Regions still verify every blob themselves
before asking (their prefetch), and fall back to their own zygote when the
loader is not running. A worker exits when its region does (a pidfd on the
region's pid); templates exit with the loader.

A template that does not load (a route raises, exits or crashes at import,
or it takes longer than the request's ``load_timeout``) is stopped, and the
answer says which route it was loading and what happened
(``regions.loading``); every request for that deployment made before then gets
the same answer, so the regions that ask at once wait for one load, not one
each.

Protocol (unix socket ``<socket dir>/loader.sock``), one JSON line per
connection: ``{"store", "fleet", "manifest", "uds", "err", "owner", "log",
"load_timeout", "since"}`` → ``{"pid": …}``, ``{"failed": why}`` (the
deployment does not load) or ``{"error": …}`` (the region loads it itself).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import select
import signal
import socket
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vega_dag.regions import FALLBACK_LOAD_TIMEOUT

#: Templates kept (the newest deployments); older ones are stopped.
KEEP_TEMPLATES = 4


def loader_socket(fleet: Path) -> Path:
    from vega_dag.unix_rpc import socket_dir

    return socket_dir(fleet) / "loader.sock"


def loader_record(fleet: Path) -> Path:
    return fleet / "run" / "loader.json"


# -- a worker, cloned from a template ------------------------------------------
def _exit_with(owner: int) -> None:
    """Block until process ``owner`` exits, then exit this process."""
    try:
        fd = os.pidfd_open(owner)
    except ProcessLookupError:
        os._exit(0)
    except (OSError, AttributeError):  # no pidfds: poll
        import time

        from vega_dag.processes import pid_alive

        while pid_alive(owner):
            time.sleep(0.5)
        os._exit(0)
    select.select([fd], [], [])
    # As if its region had stopped it: its lifespan's shutdown runs, within bounds.
    from vega_dag.regions.lifespan import SHUTDOWN_TIMEOUT

    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(SHUTDOWN_TIMEOUT + 1.0)
    os._exit(0)


def _clone(router: object, request: dict) -> None:
    import threading

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    threading.Thread(target=_exit_with, args=(int(request["owner"]),), daemon=True).start()
    from vega_dag.regions.worker import serve_router

    serve_router(router, request["uds"], request["err"])  # type: ignore[arg-type]


# -- a template: one deployment, loaded once -----------------------------------
def _template(
    store: Path, fleet: Path, manifest: str, base: str, requests: IO[str], replies: IO[str]
) -> None:
    """Load ``manifest``, say whether it loaded (one line), then clone a worker per request."""
    from vega_dag.regions import worker
    from vega_dag.regions.loading import LoadProgress
    from vega_dag.regions.zygote import _die_with_parent

    _die_with_parent()
    # Clones are reaped by the kernel; their regions watch them by pid.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    gc.disable()
    progress = LoadProgress(base)
    try:
        router = worker.load_deployment(store, fleet, manifest, progress)
        asyncio.run(worker.warm(router, progress=progress))
    except Exception as err:
        progress.done()
        replies.write(json.dumps({"error": worker.load_error_text(err)}) + "\n")
        replies.flush()
        os._exit(0)
    progress.done()
    threads = _foreign_threads()
    if threads:
        # A fork copies only the calling thread: the app's pool (Datasette's
        # SQL threads, started by the warm-up) would wait in every clone for
        # threads that are not there. The regions load it themselves.
        replies.write(json.dumps({"loaded": True, "threads": threads}) + "\n")
        replies.flush()
        os._exit(0)
    # Every clone's server resolves uvicorn's websocket protocol on its start
    # (an import of websockets or wsproto, through the deployment's sys.path):
    # resolved here once, with that same sys.path, instead of in each clone
    # (one that fails here fails there as before, in the clone's own start).
    with contextlib.suppress(Exception):
        import uvicorn.protocols.websockets.auto  # noqa: F401
    replies.write(json.dumps({"loaded": True}) + "\n")
    replies.flush()
    # Everything loaded is shared with every clone: keep the clones'
    # collector off it so it does not copy those pages.
    gc.collect()
    gc.freeze()
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                requests.close()
                replies.close()
                _clone(router, request)
            finally:
                os._exit(1)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
    os._exit(0)


def _foreign_threads() -> list[str]:
    """The threads the deployment's code left running (not the runtime's own)."""
    import threading

    others = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.name.startswith("vega-route")
    ]
    deadline = time.monotonic() + 0.5
    for thread in others:  # a pool winding down (anyio's, at its loop's end) is no pool
        thread.join(max(0.0, deadline - time.monotonic()))
    return sorted(t.name for t in others if t.is_alive())


class TemplateLoadError(Exception):
    """The deployment did not load in the loader's template; the message says why."""


@dataclass
class Template:
    pid: int
    requests: IO[str]
    replies: IO[str]
    #: its trail (``regions.loading``)
    base: str
    #: None until it has said whether it loaded; then "" (it did) or why not
    outcome: str | None = None
    #: the threads its load left running: it cannot be cloned (see ``_template``)
    threads: list[str] | None = None

    def wait_loaded(self, timeout: float) -> str:
        """ "" once loaded, else why it did not (an error, an exit, ``timeout`` s passed)."""
        from vega_dag.regions.loading import (
            clear_trail,
            describe_failure,
            dump_and_kill,
            exit_text,
        )

        if self.outcome is not None:
            return self.outcome
        ready, _, _ = select.select([self.replies], [], [], timeout)
        if not ready:
            dump_and_kill(self.pid, self.base)
            self._reap()
            self.outcome = describe_failure(self.base, f"did not load within {timeout:g} s")
        else:
            line = self.replies.readline()
            if line:
                reply = json.loads(line)
                self.outcome = reply.get("error") or ""
                self.threads = reply.get("threads")
            else:
                why = exit_text(self._reap())
                self.outcome = describe_failure(self.base, f"did not load: the worker {why}")
        clear_trail(self.base)
        return self.outcome

    def clone(self, request: dict) -> int | None:
        """A worker forked from this (loaded) template, or None if the template is gone."""
        try:
            self.requests.write(json.dumps(request) + "\n")
            self.requests.flush()
            line = self.replies.readline()
        except (BrokenPipeError, OSError):
            return None
        return int(json.loads(line)["pid"]) if line else None

    def _reap(self) -> int:
        """The template's wait status, once it has exited."""
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return 0

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.requests.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._reap()


def start_template(
    store: Path, fleet: Path, manifest: str, inherited: list[int] | None = None
) -> Template:
    """Fork a template for ``manifest``; ``inherited`` fds are closed in it."""
    run = fleet / "run"
    run.mkdir(parents=True, exist_ok=True)
    base = str(run / f"template-{manifest.rpartition(':')[2][:16]}")
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in [from_parent, to_parent, *(inherited or [])]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            _template(store, fleet, manifest, base, os.fdopen(to_child), os.fdopen(from_child, "w"))
        finally:
            os._exit(1)
    os.close(to_child)
    os.close(from_child)
    return Template(pid, os.fdopen(from_parent, "w"), os.fdopen(to_parent), base)


class Loader:
    def __init__(self, listening: socket.socket) -> None:
        self.listening = listening
        self.templates: OrderedDict[str, Template] = OrderedDict()
        #: manifest → (why its last template did not load, when that was known)
        self.failed: OrderedDict[str, tuple[str, float]] = OrderedDict()
        #: descriptors of the connection being answered
        self.connections: list[int] = []

    def _open_fds(self) -> list[int]:
        """Descriptors a template must not keep: its clients wait for EOF on them."""
        fds = [self.listening.fileno(), *self.connections]
        for t in self.templates.values():
            fds += [t.requests.fileno(), t.replies.fileno()]
        return fds

    def worker(self, request: dict) -> int:
        store, fleet, manifest = Path(request["store"]), Path(request["fleet"]), request["manifest"]
        timeout = float(request.get("load_timeout", FALLBACK_LOAD_TIMEOUT))
        failed = self.failed.get(manifest)
        since = request.get("since")
        if failed is not None and since is not None and float(since) <= failed[1]:
            # Every region asks at once: one failed load answers all of
            # them. A later attempt (a new deploy) loads again.
            raise TemplateLoadError(failed[0])
        for _ in range(2):  # a template that died after loading is started again, once
            template = self.templates.get(manifest)
            if template is None:
                template = start_template(store, fleet, manifest, self._open_fds())
                self.templates[manifest] = template
                while len(self.templates) > KEEP_TEMPLATES:
                    self.templates.popitem(last=False)[1].stop()
            self.templates.move_to_end(manifest)
            why = template.wait_loaded(timeout)
            if why:
                self.templates.pop(manifest).stop()
                self.failed[manifest] = (why, time.monotonic())
                while len(self.failed) > KEEP_TEMPLATES:
                    self.failed.popitem(last=False)
                raise TemplateLoadError(why)
            if template.threads:
                # Kept, so that every region's request gets this answer at once.
                raise RuntimeError(
                    f"{manifest} left threads running when loaded "
                    f"({', '.join(template.threads)}): a fork would lose them"
                )
            pid = template.clone(request)
            if pid is not None:
                return pid
            self.templates.pop(manifest).stop()
        raise RuntimeError(f"the loader's template for {manifest} keeps dying")

    def serve(self) -> None:
        while True:
            conn, _ = self.listening.accept()
            self.connections = [conn.fileno()]
            with conn, conn.makefile("rw") as f:
                try:
                    request = json.loads(f.readline())
                    reply: dict = {"pid": self.worker(request)}
                except TemplateLoadError as err:  # the region's own load would fail too
                    reply = {"failed": str(err)}
                except Exception as err:  # the region falls back to its own zygote
                    reply = {"error": f"{type(err).__name__}: {err}"}
                with contextlib.suppress(OSError):
                    f.write(json.dumps(reply) + "\n")
                    f.flush()


def request_worker(fleet: Path, request: dict, timeout: float = 30.0) -> int | None:
    """Ask the host's loader for a worker; None when no loader answers.

    TemplateLoadError when the loader tried, and the deployment did not load.
    """
    from vega_dag.unix_rpc import call

    reply = call(loader_socket(fleet), request, timeout)
    if reply is not None and "failed" in reply:
        raise TemplateLoadError(reply["failed"])
    return int(reply["pid"]) if reply is not None and "pid" in reply else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vega_dag.regions.loader")
    parser.add_argument("--fleet", required=True, type=Path)
    args = parser.parse_args(argv)

    # The serving stack and the worker code, imported once for every template.
    from vega_dag.regions import zygote  # noqa: F401
    from vega_dag.store.objects import write_durably

    # Templates are reaped here (Template._reap): how one ended is the message.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    path = loader_socket(args.fleet)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    listening.bind(str(tmp))
    listening.listen(256)
    os.replace(tmp, path)  # appears only once it accepts
    record = {"pid": os.getpid(), "pgid": os.getpgid(0)}
    write_durably(loader_record(args.fleet), json.dumps(record).encode(), sync=False)
    gc.collect()
    gc.freeze()
    sys.stdout.flush()
    Loader(listening).serve()


if __name__ == "__main__":
    main()
