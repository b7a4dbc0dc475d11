"""``vega-dag rollback [DPL]``: the deployment's pointer writes, in reverse."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vega_dag.cli.options import json_output, lock_timeout, pointers_url, quiet


@click.command("rollback")
@click.argument("deployment", required=False)
@click.option(
    "--path",
    "path",
    default=".",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The project (default: .).",
)
@json_output
@pointers_url
@quiet
@lock_timeout
def rollback_cmd(
    deployment: str | None, path: Path, as_json: bool, quiet: bool, lock_timeout: float
) -> None:
    """Undo DEPLOYMENT (default: the latest) in every region it reached."""
    from vega_dag.rollout.rollback import run_command

    code = run_command(
        path,
        deployment,
        as_json=as_json,
        quiet=quiet,
        lock_timeout=lock_timeout,
        echo=click.echo,
        style=click.style,
    )
    if code:
        sys.exit(code)
