"""The isolated import check's driver: ``python -I -S isolated.py CONFIG``, stdlib only.

It runs in an interpreter that sees neither the project nor vega-dag (no
site processing, no environment, no script directory on ``sys.path``) and
imports nothing of its own beyond the stdlib, so that each import it makes
finds exactly what its request names. Requests arrive on stdin, one JSON
object a line: ``{"id", "paths", "cwd", "module", "file", "env"}`` (and, for
a one-app project's app, ``"discover": {"lister", "attr"}``: the answer's
``"discovered"`` lists its framework's routes, see ``_discover``); for each, a
child is forked that puts ``paths`` first on ``sys.path`` (a route's bundle
and the dependency layer, or the source roots), changes to ``cwd``, sets
``env`` and imports ``module``. One JSON line answers each request, in the
order they finish: ``{"id", "ok": true}`` or ``{"id", "ok": false,
"error", "message", "missing_module", "missing_file", "importer",
"traceback"}``, ``{"id", "timeout": true}`` when the import did not finish
within the time limit (the child is killed), or ``{"id", "exit": status}``
when the child died without answering (``os._exit``, a signal).

CONFIG is JSON: ``{"paths": [...], "timeout": seconds, "jobs": n, "preload": [...]}``:
``paths`` is the rest of ``sys.path`` (the stdlib and site-packages the
regions' interpreter has), ``jobs`` how many imports run at once,
``preload`` stdlib modules imported before the first fork.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
import traceback


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

    # Route code that prints at import time must not write into the answers.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.path[:0] = request["paths"]
    os.chdir(request["cwd"])
    os.environ.update(request.get("env") or {})
    try:
        _import(request["module"], request.get("file"))
        result: dict = {"ok": True}
        if request.get("discover"):
            result["discovered"] = _discover(request["module"], request["discover"])
    except BaseException as err:
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


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.path[:] = config["paths"]
    # The source tree must not change because it was imported from.
    sys.dont_write_bytecode = True
    # The stdlib modules the routes import, once, so that each child does not
    # import them again; a stdlib module that fails here fails in the child too.
    for name in config.get("preload", []):
        with contextlib.suppress(BaseException):
            __import__(name)
    timeout = float(config["timeout"])
    jobs = max(1, int(config["jobs"]))
    pending = [json.loads(line) for line in sys.stdin if line.strip()]
    running: dict[
        int, tuple[int, dict, float, bytearray]
    ] = {}  # fd → (pid, request, deadline, buf)

    def answer(payload: dict) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

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
                answer(json.loads(bytes(buf)))
            else:
                answer({"id": request["id"], "exit": os.waitstatus_to_exitcode(status)})
        now = time.monotonic()
        for fd, (pid, request, deadline, _) in list(running.items()):
            if fd not in ready and deadline <= now:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.close(fd)
                del running[fd]
                answer({"id": request["id"], "timeout": True})


if __name__ == "__main__":
    main()
