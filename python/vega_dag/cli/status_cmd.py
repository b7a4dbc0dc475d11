"""``vega-dag status``: each region's deployment, generation, health and age."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vega_dag.cli.options import json_output, pointers_url, project_path
from vega_dag.errors import VegaError
from vega_dag.rollout.status import NO_REGIONS, collect


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@click.command("status")
@project_path
@json_output
@pointers_url
@click.option(
    "--probe",
    is_flag=True,
    help="Also probe every route of each region's deployment once (health by route).",
)
def status_cmd(path: Path, as_json: bool, probe: bool) -> None:
    """A table of the regions: deployment, generation, health, age, last minute's traffic, URL."""
    try:
        data = collect(path, probe=probe)
    except VegaError as err:
        if as_json:
            click.echo(json.dumps({"error": str(err)}))
        else:
            click.secho(f"✗ {err}", fg="red", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
        return
    show(data)


def show(data: dict) -> None:
    """The human form of ``collect``'s data (the fast path's too, when it has regions)."""
    if data["regions"]:
        _print_table(data["regions"])
    else:
        click.echo(NO_REGIONS)
    for row in data["regions"]:
        if row.get("restarts") and row.get("last_restart"):
            click.echo(_restart_line(row))
    if not data.get("supervised", True):
        click.secho(
            "! No supervisor runs for these regions: one that dies stays down "
            "(`vega-dag regions up` starts the supervisor and what is missing)",
            fg="yellow",
        )
    for dpl in data["rolling"]:
        click.echo(f"… {dpl} is rolling out now")
    for dpl in data["interrupted"]:
        click.secho(
            f"! Interrupted rollout: {dpl} (its deploy process died). Every region serves a "
            f"complete deployment; finish with `vega-dag rollback {dpl}` or deploy again.",
            fg="yellow",
        )


def _restart_line(row: dict) -> str:
    import time

    last = row["last_restart"]
    at = time.strftime("%H:%M:%S UTC", time.gmtime(last["at"]))
    text = (
        f"↻ {row['name']} restarted {row['restarts']}× by the supervisor; last died at {at} "
        f"({last['how']}, after {last['ran_seconds']:g}s)"
    )
    if last.get("serving_at") is not None:
        took = last["serving_at"] - last["at"]
        text += f", serving {last.get('deployment') or 'no deployment'} again {took:.1f}s later"
    return text


def _print_table(rows: list[dict]) -> None:
    # rich costs more start-up than the rest of the command: only with rows to lay out.
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("region", "deployment", "gen", "health", "age", "req 1m", "err", "p99", "url"):
        table.add_column(col)
    for row in rows:
        age = "-" if row["age_seconds"] is None else _age(row["age_seconds"])
        health = row["health"]
        style = "green" if health == "ok" else "red"
        if "probe" in row:
            health = row["probe"]["summary"]
        table.add_row(
            row["name"],
            _deployment_cell(row),
            str(row["generation"]),
            f"[{style}]{health}[/{style}]",
            age,
            *_traffic_cells(row.get("traffic")),
            row["url"] or "-",
        )
    console = Console()
    if not console.is_terminal:
        # Piped or captured: no terminal to fit, so no cell is cut short to fit 80 columns.
        console = Console(width=max(console.width, 160))
    console.print(table)


def _deployment_cell(row: dict) -> str:
    """The deployment, and with a weighted pointer the share of each side."""
    deployment = row["deployment"] or "-"
    weight = row.get("weight", 100)
    if row.get("baseline") and weight < 100:
        return f"{deployment} {weight}% · {row['baseline']} {100 - weight}%"
    return deployment


def _traffic_cells(traffic: dict | None) -> tuple[str, str, str]:
    """The last minute's requests, error rate and p99 ("-" for what is not known)."""
    if not traffic:
        return "-", "-", "-"
    rate = traffic["error_rate"]
    err = "-" if rate is None else f"{rate * 100:.1f}%"
    p99 = "-" if traffic["p99_ms"] is None else f"{traffic['p99_ms']:.0f}ms"
    return str(traffic["requests"]), err, p99
