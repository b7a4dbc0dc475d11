"""The isolated import check's driver: ``python -I -S isolated.py PATHS [PRELOAD]``, stdlib only.

It runs in an interpreter that sees neither the project nor vega-dag (no
site processing, no environment, no script directory on ``sys.path``) and
imports nothing of its own beyond the stdlib, so that each import it makes
finds exactly what its request names. ``PATHS`` (JSON) is the rest of
``sys.path`` (the stdlib and site-packages the regions' interpreter has);
``PRELOAD`` (JSON) stdlib modules to import at once, before any request.

It is resident: the build starts it early (its start-up overlaps the scan
and compile) and the build daemon keeps it between builds. Batches arrive on
stdin: a line ``{"count": n, "timeout": seconds, "jobs": k, "preload": [...]}``,
then ``n`` request lines ``{"id", "paths", "cwd", "module", "file", "env"}``
(and, for a one-app project's app, ``"discover": {"lister", "attr"}``: the
answer's ``"discovered"`` lists its framework's routes, see ``_discover``).
For each request a child is forked (``jobs`` at a time) that puts ``paths``
first on ``sys.path`` (a route's bundle and the dependency layer, or the
source roots), changes to ``cwd``, sets ``env`` and imports ``module``; the
driver itself never imports anything but the stdlib, so every child starts
from the same clean state. One JSON line answers each request, in the order
they finish: ``{"id", "ok": true}`` or ``{"id", "ok": false, "error",
"message", "missing_module", "missing_file", "importer", "traceback"}``,
``{"id", "timeout": true, "where"}`` when the import did not finish within
the time limit (``where``: the innermost bundled frame of its stack, from
faulthandler, before the child is killed), or ``{"id", "exit": status}`` when the child
died without answering (``os._exit``, a signal); then ``{"done": true}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import threading
import time
import traceback
import types


def _importer(tb: object) -> str | None:
    """``file:line`` of the innermost frame in bundled code (named by its project path)."""
    found = None
    for frame in traceback.extract_tb(tb):  # type: ignore[arg-type]
        name = frame.filename
        if not name.startswith("<") and not os.path.isabs(name):
            found = f"{name}:{frame.lineno}"
    return found


def _import(name: str, file: str | None) -> None:
    """Import ``name``; a catch-all (``api.docs.[...slug]``) by its ``file``.

    The import system takes every dot of a catch-all's name for a package
    boundary, so its file (``[...slug].pyc`` in a bundle, ``.py`` in the
    source tree) is looked up in its package and run under its full name, as
    the regions' runtime does (``regions.runtime.import_route``).
    """
    import importlib
    import importlib.machinery
    import importlib.util

    stem = (file or "").rpartition("/")[2].rpartition(".")[0]
    if "." not in stem:
        importlib.import_module(name)
        return
    package = name[: len(name) - len(stem) - 1] if name.endswith("." + stem) else ""
    search = list(importlib.import_module(package).__path__) if package else sys.path
    for entry in search:
        for suffix, loader in (
            (".pyc", importlib.machinery.SourcelessFileLoader),
            (".py", importlib.machinery.SourceFileLoader),
        ):
            location = os.path.join(entry, stem + suffix)
            if os.path.isfile(location):
                spec = importlib.util.spec_from_file_location(
                    name, location, loader=loader(name, location)
                )
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
                return
    raise ModuleNotFoundError(f"No module named {name!r}", name=name)


class _Fd:
    """What faulthandler writes to: the answer pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


