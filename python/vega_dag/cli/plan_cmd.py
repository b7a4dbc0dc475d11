"""``vega-dag plan``: the DAG a deploy would run, without running it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vega_dag.cli.options import json_output, project_path
from vega_dag.config import load_config
from vega_dag.errors import VegaError


def make_plan(path: Path) -> dict:
    from vega_dag.build.pipeline import _state_paths, analyze_project
    from vega_dag.build.state import load_state
    from vega_dag.plugins.manager import region_target
    from vega_dag.regions import REGION_NAMES
    from vega_dag.rollout.deploy import plan_waves
    from vega_dag.rollout.pointers import PointerStore

    config = load_config(path)
    analysis = analyze_project(path)
    state = load_state(_state_paths(config)[1])
    compile_ = sorted(
        m.path
        for name, m in analysis.modules.items()
        if (old := state.modules.get(name)) is None or old.source != analysis.digests[m.path]
    )
    changed = {n for n, m in analysis.modules.items() if m.path in compile_}
    rebuild = sorted(p for p, c in analysis.closures.items() if changed.intersection(c))
    target = region_target(config)
    regions = [r.name for r in target.regions()]
    start = not regions
    if start:
        regions = list(REGION_NAMES[: config.vega.rollout.regions])
    waves = plan_waves(regions, config.vega.rollout)
    pointers = {}
    if Path(target.db_path).exists():
        store = PointerStore(target.db_path)
        try:
            pointers = {n: p.deployment for n, p in store.pointers().items()}
        finally:
            store.close()
    nothing = not compile_ and not rebuild and bool(pointers)
    nodes = [
        {
            "key": "build",
            "deps": [],
            "cached": not compile_,
            "describe": f"compile {len(compile_)} module(s), rebuild ≤{len(rebuild)} bundle(s), "
            f"{len(analysis.modules) - len(compile_)} modules from cache",
        }
    ]
    for name in regions:
        nodes.append(
            {
                "key": f"prefetch:{name}",
                "deps": ["build"],
                "cached": nothing,
                "describe": f"{name} loads and verifies the new deployment "
                f"(now {pointers.get(name) or 'none'})",
            }
        )
    prev = [f"prefetch:{n}" for n in regions]
    for i, wave in enumerate(waves):
        label = "canary" if i == 0 else f"wave {i}"
        nodes.append(
            {
                "key": f"promote:{i}",
                "deps": prev,
                "cached": False,
                "describe": f"move {label} pointers: {', '.join(wave)}",
            }
        )
        nodes.append(
            {
                "key": f"gate:{i}",
                "deps": [f"promote:{i}"],
                "cached": False,
                "describe": f"probe the changed routes in {label}",
            }
        )
        prev = [f"gate:{i}"]
    return {
        "compile": compile_,
        "rebuild_routes": rebuild,
        "start_regions": start,
        "waves": waves,
        "pointers": pointers,
        "maybe_noop": nothing,
        "nodes": nodes,
    }


@click.command("plan")
@project_path
@json_output
def plan_cmd(path: Path, as_json: bool) -> None:
    """Show the DAG `vega-dag deploy` would run: what is cached, what compiles, what moves."""
    try:
        plan = make_plan(path)
    except VegaError as err:
        click.secho(f"✗ {err}", fg="red", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(plan, sort_keys=True))
        return
    for node in plan["nodes"]:
        mark = "cached" if node["cached"] else "run"
        deps = node["deps"]
        after = f"  ← {deps[0]}" + (f" +{len(deps) - 1}" if len(deps) > 1 else "") if deps else ""
        click.echo(f"  {node['key']:<16} [{mark:<6}] {node['describe']}{after}")
    for path_ in plan["compile"][:20]:
        click.echo(f"  would compile {path_}")
    if plan["start_regions"]:
        click.echo(f"  would start {sum(len(w) for w in plan['waves'])} local regions first")
    if plan["maybe_noop"]:
        click.echo("  no source changed: if the live manifest equals the build's, no pointer moves")
