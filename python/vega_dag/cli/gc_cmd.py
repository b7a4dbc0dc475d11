"""``vega-dag gc``: delete the store's objects nothing kept needs, and say what it freed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vega_dag.cli.options import json_output, lock_timeout, pointers_url, project_path, quiet
from vega_dag.config import load_config
from vega_dag.errors import VegaError


class SizeParam(click.ParamType):
    name = "size"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        from vega_dag.store.gc import parse_size

        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


@click.command("gc")
@project_path
@pointers_url
@click.option(
    "--keep-deployments",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Keep the objects of the newest N deployments (besides those rollback can reach).",
)
@click.option(
    "--keep-days",
    type=click.FloatRange(min=0),
    default=None,
    help="Also keep every deployment younger than D days.",
)
@click.option(
    "--max-size",
    type=SizeParam(),
    default=None,
    help="Drop the oldest kept deployments until the store fits (e.g. 2G, 500M); "
    "never the head or what rollback can reach.",
)
@click.option("--dry-run", is_flag=True, help="Report what would be freed; delete nothing.")
@json_output
@quiet
@lock_timeout
def gc_cmd(
    path: Path,
    keep_deployments: int,
    keep_days: float | None,
    max_size: int | None,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
    lock_timeout: float,
) -> None:
    """Delete what no kept deployment, rollback target or the build head needs.

    Packs with many dead objects are rewritten. Safe against a concurrent
    build or deploy (they wait) and against a kill at any point.
    """
    from vega_dag.store.gc import GcPolicy, collect, human_size

    try:
        config = load_config(path)
        report = collect(
            config,
            GcPolicy(keep_deployments, keep_days, max_size),
            dry_run=dry_run,
            lock_timeout=lock_timeout,
        )
    except VegaError as err:
        if as_json:
            click.echo(json.dumps({"error": str(err)}))
        else:
            click.secho(f"✗ gc failed: {err}", fg="red", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report.to_json(), sort_keys=True))
        return
    if quiet:
        return
    for note in report.notes:
        click.secho(f"! {note}", fg="yellow")
    verb = "Would free" if dry_run else "Freed"
    click.echo(
        click.style("✓", fg="green")
        + f" {verb} {human_size(report.freed)} of {human_size(report.bytes_before)}"
        + f"   ({report.objects_before - report.objects_kept} objects; "
        + f"{report.packs_deleted} packs deleted, {report.packs_compacted} compacted, "
        + f"{report.loose_deleted} loose objects, {report.actions_dropped} action-cache entries)"
        + f" in {report.seconds:.2f}s"
    )
    click.echo(
        f"  kept {len(report.kept_deployments)} deployments and the build head"
        + f" ({human_size(report.bytes_after)})"
        + (f"; dropped {len(report.dropped_deployments)}" if report.dropped_deployments else "")
    )
