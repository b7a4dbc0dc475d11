"""``vega-dag logs``: the regions' request logs, merged by time, filtered, or followed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vega_dag.cli.options import project_path
from vega_dag.config import load_config
from vega_dag.errors import VegaError


@click.command("logs")
@project_path
@click.option("--region", "regions", multiple=True, help="Only this region (repeatable).")
@click.option("--deployment", help="Only requests answered by this deployment (dpl_…).")
@click.option("--route", help="Only requests of this route pattern (/api/items/{id}).")
@click.option("-f", "--follow", is_flag=True, help="Print records as they are written.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON lines.")
def logs_cmd(
    path: Path,
    regions: tuple[str, ...],
    deployment: str | None,
    route: str | None,
    follow: bool,
    as_json: bool,
) -> None:
    """One line per request each region served: time, region, deployment, status, duration."""
    from vega_dag.regions import REGION_NAMES
    from vega_dag.regions.fleet import fleet_dir
    from vega_dag.regions.request_log import follow as tail
    from vega_dag.regions.request_log import logged_regions, one_line, records

    try:
        config = load_config(path)
    except VegaError as err:
        click.secho(f"✗ {err}", fg="red", err=True)
        sys.exit(1)
    if not config.vega.observe.request_log:
        click.secho(
            "note: request logs are off ([tool.vega.observe] request_log = false)",
            fg="yellow",
            err=True,
        )
    fleet = fleet_dir(config)
    logged = logged_regions(fleet)
    fleet_regions = set(REGION_NAMES[: config.vega.rollout.regions]) | set(logged)
    for name in regions:
        if name not in fleet_regions:
            known = ", ".join(sorted(fleet_regions)) or "none"
            click.secho(f"✗ unknown region {name!r} (this fleet's: {known})", fg="red", err=True)
            sys.exit(2)
    chosen = list(regions) or sorted(fleet_regions)

    def show(record: dict) -> None:
        click.echo(json.dumps(record, sort_keys=True) if as_json else one_line(record))

    try:
        if follow:
            # From now on only: `vega-dag logs` without --follow prints what is there.
            for record in tail(fleet, chosen, deployment, route):
                show(record)
                sys.stdout.flush()
        else:
            for record in records(fleet, chosen, deployment, route):
                show(record)
    except (KeyboardInterrupt, BrokenPipeError):
        sys.exit(0)
