"""``vega-dag toolchain``: show the active toolchain, bisect a component's versions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import msgspec

from vega_dag.cli.options import json_output, project_path
from vega_dag.errors import VegaError


@click.group("toolchain")
def toolchain_cmd() -> None:
    """The toolchain that builds the project: what it is, and how upgrades change outputs."""


def _fail(err: Exception, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"error": str(err)}))
    else:
        click.secho("✗ " + str(err), fg="red", err=True)
    sys.exit(2)


@toolchain_cmd.command("show")
@project_path
@json_output
def show_cmd(path: Path, as_json: bool) -> None:
    """The active toolchain (every part of every cache key) and whether it matches the pin."""
    from vega_dag.compile.toolchain import pin_problems, project_toolchain
    from vega_dag.config import load_config

    try:
        config = load_config(path)
        _, tc = project_toolchain(config)
    except VegaError as err:
        _fail(err, as_json)
        return
    problems = pin_problems(config, tc)
    if as_json:
        data = msgspec.to_builtins(tc)
        click.echo(json.dumps({"toolchain": data, "key": tc.key, "pin_problems": problems}))
        return
    for field in tc.__struct_fields__:
        value = getattr(tc, field)
        if field == "steps":
            value = ", ".join(f"{n}=={v}" for n, v in value) or "none"
        click.echo(f"{field:15} {value}")
    click.echo(f"{'key':15} {tc.key}")
    if problems:
        click.secho("✗ differs from the pin: " + "; ".join(problems), fg="red")
        sys.exit(1)
    click.echo(click.style("✓", fg="green") + " matches the project's pin")


@toolchain_cmd.command("bisect")
@click.argument("component")
@project_path
@click.option("--good", required=True, help="A version whose outputs are known good.")
@click.option(
    "--versions",
    "versions_csv",
    default=None,
    help="The versions to bisect, in release order, comma-separated (default: every "
    "version on the package index from --good to --bad).",
)
@click.option("--bad", default=None, help="The last version to consider (default: the newest).")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to REPORT.json and REPORT.md.",
)
@json_output
def bisect_cmd(
    component: str,
    path: Path,
    good: str,
    versions_csv: str | None,
    bad: str | None,
    report: Path | None,
    as_json: bool,
) -> None:
    """Find the first version of COMPONENT whose build outputs differ from --good's.

    COMPONENT is a registry compile step of the project (``[tool.vega]
    compile_steps``, e.g. python-minifier). About log2(N) builds for N
    versions; each reuses the store's cache. Exit status: 0 when no version
    drifts, 1 when one does, 2 when the bisection could not run.
    """
    from vega_dag.compile.steps.venv import index_versions
    from vega_dag.pipeline import BuildError
    from vega_dag.toolchain.bisect import VersionBuild, bisect_toolchain
    from vega_dag.toolchain.report import to_markdown, write_reports
    from vega_dag.toolchain.versions import versions_between

    def progress(b: VersionBuild) -> None:
        if as_json:
            return
        verdict = "known good" if b.version == good else ("differs" if b.differs else "same")
        click.echo(
            f"  built {component} {b.version}: {verdict} "
            f"({b.modules_compiled} compiled, {b.modules_cached} from cache, {b.seconds:.2f}s)",
            err=True,
        )

    try:
        if versions_csv is not None:
            listed = [v.strip() for v in versions_csv.split(",") if v.strip()]
        else:
            listed = index_versions(component)
        versions = versions_between(listed, good, bad)
        result = bisect_toolchain(path, component, versions, on_build=progress)
    except BuildError as err:
        _fail(VegaError("a build failed:\n" + "\n".join(err.problems)), as_json)
        return
    except VegaError as err:
        _fail(err, as_json)
        return
    if report is not None:
        paths = write_reports(result, report)
        if not as_json:
            click.echo(f"  report: {paths[0]}, {paths[1]}", err=True)
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(result), sort_keys=True))
    else:
        click.echo(to_markdown(result))
    sys.exit(0 if result.first_drifting is None else 1)
