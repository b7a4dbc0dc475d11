"""The ``vega-dag`` console script: its fast paths, else the click CLI.

Start-up is most of a short command's time (click and its dependencies alone
import in ~40–65 ms), so what can be answered without click is answered here:
``--version``, and a ``build`` the project's daemon runs. Everything else, and
any other spelling (``--version`` among other arguments), goes to click, which
prints the same text from the same constants.
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
    from vega_dag.daemon.client import run_via_daemon

    code = run_via_daemon(argv)
    if code is not None:
        sys.exit(code)
    from vega_dag.cli import main as cli

    cli(prog_name=PROG)
