"""``vega-dag history``: past deployments and rollbacks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from vega_dag.cli.options import json_output, pointers_url, project_path
from vega_dag.config import load_config


@click.command("history")
@project_path
@json_output
@pointers_url
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True)
def history_cmd(path: Path, as_json: bool, limit: int) -> None:
    """Deployments (newest first) with their status, and the pointer moves of each."""
    from vega_dag.errors import VegaError
    from vega_dag.regions.fleet import fleet_dir
    from vega_dag.rollout.pointers import pointers_for

    config = load_config(path)
    try:
        found = pointers_for(config, fleet_dir(config) / "pointers.sqlite")
    except VegaError as err:
        raise click.ClickException(str(err)) from None
    if found is None:
        click.echo("[]" if as_json else "No deployments yet")
        return
    pointers = found
    try:
        deployments = pointers.deployments(limit)
        events = {d.id: pointers.history(d.id) for d in deployments}
    finally:
        pointers.close()
    if as_json:
        out = []
        for d in deployments:
            out.append(
                {
                    "deployment": d.id,
                    "manifest": d.manifest,
                    "status": d.status,
                    "created_at": d.created_at,
                    "actor": d.actor,
                    "detail": d.detail,
                    "signed_by": d.signed_by,
                    "events": [
                        {
                            "region": e.region,
                            "from": e.before,
                            "to": e.after,
                            "at": e.at,
                            "reason": e.reason,
                            "actor": e.actor,
                            # percent of the region's requests `to` answers from then on
                            "weight": e.weight,
                        }
                        for e in reversed(events[d.id])
                    ],
                }
            )
        click.echo(json.dumps(out, sort_keys=True))
        return
    if not deployments:
        click.echo("No deployments yet")
    for d in deployments:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.created_at))
        signed = f", signed {d.signed_by}" if d.signed_by else ""
        click.echo(f"{d.id}  {when}  {d.status:<11} {d.manifest[:19]}…  by {d.actor}{signed}")
        groups: dict[tuple[str, str | None, str | None, int], list[str]] = {}
        for e in reversed(events[d.id]):
            groups.setdefault((e.reason, e.before, e.after, e.weight), []).append(e.region)
        for (reason, before, after, weight), regions in groups.items():
            share = f" {weight}%" if weight < 100 else ""
            click.echo(
                f"    {reason:<13} {before or '-'} → {after or '-'}{share}  "
                f"({len(regions)}: {', '.join(regions)})"
            )
        if d.detail and d.status != "live":
            click.echo(f"    why: {d.detail[:300]}")
