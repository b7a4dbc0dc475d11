"""``vega-dag store verify``: read back every object of the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vega_dag.cli.options import json_output, project_path
from vega_dag.config import load_config
from vega_dag.errors import VegaError


@click.group("store")
def store_cmd() -> None:
    """Inspect the content-addressed store (.vega/)."""


@store_cmd.command("verify")
@project_path
@json_output
def verify_cmd(path: Path, as_json: bool) -> None:
    """Re-read every object, checking it against its digest; name each damaged one."""
    from vega_dag.store.gc import verify

    try:
        config = load_config(path)
    except VegaError as err:
        click.secho(f"✗ {err}", fg="red", err=True)
        sys.exit(1)
    report = verify(config.store_dir)
    if as_json:
        click.echo(json.dumps(report.to_json(), sort_keys=True))
    else:
        for digest, where, why in report.damaged:
            click.secho(f"✗ {digest}  {where}: {why}", fg="red")
        mark = click.style("✓", fg="green") if not report.damaged else click.style("✗", fg="red")
        click.echo(
            f"{mark} {report.objects} objects read back in {report.seconds:.2f}s"
            + f", {len(report.damaged)} damaged"
        )
    if report.damaged:
        sys.exit(1)
