"""``vega-dag regions up|down|list``: the local fleet."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vega_dag.cli.options import json_output, pointers_url, project_path
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
@pointers_url
@click.option(
    "-n", "--count", type=click.IntRange(1, 24), default=None, help="Regions (default: config)."
)
@json_output
def up(path: Path, count: int | None, as_json: bool) -> None:
    """Start N local region servers (default 24), or the ones of the fleet that are missing."""
    try:
        fleet = _fleet(path)
        wanted = count or fleet.config.vega.rollout.regions
        if hasattr(fleet, "start_missing"):
            regions, started = fleet.start_missing(wanted)
        else:  # a plugin's target: all or nothing
            regions, all_started = fleet.up(wanted)
            started = [r.name for r in regions] if all_started else []
    except VegaError as err:
        click.secho(f"✗ {err}", fg="red", err=True)
        sys.exit(1)
    if as_json:
        payload = {
            "started": bool(started),
            "started_regions": started,
            "regions": [{"name": r.name, "url": r.url} for r in regions],
        }
        click.echo(json.dumps(payload))
        return
    if started and len(started) == len(regions):
        click.echo(click.style("✓", fg="green") + f" Started {len(regions)} regions")
    elif started:
        click.echo(
            click.style("✓", fg="green")
            + f" Started {len(started)} missing region(s): {', '.join(started)}"
            + f" ({len(regions) - len(started)} already running)"
        )
    else:
        click.echo(f"= {len(regions)} regions are already running; nothing changed")
    for r in regions:
        mark = "  (started)" if r.name in started and len(started) < len(regions) else ""
        click.echo(f"  {r.name:<4} {r.url}{mark}")


@regions_cmd.command("down")
@project_path
def down(path: Path) -> None:
    """Stop every local region (and the workers they run)."""
    try:
        stopped = _fleet(path).down()
    except VegaError as err:
        click.secho(f"✗ {err}", fg="red", err=True)
        sys.exit(1)
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
