"""The build daemon for one project: ``python -m vega_dag.daemon.server ROOT``.

One request at a time (builds of a project are serialised by the store's lock
anyway), each a ``vega-dag build`` (or ``drift``) command line run by the same
click command as in a one-shot process, in the client's working directory and environment,
its output captured and sent back. The daemon exits when idle for
``--idle-timeout`` seconds, when asked (``vega-dag daemon stop``), when a
client of another vega-dag version calls (that client then builds by itself),
or when its socket is taken away. One daemon per project: it holds a lock on
its directory for its whole life, and a second one started meanwhile exits.
A daemon started by a build (``--auto``) also stops when the project's
configuration says ``daemon = false``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import socket
import sys
from pathlib import Path

from vega_dag.daemon.autostart import DEFAULT_IDLE_TIMEOUT

#: Seconds a new daemon waits for the lock of one that is exiting.
LOCK_WAIT = 3.0


#: What `status` reports of this daemon's work.
_served = {"builds": 0, "rollbacks": 0}


def _opted_out(root: Path, cwd: str | None = None, argv: list[str] | None = None) -> bool:
    """Whether the project says ``daemon = false`` (for a rollback: the project of its
    ``--path``, read from the client's working directory)."""
    from vega_dag.config import ConfigError, load_config
    from vega_dag.daemon import warm

    if argv is not None:
        from vega_dag.daemon.client import project_of

        saved = os.getcwd()
        try:
            os.chdir(cwd or root)
            project = Path(project_of(argv[1:], argv[0]))
        except OSError:
            return False  # the command reports it
        finally:
            os.chdir(saved)
        if project != root:
            return True  # not this daemon's project (a socket digest's collision)
        with warm.bypassed():
            try:
                return not load_config(root).vega.daemon
            except ConfigError:
                return False  # the command reports it
    try:
        return not load_config(root).vega.daemon
    except ConfigError:
        return False  # the build reports it


class _Output(io.StringIO):
    """A command's captured stdout or stderr, a terminal where the client's is one
    (so that what colours the one-shot command prints, the served one prints too)."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _rollback(argv: list[str]) -> None:
    """``vega-dag rollback ARGS`` as the console script runs it: its plain forms
    without click (``entry._rollback``), any other spelling through click.

    Nothing is kept from one rollback to the next: the configuration is
    re-read, the pointer store opened afresh (so every read is the store's
    current state), the regions' records read again.
    """
    from vega_dag import entry
    from vega_dag.daemon import warm

    with warm.bypassed():
        code = entry._rollback(argv[1:])
        if code is None:
            from vega_dag.cli import main as cli

            cli.main(args=argv, prog_name="vega-dag", standalone_mode=True)
            return
    if code:
        raise SystemExit(code)


def _handle(request: dict, root: Path, auto: bool = False) -> tuple[dict, bool]:
    """(reply, whether to keep serving)."""
    from vega_dag import __version__

    if request.get("stop"):
        return {"stopped": True, "pid": os.getpid()}, False
    if request.get("status"):
        reply = {
            "pid": os.getpid(),
            "root": str(root),
            "version": __version__,
            "builds": _served["builds"],
            "rollbacks": _served["rollbacks"],
            "auto": auto,
        }
        from vega_dag.scan.watch import watcher_for

        watcher = watcher_for(root)
        if watcher is not None:
            reply["watch"] = {
                "directories": watcher.directories,
                "scans": watcher.scans,
                "last_scan_reason": watcher.last_reason,
            }
        return reply, True
    if request.get("version") != __version__:
        return {"fallback": f"daemon runs vega-dag {__version__}"}, False
    from vega_dag.daemon.client import COMMANDS, install

    if "install" in request and request["install"] != install():
        # Another venv or checkout: this daemon's code is not the client's.
        return {"fallback": f"daemon runs vega-dag from {install()[1]}"}, False
    argv = request["argv"]
    if not argv or argv[0] not in COMMANDS:
        return {"fallback": "only `build`, `drift` and `rollback` run in the daemon"}, True
    if argv[0] == "rollback":
        # A rollback is no build: a daemon started by hand serves it only
        # where the project allows daemons too (never a failure of its own).
        if _opted_out(root, request.get("cwd"), argv):
            return {"fallback": "the project's configuration says daemon = false"}, not auto
    elif auto and _opted_out(root):
        return {"fallback": "the project's configuration says daemon = false"}, False
    from vega_dag.daemon import warm

    _served["rollbacks" if argv[0] == "rollback" else "builds"] += 1
    # A rollback colours its lines for a terminal, as the one-shot does; a build's
    # progress bars (rich, when stderr is a terminal) are not replayed.
    tty = (request.get("tty") if argv[0] == "rollback" else None) or [False, False]
    out, err = _Output(bool(tty[0])), _Output(bool(tty[1]))
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    code: int = 0
    try:
        os.environ.clear()
        os.environ.update(request.get("env", {}))
        os.chdir(request.get("cwd", root))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warm.deferring():
            try:
                if argv[0] == "rollback":
                    _rollback(argv)
                else:
                    from vega_dag.cli import main as cli

                    cli.main(args=argv, prog_name="vega-dag", standalone_mode=True)
            except SystemExit as exit_:
                status = exit_.code
                code = status if isinstance(status, int) else (0 if status is None else 1)
                if isinstance(exit_.code, str):
                    err.write(exit_.code + "\n")
            except Exception as exc:  # a bug, not bad input: report it, keep serving
                err.write(f"vega-dag daemon: {type(exc).__name__}: {exc}\n")
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return {"stdout": out.getvalue(), "stderr": err.getvalue(), "code": code}, True


def _watch(root: Path) -> None:
    """Watch the project's tree, so builds stat only the files that had events."""
    from vega_dag.config import ConfigError, load_config
    from vega_dag.scan.project import scan_skip_dirs
    from vega_dag.scan.watch import watch

    try:
        config = load_config(root)
    except ConfigError:
        return  # the first build reports it; builds then scan the tree
    watch(config.root, scan_skip_dirs(config))


def _lock(root: Path) -> int | None:
    """The project's daemon lock, held until this process exits; None if another holds it."""
    import fcntl
    import time

    from vega_dag.daemon.paths import daemon_lock

    daemon_lock(root).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(daemon_lock(root), os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.05)


def serve(root: Path, idle_timeout: float, auto: bool = False) -> None:
    from vega_dag.daemon import warm
    from vega_dag.daemon.paths import daemon_pid_file, daemon_root_file, daemon_socket

    if _lock(root) is None:
        return  # another daemon serves the project (or is starting to)
    warm.enable()
    # Imported now, not by the first build: the daemon starts after a build,
    # so its first build is usually a change, whose stages (pipeline.run's
    # rebuild imports them) cost 0.1-0.6 s to import.
    import vega_dag.bundle.bundles
    import vega_dag.bundle.files
    import vega_dag.bundle.importcheck
    import vega_dag.bundle.routes
    import vega_dag.bundle.verdicts
    import vega_dag.cli.build_cmd
    import vega_dag.compile.dirty
    import vega_dag.graph.analysis
    import vega_dag.manifest.assemble
    import vega_dag.pipeline
    import vega_dag.store.commit  # noqa: F401

    # And a rollback's: the daemon serves those too, and they are timed.
    for name in ("entry", "regions.fleet", "regions.target", "rollout.rollback"):
        importlib.import_module(f"vega_dag.{name}")

    _watch(root)

    path = daemon_socket(root)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    listening.bind(str(tmp))
    listening.listen(16)
    os.replace(tmp, path)  # clients see it only once it accepts
    daemon_pid_file(root).write_text(str(os.getpid()))
    daemon_root_file(root).write_text(str(root))
    listening.settimeout(idle_timeout)
    inode = path.stat().st_ino
    try:
        while True:
            try:
                conn, _ = listening.accept()
            except TimeoutError:
                return
            with conn:
                conn.settimeout(None)
                data = b""
                while chunk := conn.recv(1 << 16):
                    data += chunk
                try:
                    reply, keep = _handle(json.loads(data), root, auto)
                except (ValueError, KeyError) as err:
                    reply, keep = {"error": f"bad request: {err}"}, True
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps(reply).encode())
            # The build's caches, recorded after the answer (under the
            # store's lock: the next build, in any process, waits for them).
            warm.run_deferred()
            if not keep:
                return
            try:
                if path.stat().st_ino != inode:
                    return  # another daemon took the socket over
            except FileNotFoundError:
                return
    finally:
        with contextlib.suppress(OSError):
            if path.stat().st_ino == inode:
                path.unlink()
        with contextlib.suppress(OSError):
            if daemon_pid_file(root).read_text() == str(os.getpid()):
                daemon_pid_file(root).unlink()
                daemon_root_file(root).unlink()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vega_dag.daemon.server")
    parser.add_argument("root", type=Path)
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT)
    parser.add_argument("--auto", action="store_true", help="started by a build, not by hand")
    args = parser.parse_args(argv)
    sys.stdout.flush()
    serve(args.root.resolve(), args.idle_timeout, args.auto)


if __name__ == "__main__":
    main()
