"""The ``vega-dag`` console script: its fast paths, else the click CLI.

Start-up is most of a short command's time (click and its dependencies alone
import in ~40–65 ms), so what can be answered without click is answered here:
``--version``, ``status [PATH] [--json]`` with nothing to lay out in a table,
and a ``build`` the project's daemon runs. Everything else, and any other
spelling (``--version`` among other arguments, ``--probe``, a PATH that is not
a directory), goes to click, which prints the same text from the same code.
"""

from __future__ import annotations

import sys

PROG = "vega-dag"
#: click.version_option's message, used by both paths (one source of truth).
VERSION_MESSAGE = "%(prog)s, version %(version)s"
VERSION_FLAGS = ("-V", "--version")


def main() -> None:
    argv = sys.argv[1:]
    if len(argv) == 1 and argv[0] in VERSION_FLAGS:
        from vega_dag import __version__

        sys.stdout.write(VERSION_MESSAGE % {"prog": PROG, "version": __version__} + "\n")
        sys.stdout.flush()
        return
    if argv and argv[0] == "status" and _status(argv[1:]):
        return
    from vega_dag.daemon.client import run_via_daemon

    code = run_via_daemon(argv)
    if code is not None:
        sys.exit(code)
    from vega_dag.cli import main as cli

    cli(prog_name=PROG)


def _status(args: list[str]) -> bool:
    """``vega-dag status`` without click, if ``args`` are the plain forms; whether it answered."""
    import os

    as_json, paths = False, []
    for arg in args:
        if arg == "--json":
            as_json = True
        elif arg.startswith("-"):
            return False
        else:
            paths.append(arg)
    if len(paths) > 1 or not os.path.isdir(paths[0] if paths else "."):
        return False  # click reports it
    from pathlib import Path

    from vega_dag.errors import VegaError
    from vega_dag.rollout.status import NO_REGIONS, collect

    try:
        data = collect(Path(paths[0] if paths else "."))
    except VegaError:
        return False  # reported as the click command reports it
    if as_json:
        import json

        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    elif data["regions"] or data["rolling"] or data["interrupted"]:
        from vega_dag.cli.status_cmd import show

        show(data)
    else:
        sys.stdout.write(NO_REGIONS + "\n")
    sys.stdout.flush()
    return True
