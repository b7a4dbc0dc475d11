"""``vega-dag rollback [DPL]``: the deployment's pointer writes, in reverse."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vega_dag.cli.options import json_output, lock_timeout, quiet
from vega_dag.config import load_config
from vega_dag.errors import VegaError


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
@quiet
@lock_timeout
def rollback_cmd(
    deployment: str | None, path: Path, as_json: bool, quiet: bool, lock_timeout: float
) -> None:
    """Undo DEPLOYMENT (default: the latest) in every region it reached."""
    from vega_dag.plugins.manager import region_target
    from vega_dag.rollout.rollback import rollback

    try:
        config = load_config(path)
        target = region_target(config)
        result = rollback(config, target, deployment, lock_timeout=lock_timeout)
    except VegaError as err:
        if as_json:
            click.echo(json.dumps({"error": str(err)}))
        else:
            click.secho(f"✗ Rollback failed: {err}", fg="red", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(result.to_json(), sort_keys=True))
        return
    if quiet:
        return
    if not result.targets:
        click.echo(f"= {result.deployment} is not live in any region: nothing to roll back")
        return
    for name, to in result.targets.items():
        click.echo(f"  {name:<4} → {to or '(no deployment)'}   {result.seconds[name] * 1000:.0f}ms")
    click.echo(
        click.style("✓", fg="green")
        + f" Rolled back {result.deployment} in {len(result.targets)} regions"
        + f" in {result.total_seconds:.2f}s"
    )
