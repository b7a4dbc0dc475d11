"""``vega-dag daemon``: start, stop or inspect a project's resident build process."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from vega_dag.cli.options import project_path


@click.group("daemon")
def daemon_cmd() -> None:
    """A resident build process per project: `vega-dag build` hands builds to it."""


def _status(root: Path) -> dict | None:
    from vega_dag.daemon.client import call

    return call(root, {"status": True}, timeout=5.0)


@daemon_cmd.command("start")
@project_path
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=1),
    default=3 * 3600.0,
    show_default=True,
    help="Seconds without a build after which the daemon exits.",
)
def start_cmd(path: Path, idle_timeout: float) -> None:
    """Start the build daemon for the project at PATH (nothing changes if it runs)."""
    from vega_dag.config import load_config

    root = load_config(path).root
    running = _status(root)
    if running is not None:
        click.echo(f"✓ The build daemon for {root} already runs (pid {running['pid']})")
        return
    from vega_dag.daemon.autostart import spawn
    from vega_dag.daemon.paths import daemon_log

    spawn(root, idle_timeout, auto=False)
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        status = _status(root)
        if status is not None:
            click.echo(
                click.style("✓", fg="green")
                + f" Build daemon for {root} running (pid {status['pid']}); "
                "`vega-dag build` uses it"
            )
            return
        time.sleep(0.05)
    click.secho(f"✗ The build daemon did not start (see {daemon_log(root)})", fg="red")
    sys.exit(1)


@daemon_cmd.command("stop")
@project_path
def stop_cmd(path: Path) -> None:
    """Stop the build daemon of the project at PATH."""
    from vega_dag.config import load_config
    from vega_dag.daemon.client import call

    root = load_config(path).root
    reply = call(root, {"stop": True}, timeout=30.0)
    if reply is None:
        click.echo(f"No build daemon runs for {root}")
        return
    click.echo(click.style("✓", fg="green") + f" Stopped the build daemon (pid {reply['pid']})")


@daemon_cmd.command("status")
@project_path
def status_cmd(path: Path) -> None:
    """Whether the build daemon of the project at PATH runs."""
    from vega_dag.config import load_config

    root = load_config(path).root
    status = _status(root)
    if status is None:
        click.echo(f"No build daemon runs for {root}")
        sys.exit(1)
    click.echo(f"Build daemon for {root}: pid {status['pid']}, vega-dag {status['version']}")
    watch = status.get("watch")
    if watch:
        click.echo(
            f"  watching {watch['directories']} directories; {watch['scans']} full scan(s), "
            f"the last because: {watch['last_scan_reason']}"
        )
    else:
        click.echo("  not watching the tree (no inotify): every build scans it")