def _discover(module: str, discover: dict) -> dict:
    """A one-app project's framework routes, listed by ``discover["lister"]`` (a file).

    The lister (``bundle/framework_routes.py``) is stdlib-only code, loaded
    by its path: nothing of vega-dag is importable here.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("_vega_framework_routes", discover["lister"])
    assert spec is not None and spec.loader is not None
    lister = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lister)
    try:
        return lister.listing(getattr(sys.modules[module], discover["attr"]))
    except BaseException as err:
        where = _importer(err.__traceback__)
        return {"error": type(err).__name__, "message": str(err), "where": where}


def _child(request: dict, out: int) -> None:
    import faulthandler

    # Route code that prints at import time must not write into the answers.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    # An import that does not finish is asked where it is before it is killed.
    faulthandler.register(signal.SIGUSR1, file=_Fd(out), all_threads=False)
    sys.path[:0] = request["paths"]
    os.chdir(request["cwd"])
    os.environ.update(request.get("env") or {})
    # Which of the bundle's code objects run (bundle/verdicts.py): every new
    # frame of bundled code (a relative file name), in any thread.
    ran: dict[str, set[tuple[str, int]]] = {}

    def trace(frame: types.FrameType, event: str, arg: object) -> None:
        code = frame.f_code
        name = code.co_filename
        if not name.startswith("<") and not os.path.isabs(name):
            ran.setdefault(name, set()).add((code.co_qualname, code.co_firstlineno))

    tracing = bool(request.get("trace"))
    if tracing:
        threading.settrace(trace)
        sys.settrace(trace)
    try:
        _import(request["module"], request.get("file"))
        result: dict = {"ok": True}
        # Traced too: what the listing runs of the app's code (Django imports
        # its URLconfs there) makes the routes listed, and a later build
        # whose import and listing would run only that code keeps them.
        if request.get("discover"):
            result["discovered"] = _discover(request["module"], request["discover"])
        # Code that set a tracer of its own hid what it ran: no record, so
        # every later bundle of the route is imported.
        whole = sys.gettrace() is trace and threading._trace_hook is trace  # type: ignore[attr-defined]
        sys.settrace(None)
        if tracing and whole:
            result["ran"] = {name: sorted(runs) for name, runs in ran.items()}
    except BaseException as err:
        sys.settrace(None)
        lines = traceback.format_exception(type(err), err, err.__traceback__)
        result = {
            "ok": False,
            "error": type(err).__name__,
            "message": str(err),
            "missing_module": getattr(err, "name", None)
            if isinstance(err, ModuleNotFoundError)
            else None,
            "missing_file": getattr(err, "filename", None) if isinstance(err, OSError) else None,
            "importer": _importer(err.__traceback__),
            "traceback": "".join(lines)[-2000:],
        }
    data = json.dumps({"id": request["id"], **result}).encode()
    while data:
        data = data[os.write(out, data) :]
    os._exit(0)


def _preload(names: list[str]) -> None:
    """Import stdlib ``names`` here, once, so that no child imports them again.

    A stdlib module that fails here fails in the child too.
    """
    for name in names:
        if name not in sys.modules:
            with contextlib.suppress(BaseException):
                __import__(name)


def _answer(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _run(pending: list[dict], timeout: float, jobs: int) -> None:
    """Fork a child for each request, ``jobs`` at a time; answer each as it ends."""
    running: dict[
        int, tuple[int, dict, float, bytearray]
    ] = {}  # fd → (pid, request, deadline, buf)
    while pending or running:
        while pending and len(running) < jobs:
            request = pending.pop(0)
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                try:
                    _child(request, write)
                finally:
                    os._exit(70)
            os.close(write)
            running[read] = (pid, request, time.monotonic() + timeout, bytearray())
        now = time.monotonic()
        wait = max(0.0, min(deadline for _, _, deadline, _ in running.values()) - now)
        ready, _, _ = select.select(list(running), [], [], wait)
        for fd in ready:
            pid, request, _, buf = running[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                buf.extend(chunk)
                continue
            os.close(fd)
            del running[fd]
            _, status = os.waitpid(pid, 0)
            if buf:
                _answer(json.loads(bytes(buf)))
            else:
                _answer({"id": request["id"], "exit": os.waitstatus_to_exitcode(status)})
        now = time.monotonic()
        for fd, (pid, request, deadline, _) in list(running.items()):
            if fd not in ready and deadline <= now:
                stack = _stack_of(pid, fd)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.close(fd)
                del running[fd]
                _answer({"id": request["id"], "timeout": True, "where": _innermost(stack)})


def _stack_of(pid: int, fd: int) -> str:
    """The hung child's stack, as faulthandler dumps it (empty if it does not answer)."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGUSR1)
    data = b""
    deadline = time.monotonic() + 1.0
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left if not data else min(left, 0.05))
        if not ready:
            if data:
                break
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def _innermost(stack: str) -> str | None:
    """``file:line`` of the innermost frame in bundled code (most recent call first)."""
    for line in stack.splitlines():
        line = line.strip()
        if line.startswith('File "'):
            name, _, rest = line[6:].partition('", line ')
            if not name.startswith("<") and not os.path.isabs(name):
                return f"{name}:{rest.split()[0]}"
    return None


def main() -> None:
    sys.path[:] = json.loads(sys.argv[1])
    # The source tree must not change because it was imported from.
    sys.dont_write_bytecode = True
    _preload(json.loads(sys.argv[2]) if len(sys.argv) > 2 else [])
    # Batches until stdin closes (the build, or the daemon, is gone).
    while line := sys.stdin.readline():
        if not line.strip():
            continue
        batch = json.loads(line)
        requests = [json.loads(sys.stdin.readline()) for _ in range(batch["count"])]
        _preload(batch.get("preload", []))
        _run(requests, float(batch["timeout"]), max(1, int(batch["jobs"])))
        _answer({"done": True})


if __name__ == "__main__":
    main()
