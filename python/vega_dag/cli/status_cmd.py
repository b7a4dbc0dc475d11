"""``vega-dag status``: each region's deployment, generation, health and age."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from vega_dag.cli.options import json_output, project_path
from vega_dag.config import load_config


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def collect(path: Path, probe: bool = False) -> dict:
    from vega_dag.plugins.manager import region_target
    from vega_dag.regions.fleet import RegionError
    from vega_dag.rollout.pointers import PointerStore

    config = load_config(path)
    target = region_target(config)
    regions = target.regions()
    statuses = target.statuses(regions) if regions else {}
    pointers = PointerStore(target.db_path)
    try:
        ptrs = pointers.pointers()
        lock = pointers.lock_holder()
        rolling = [d for d in pointers.deployments(20) if d.status == "rolling"]
        now = time.time()
        rows = []
        names = [r.name for r in regions] + sorted(set(ptrs) - {r.name for r in regions})
        urls = {r.name: r.url for r in regions}
        for name in names:
            p = ptrs.get(name)
            st = statuses.get(name)
            if st is None:
                health = "down"
            elif isinstance(st, RegionError):
                health = "unreachable"
            elif st.get("error"):
                health = f"degraded: {st['error']}"
            elif p is not None and st.get("deployment") != p.deployment:
                health = "switching"
            else:
                health = "ok"
            row_probe: dict | None = None
            if probe and health == "ok" and p is not None and p.deployment and name in urls:
                row_probe = _probe(config, pointers, urls[name], p.deployment)
                if row_probe["problems"]:
                    health = "routes failing"
            rows.append(
                {
                    "name": name,
                    "url": urls.get(name),
                    "deployment": p.deployment if p else None,
                    "serving": st.get("deployment") if isinstance(st, dict) else None,
                    "generation": p.generation if p else 0,
                    "health": health,
                    "age_seconds": round(now - p.updated_at, 1) if p else None,
                    **({"probe": row_probe} if row_probe is not None else {}),
                }
            )
        interrupted = []
        for d in rolling:
            holder_alive = lock is not None and lock[3]
            if not holder_alive:
                interrupted.append(d.id)
        return {
            "regions": rows,
            "rolling": [d.id for d in rolling if d.id not in interrupted],
            "interrupted": interrupted,
        }
    finally:
        pointers.close()


def _probe(config, pointers, url: str, deployment: str) -> dict:  # noqa: ANN001
    from vega_dag.manifest import decode_manifest
    from vega_dag.rollout.route_health import probe_region
    from vega_dag.store.objects import ObjectStore

    record = pointers.deployment(deployment)
    if record is None:
        return {"summary": "unknown deployment", "problems": [deployment], "p99_ms": None}
    manifest = decode_manifest(ObjectStore(config.store_dir).get(record.manifest))
    summary, problems, latency = probe_region(url, deployment, manifest, config.vega.health)
    return {"summary": summary, "problems": problems, "p99_ms": latency}


@click.command("status")
@project_path
@json_output
@click.option(
    "--probe",
    is_flag=True,
    help="Also probe every route of each region's deployment once (health by route).",
)
def status_cmd(path: Path, as_json: bool, probe: bool) -> None:
    """A table of the regions: deployment, generation, health, age, URL."""
    data = collect(path, probe=probe)
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("region", "deployment", "gen", "health", "age", "url"):
        table.add_column(col)
    for row in data["regions"]:
        age = "-" if row["age_seconds"] is None else _age(row["age_seconds"])
        health = row["health"]
        style = "green" if health == "ok" else "red"
        if "probe" in row:
            health = row["probe"]["summary"]
        table.add_row(
            row["name"],
            row["deployment"] or "-",
            str(row["generation"]),
            f"[{style}]{health}[/{style}]",
            age,
            row["url"] or "-",
        )
    console = Console()
    if data["regions"]:
        console.print(table)
    else:
        click.echo("No regions (start them with `vega-dag regions up`, or deploy)")
    for dpl in data["rolling"]:
        click.echo(f"… {dpl} is rolling out now")
    for dpl in data["interrupted"]:
        click.secho(
            f"! Interrupted rollout: {dpl} (its deploy process died). Every region serves a "
            f"complete deployment; finish with `vega-dag rollback {dpl}` or deploy again.",
            fg="yellow",
        )
