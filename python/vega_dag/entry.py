"""The ``vega-dag`` console script: the build daemon's fast path, else the CLI."""

from __future__ import annotations

import sys


def main() -> None:
    from vega_dag.daemon.client import run_via_daemon

    code = run_via_daemon(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from vega_dag.cli import main as cli

    cli(prog_name="vega-dag")
