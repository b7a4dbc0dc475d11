"""``vega-dag plan``: the DAG a deploy would run, without running it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vega_dag.cli.options import json_output, pointers_url, project_path
from vega_dag.config import load_config
from vega_dag.errors import VegaError


def make_plan(path: Path) -> dict:
    """What a deploy would do, computed exactly by a dry-run build (nothing is written)."""
    from vega_dag.manifest import decode_manifest
    from vega_dag.manifest.schema import AppRouteEntry
    from vega_dag.pipeline import build
    from vega_dag.plugins.manager import region_target
    from vega_dag.regions import REGION_NAMES
    from vega_dag.rollout.deploy import changed_routes, plan_waves
    from vega_dag.rollout.health import probed_routes
    from vega_dag.rollout.pointers import pointers_for
    from vega_dag.store.objects import ObjectStore

    config = load_config(path)
    result = build(path, dry_run=True)
    compile_ = result.compiled
    target = region_target(config)
    regions = [r.name for r in target.regions()]
    start = not regions
    if start:
        regions = list(REGION_NAMES[: config.vega.rollout.regions])
    waves = plan_waves(regions, config.vega.rollout)
    pointers: dict[str, str | None] = {}
    live: dict[str, str] = {}  # region -> manifest digest it serves
    pstore = pointers_for(config, Path(target.db_path))
    if pstore is not None:
        try:
            for name, ptr in pstore.pointers().items():
                pointers[name] = ptr.deployment
                dep = pstore.deployment(ptr.deployment) if ptr.deployment else None
                if dep is not None:
                    live[name] = dep.manifest
        finally:
            pstore.close()
    moving = [n for n in regions if live.get(n) != result.manifest]
    store = ObjectStore(config.store_dir)
    if result.manifest_data is not None:
        new_manifest = decode_manifest(result.manifest_data)
    else:  # nothing changed: the build's manifest is the stored one
        new_manifest = decode_manifest(store.get(result.manifest))
    # The routes a deploy would probe: those whose bundle differs from what a
    # moving region serves now (every route, for a region serving nothing).
    probe: set[str] = set()
    app_changes: dict[str, str] = {}
    health, mount = config.vega.health, config.vega.app_mount
    for name in moving:
        digest = live.get(name)
        old = decode_manifest(store.get(digest)) if digest and store.has(digest) else None
        changed = changed_routes(old, new_manifest)
        probe.update(r.pattern for r in probed_routes(changed, health, mount))
        for r in changed:
            if isinstance(r, AppRouteEntry):
                app_changes[r.pattern] = r.describe()
    rebuild = sorted(probe)
    nothing = not moving
    nodes = [
        {
            "key": "build",
            "deps": [],
            "cached": not compile_ and not result.bundles_built,
            "describe": f"compile {len(compile_)} module(s), build {result.bundles_built} "
            f"bundle(s), {result.modules_cached} modules from cache → {result.manifest[:19]}…",
        }
    ]
    for name in regions:
        nodes.append(
            {
                "key": f"prefetch:{name}",
                "deps": ["build"],
                "cached": name not in moving,
                "describe": f"{name} loads and verifies the new deployment "
                f"(now {pointers.get(name) or 'none'})",
            }
        )
    prev = [f"prefetch:{n}" for n in regions]
    bake = config.vega.health.bake
    for i, wave in enumerate(waves):
        label = "canary" if i == 0 else f"wave {i}"
        # A weighted wave's steps, as deploy runs them (rollout.deploy.build_schedule).
        for weight in config.vega.rollout.weights:
            step = "" if weight == 100 else f"@{weight}"
            share = "" if weight == 100 else f" ({weight}% of requests)"
            nodes.append(
                {
                    "key": f"promote:{i}{step}",
                    "deps": prev,
                    "cached": False,
                    "describe": f"move {label} pointers{share}: {', '.join(wave)}",
                }
            )
            nodes.append(
                {
                    "key": f"gate:{i}{step}",
                    "deps": [f"promote:{i}{step}"],
                    "cached": False,
                    "describe": f"probe the changed routes in {label}{share}",
                }
            )
            prev = [f"gate:{i}{step}"]
        if bake.bake_s:
            # After the wave's last step: its baseline is the regions still on
            # the previous deployment (rollout.bake).
            nodes.append(
                {
                    "key": f"bake:{i}",
                    "deps": prev,
                    "cached": False,
                    "describe": f"judge {label}'s live traffic for {bake.bake_s:g}s",
                }
            )
            prev = [f"bake:{i}"]
    if bake.watch_s:
        nodes.append(
            {
                "key": "watch",
                "deps": prev,
                "cached": False,
                "describe": f"watch every region's live traffic for {bake.watch_s:g}s",
            }
        )
    return {
        "manifest": result.manifest,
        "compile": compile_,
        "bundles_built": result.bundles_built,
        "moving_regions": moving,
        "rebuild_routes": rebuild,
        "changed_app_routes": [app_changes[p] for p in sorted(app_changes)],
        "start_regions": start,
        "waves": waves,
        "pointers": pointers,
        "maybe_noop": nothing,
        "nodes": nodes,
    }


@click.command("plan")
@project_path
@json_output
@pointers_url
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
        click.echo("  every region already serves this build: a deploy would move no pointer")
    else:
        click.echo(
            f"  {len(plan['moving_regions'])} region(s) would move; "
            f"{len(plan['rebuild_routes'])} changed route(s) would be probed"
        )
        for line in plan["changed_app_routes"][:20]:
            click.echo(f"  changed route {line}")
        if len(plan["changed_app_routes"]) > 20:
            click.echo(f"  … and {len(plan['changed_app_routes']) - 20} more")
