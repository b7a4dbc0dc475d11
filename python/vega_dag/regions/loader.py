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

Protocol (unix socket ``<socket dir>/loader.sock``), one JSON line per
connection: ``{"store", "fleet", "manifest", "uds", "err", "owner", "log"}``
→ ``{"pid": …}`` or ``{"error": …}``.
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
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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
    os._exit(0)


def _clone(router: object, error: str | None, request: dict) -> None:
    import threading

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    if error is not None:
        Path(request["err"]).write_text(error)
        os._exit(3)
    threading.Thread(target=_exit_with, args=(int(request["owner"]),), daemon=True).start()
    from vega_dag.regions.worker import serve_router

    serve_router(router, request["uds"])  # type: ignore[arg-type]


# -- a template: one deployment, loaded once -----------------------------------
def _template(store: Path, fleet: Path, manifest: str, requests: IO[str], replies: IO[str]) -> None:
    from vega_dag.regions import worker
    from vega_dag.regions.zygote import _die_with_parent

    _die_with_parent()
    # Clones are reaped by the kernel; their regions watch them by pid.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    router = None
    error: str | None = None
    gc.disable()
    try:
        router = worker.load_deployment(store, fleet, manifest)
        asyncio.run(worker.warm(router))
    except Exception as err:
        error = f"{type(err).__name__}: {err}" if not str(err) else str(err)
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
                _clone(router, error, request)
            finally:
                os._exit(1)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
    os._exit(0)


@dataclass
class Template:
    pid: int
    requests: IO[str]
    replies: IO[str]

    def clone(self, request: dict) -> int | None:
        """A worker forked from this template, or None if the template is gone."""
        try:
            self.requests.write(json.dumps(request) + "\n")
            self.requests.flush()
            line = self.replies.readline()
        except (BrokenPipeError, OSError):
            return None
        return int(json.loads(line)["pid"]) if line else None

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.requests.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def start_template(
    store: Path, fleet: Path, manifest: str, inherited: list[int] | None = None
) -> Template:
    """Fork a template for ``manifest``; ``inherited`` fds are closed in it."""
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in [from_parent, to_parent, *(inherited or [])]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            _template(store, fleet, manifest, os.fdopen(to_child), os.fdopen(from_child, "w"))
        finally:
            os._exit(1)
    os.close(to_child)
    os.close(from_child)
    return Template(pid, os.fdopen(from_parent, "w"), os.fdopen(to_parent))


class Loader:
    def __init__(self, listening: socket.socket) -> None:
        self.listening = listening
        self.templates: OrderedDict[str, Template] = OrderedDict()
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
        for _ in range(2):  # a template that died is started again, once
            template = self.templates.get(manifest)
            if template is None:
                template = start_template(store, fleet, manifest, self._open_fds())
                self.templates[manifest] = template
                while len(self.templates) > KEEP_TEMPLATES:
                    self.templates.popitem(last=False)[1].stop()
            self.templates.move_to_end(manifest)
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
                except Exception as err:  # the region falls back to its own zygote
                    reply = {"error": f"{type(err).__name__}: {err}"}
                with contextlib.suppress(OSError):
                    f.write(json.dumps(reply) + "\n")
                    f.flush()


def request_worker(fleet: Path, request: dict, timeout: float = 30.0) -> int | None:
    """Ask the host's loader for a worker; None when no loader answers."""
    from vega_dag.unix_rpc import call

    reply = call(loader_socket(fleet), request, timeout)
    return int(reply["pid"]) if reply is not None and "pid" in reply else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vega_dag.regions.loader")
    parser.add_argument("--fleet", required=True, type=Path)
    args = parser.parse_args(argv)

    # The serving stack and the worker code, imported once for every template.
    from vega_dag.regions import zygote  # noqa: F401
    from vega_dag.store.objects import write_durably

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
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
