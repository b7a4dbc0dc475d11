"""``vega-dag deploy``: build, then roll out wave by wave behind health gates."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from vega_dag.cli.build_cmd import run_build
from vega_dag.cli.options import json_output, lock_timeout, pointers_url, project_path, quiet
from vega_dag.config import load_config
from vega_dag.errors import VegaError
from vega_dag.rollout.health import GateReport


def _gate_line(report: GateReport) -> str:
    where = ", ".join(report.regions)
    label = "Canary" if report.wave == 0 else f"Wave {report.wave}"
    if len(report.regions) > 6:
        where = f"{len(report.regions)} regions"
    return f"{label} passed in {where}   ({report.summary()})"


def _bake_line(verdict: Any) -> str:
    """One live-traffic verdict: what was judged, for how long, and its numbers."""
    where = ", ".join(verdict.regions)
    if len(verdict.regions) > 6:
        where = f"{len(verdict.regions)} regions"
    label = verdict.label.capitalize()
    extended = f", extended {verdict.extended_s:.1f}s" if verdict.extended_s else ""
    return f"{label} baked {verdict.seconds:.1f}s{extended} in {where}   ({verdict.numbers()})"


class Display:
    """The live progress: a spinner naming the running step, and a line per step done."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.status: Any = None
        self.prefetched = 0
        self.prefetch_total = 0
        if enabled and sys.stderr.isatty():
            from rich.console import Console

            self.console = Console(stderr=True)
            self.status = self.console.status("Starting…")
            self.status.start()

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def update(self, text: str) -> None:
        if self.status is not None:
            self.status.update(text)

    def line(self, text: str) -> None:
        if self.enabled:
            click.echo(text)

    def on_node_start(self, node: Any) -> None:
        kind, _, arg = node.key.partition(":")
        if kind == "prefetch":
            self.prefetch_total += 1
            self.update(f"Prefetching to regions… {self.prefetched}/{self.prefetch_total}")
        elif kind == "promote":
            wave = arg.partition("@")[0]  # "0@10": the canary's 10 % step
            self.update(f"Promoting {'canary' if wave == '0' else f'wave {wave}'}: {node.describe}")
        elif kind == "gate":
            self.update(f"Health gate: {node.describe}")
        elif kind in ("bake", "watch"):
            self.update(f"Live traffic: {node.describe}")

    def on_node_done(self, node: Any, result: Any) -> None:
        kind = node.key.partition(":")[0]
        if kind == "prefetch":
            self.prefetched += 1
            self.update(f"Prefetching to regions… {self.prefetched}/{self.prefetch_total}")
        elif kind == "gate":
            self.line(click.style("✓", fg="green") + " " + _gate_line(result))
        elif kind in ("bake", "watch"):
            for verdict in result if isinstance(result, list) else [result]:
                self.line(click.style("✓", fg="green") + " " + _bake_line(verdict))


def print_failure(err: Any, as_json: bool) -> None:
    outcome = getattr(err, "outcome", None)
    if as_json:
        payload = outcome.to_json() if outcome else {}
        payload["error"] = str(err)
        click.echo(json.dumps(payload, sort_keys=True))
        return
    click.secho(f"✗ Deploy failed: {err}", fg="red", err=True)
    if outcome is None:
        return
    for gate in outcome.gates:
        if not gate.passed:
            label = "canary" if gate.wave == 0 else f"wave {gate.wave}"
            click.echo(f"  gate of {label} ({', '.join(gate.regions)}):", err=True)
            for problem in gate.problems:
                click.echo(f"    {problem}", err=True)
    for verdict in getattr(outcome, "bakes", []):
        if not verdict.passed:
            click.echo(
                f"  live traffic of {verdict.label} ({', '.join(verdict.regions)}):", err=True
            )
            for problem in verdict.problems:
                click.echo(f"    {problem}", err=True)
            click.echo(f"    {verdict.numbers()}", err=True)
    for problem in outcome.problems:
        if "health gate failed" not in problem and "live-traffic" not in problem:
            click.echo(f"  {problem}", err=True)
    back = {n: r for n, r in outcome.regions.items() if r.outcome == "rolled-back"}
    if back:
        times = ", ".join(f"{n} {r.swap_seconds:.3f}s" for n, r in back.items())
        click.echo(f"↩ Rolled back {len(back)} region(s) automatically: {times}", err=True)
    elif outcome.status == "failed":
        click.echo("  No pointer was moved: every region serves what it served before.", err=True)
    if outcome.deployment:
        click.echo(f"  deployment {outcome.deployment} is {outcome.status}", err=True)


