"""The ``vega-dag`` entry point's fast path: hand ``build``, ``drift`` and ``rollback`` to the
project's daemon.

Imports only the standard library's os, sys, socket and json (and the
package's version): the whole point is to skip click, msgspec, the
pipeline's imports, the extension and even pathlib. What the daemon sends
back is the command's own stdout, stderr and exit status, written as they
are. Any failure — no daemon, a stale socket, another vega-dag version —
returns None and the command runs in this process as usual.
"""

from __future__ import annotations

import os
import sys

#: typing.TYPE_CHECKING without importing typing (a few ms of the fast path)
TYPE_CHECKING = False

if TYPE_CHECKING:
    from pathlib import Path

#: ``build`` and ``drift`` options that take a value (the rest are flags).
_VALUED = {"-j", "--jobs", "--store", "--keep"}
#: The commands a daemon runs (``server._handle`` checks the same).
COMMANDS = ("build", "drift", "rollback")


def project_of(args: list[str], command: str = "build") -> str:
    """The project of ``command``'s args, resolved: ``build``'s or ``drift``'s PATH
    argument, ``rollback``'s ``--path`` (default: the working directory)."""
    if command == "rollback":
        # Its argument is a deployment; the project is an option.
        for i, arg in enumerate(args):
            if arg == "--path" and i + 1 < len(args):
                return os.path.realpath(args[i + 1])
            if arg.startswith("--path="):
                return os.path.realpath(arg[len("--path=") :])
        return os.path.realpath(os.getcwd())
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif arg == "--":
            continue
        elif not arg.startswith("-"):
            return os.path.realpath(arg)
    return os.path.realpath(os.getcwd())


def call(
    root: str | Path, request: dict, timeout: float | None = None, lost: dict | None = None
) -> dict | None:
    """Send ``request`` to ``root``'s daemon; its reply, or None if none answers
    (``lost`` if it took the request and died before it answered)."""
    from vega_dag.daemon.paths import daemon_socket_name
    from vega_dag.unix_rpc import call as rpc

    return rpc(daemon_socket_name(root), request, timeout, lost)


#: What a served rollback says when its daemon died after taking it: the
#: pointer write may or may not have happened, so running it again here could
#: roll back one deployment further (a build or a drift is simply run again).
LOST_ROLLBACK = {
    "code": 1,
    "stderr": "✗ Rollback failed: the project's daemon stopped during the rollback, so whether "
    "it moved a pointer is unknown; `vega-dag status` and `vega-dag history` say where each "
    "region is.\n",
}


def run_via_daemon(argv: list[str]) -> int | None:
    """Run ``vega-dag ARGV`` in the project's daemon; its exit status, or None."""
    if not argv or argv[0] not in COMMANDS or os.environ.get("VEGA_DAG_DAEMON", "").strip() == "0":
        return None
    if any(a in ("-h", "--help") for a in argv):
        return None
    from vega_dag import __version__

    request = {
        "argv": argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "version": __version__,
        # Which installation: a daemon of another venv or checkout (the same
        # version number, other code) must not answer for this one.
        "install": install(),
        # What the command's output sees (colour is for terminals only).
        "tty": [sys.stdout.isatty(), sys.stderr.isatty()],
    }
    lost = LOST_ROLLBACK if argv[0] == "rollback" else None
    reply = call(project_of(argv[1:], argv[0]), request, lost=lost)
    if reply is None or "code" not in reply:
        return None
    sys.stdout.write(reply.get("stdout", ""))
    sys.stderr.write(reply.get("stderr", ""))
    sys.stdout.flush()
    return int(reply["code"])


def install() -> list[str]:
    """This process's installation: its interpreter's prefix and the package's directory."""
    import vega_dag

    return [sys.prefix, os.path.dirname(os.path.abspath(vega_dag.__file__))]
