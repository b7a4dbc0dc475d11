"""``vega-dag regions up|down|list``: the local fleet."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vega_dag.cli.options import json_output, project_path
from vega_dag.config import load_config
from vega_dag.errors import VegaError


@click.group("regions")
def regions_cmd() -> None:
    """Start, stop and list the project's local regions."""


def _fleet(path: Path):
    from vega_dag.plugins.manager import region_target

    return region_target(load_config(path))


@regions_cmd.command("up")
@project_path
@click.option(
    "-n", "--count", type=click.IntRange(1, 24), default=None, help="Regions (default: config)."
)
@json_output
def up(path: Path, count: int | None, as_json: bool) -> None:
    """Start N local region servers (default 24), unless they already run."""
    try:
        fleet = _fleet(path)
        regions, started = fleet.up(count or fleet.config.vega.rollout.regions)
    except VegaError as err:
        click.secho(f"✗ {err}", fg="red", err=True)
        sys.exit(1)
    if as_json:
        payload = {"started": started, "regions": [{"name": r.name, "url": r.url} for r in regions]}
        click.echo(json.dumps(payload))
        return
    if started:
        click.echo(click.style("✓", fg="green") + f" Started {len(regions)} regions")
    else:
        click.echo(f"= {len(regions)} regions are already running; nothing changed")
    for r in regions:
        click.echo(f"  {r.name:<4} {r.url}")


@regions_cmd.command("down")
@project_path
def down(path: Path) -> None:
    """Stop every local region (and the workers they run)."""
    stopped = _fleet(path).down()
    if stopped:
        click.echo(click.style("✓", fg="green") + f" Stopped {len(stopped)} regions")
    else:
        click.echo("= No regions were running")


@regions_cmd.command("list")
@project_path
@json_output
def list_(path: Path, as_json: bool) -> None:
    """The running regions and their URLs."""
    regions = _fleet(path).regions()
    if as_json:
        click.echo(json.dumps([{"name": r.name, "url": r.url, "pid": r.pid} for r in regions]))
        return
    for r in regions:
        click.echo(f"{r.name:<4} {r.url}  (pid {r.pid})")
    if not regions:
        click.echo("No regions are running (start them with `vega-dag regions up`)")