@click.command("deploy")
@project_path
@json_output
@pointers_url
@quiet
@lock_timeout
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Compile processes.")
def deploy_cmd(
    path: Path, as_json: bool, quiet: bool, lock_timeout: float, jobs: int | None
) -> None:
    """Build the project at PATH, then roll it out: prefetch, canary, waves, health gates."""
    from vega_dag.cli.build_cmd import print_result
    from vega_dag.plugins.manager import health_checks, region_target
    from vega_dag.rollout.deploy import DeployError, EarlyLoad, Events, Rollout

    early: list[EarlyLoad] = []
    #: the config and region target the early load used (made once, not twice)
    made: dict[str, Any] = {}

    def stored(manifest: str) -> None:
        # The regions load the new deployment while the build records its
        # caches and the deploy takes its lock (a failed build gets here never).
        try:
            made["config"] = load_config(path)
            made["target"] = region_target(made["config"])
            load = EarlyLoad.start(made["config"], made["target"], manifest)
        except Exception:  # never the build's failure: the deploy below reports it
            return
        if load is not None:
            early.append(load)

    build = run_build(
        path, as_json=as_json, quiet=quiet, explain=False, jobs=jobs, on_stored=stored
    )
    show = not (as_json or quiet)
    if show:
        print_result(build, explain=False)
    display = Display(show)
    try:
        config = made["config"] if "config" in made else load_config(path)
        target = made["target"] if "target" in made else region_target(config)
        if show and not target.regions():
            display.line(f"Starting {config.vega.rollout.regions} local regions…")
        events = Events(
            on_node_start=display.on_node_start,
            on_node_done=display.on_node_done,
            on_message=display.line,
        )
        rollout = Rollout(
            config,
            build.manifest,
            target,
            events=events,
            lock_timeout=lock_timeout,
            health_checks=health_checks(config),
            early=early[0] if early else None,
        )
        outcome = rollout.run()
    except DeployError as err:
        display.stop()
        print_failure(err, as_json)
        sys.exit(1)
    except VegaError as err:
        display.stop()
        print_failure(err, as_json)
        sys.exit(1)
    display.stop()
    if as_json:
        click.echo(json.dumps(outcome.to_json(), sort_keys=True))
        return
    if quiet:
        return
    first = next(iter(outcome.regions.values()), None)
    if outcome.status == "unchanged":
        where = f" ({outcome.deployment})" if outcome.deployment else ""
        click.echo(
            f"= Already live in all {len(outcome.regions)} regions{where}: "
            "the manifest equals the live one, no pointer moved"
        )
    else:
        moved = sum(1 for r in outcome.regions.values() if r.outcome == "promoted")
        changed = outcome.changed_app_routes
        if changed:
            # One bundle, many routes: say which of them changed, and how many a gate probed.
            probed = len(outcome.gates[0].routes) if outcome.gates else 0
            counts = f"{len(changed)} changed routes, {probed} probed"
        else:
            counts = f"{len(outcome.changed_routes)} changed routes probed"
        click.echo(
            click.style("✓", fg="green")
            + f" Deployed to {moved} regions in {outcome.seconds:.2f}s"
            + f"   ({counts})"
        )
        for line in changed[:20]:
            click.echo(f"  route {line}")
        if len(changed) > 20:
            click.echo(f"  … and {len(changed) - 20} more")
    if outcome.skipped and outcome.deployment:
        names = ", ".join(outcome.skipped)
        click.secho(
            f"! Skipped {names} (down): converged to {outcome.deployment} once serving again "
            "(`vega-dag regions up` brings a region back now)",
            fg="yellow",
        )
    if first is not None and outcome.deployment:
        click.echo(f"→ {first.url}     (rollback: vega-dag rollback {outcome.deployment})")
