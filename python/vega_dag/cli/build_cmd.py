"""``vega-dag build``: the incremental, content-addressed build."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from vega_dag.cli.options import json_output, project_path, quiet, store_url
from vega_dag.errors import VegaError
from vega_dag.pipeline import BuildError, BuildResult, Reporter, build

#: Cold builds with more modules than this to compile show a progress bar.
PROGRESS_THRESHOLD = 200
#: Up to this many compiled modules are listed by name.
LIST_LIMIT = 20


def run_build(
    path: Path,
    *,
    as_json: bool,
    quiet: bool,
    explain: bool,
    jobs: int | None,
    verify: bool = False,
    store: str | None = None,
    on_stored: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build with the CLI's progress display; exit 1 with the problems on failure.

    ``on_stored``: ``Reporter.on_stored`` (a deploy's early load).
    """
    reporter = Reporter(on_stored=on_stored)
    progress = None
    task = None
    show = not (as_json or quiet)

    def start(count: int) -> None:
        nonlocal progress, task
        if show and count > PROGRESS_THRESHOLD and sys.stderr.isatty():
            from rich.progress import Progress

            progress = Progress(transient=True)
            progress.start()
            task = progress.add_task("Compiling", total=count)

    def done(path: str) -> None:
        if progress is not None and task is not None:
            progress.advance(task)

    reporter.on_compile_start = start
    reporter.on_compiled = done
    from vega_dag.daemon.autostart import ensure_started_for

    ensure_started_for(path)  # for the next build: this one runs here
    try:
        result = build(
            path, explain=explain, workers=jobs, reporter=reporter, verify=verify, store_url=store
        )
    except BuildError as err:
        fail(err.problems, as_json)
    except VegaError as err:
        fail([str(err)], as_json)
    else:
        for line in result.warnings:
            click.secho(f"warning: {line}", fg="yellow", err=True)
        return result
    finally:
        if progress is not None:
            progress.stop()
    raise AssertionError("unreachable")


def fail(problems: list[str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"error": problems}))
    else:
        click.secho("✗ Build failed", fg="red", err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
    sys.exit(1)


def print_result(result: BuildResult, *, explain: bool) -> None:
    for path in result.compiled[:LIST_LIMIT]:
        click.echo(f"Compiling {path}…")
    if len(result.compiled) > LIST_LIMIT:
        click.echo(f"… and {len(result.compiled) - LIST_LIMIT} more")
    if explain:
        for line in result.explain or ["nothing was rebuilt: every output came from the cache"]:
            click.echo(f"  why: {line}")
    summary = f"({result.modules_compiled} modules compiled, {result.modules_cached} from cache"
    summary += f"; {result.bundles_built} bundles built, {result.bundles_cached} from cache)"
    click.echo(click.style("✓", fg="green") + f" Built in {result.seconds:.2f}s   {summary}")
    click.echo(f"  manifest {result.manifest}")


@click.command("build")
@project_path
@json_output
@quiet
@click.option(
    "--explain", is_flag=True, help="Say why each rebuilt module or bundle missed the cache."
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Compile processes (default: cores).",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Read back every reused output and check its digest; rebuild damaged ones.",
)
@store_url
def build_cmd(
    path: Path,
    as_json: bool,
    quiet: bool,
    explain: bool,
    jobs: int | None,
    verify: bool,
    store: str | None,
) -> None:
    """Build the project at PATH (default: .): compile what changed, bundle each route."""
    result = run_build(
        path, as_json=as_json, quiet=quiet, explain=explain, jobs=jobs, verify=verify, store=store
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), sort_keys=True))
    elif not quiet:
        print_result(result, explain=explain)
