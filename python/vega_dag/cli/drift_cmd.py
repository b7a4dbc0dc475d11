"""``vega-dag drift``: rebuild under varied conditions and compare every output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import msgspec

from vega_dag.cli.options import json_output, project_path, quiet
from vega_dag.errors import VegaError

#: Exit status when an output drifts; a failure to check at all exits 2.
EXIT_DRIFT = 1
EXIT_ERROR = 2


@click.command("drift")
@project_path
@click.option(
    "--all", "everything", is_flag=True, help="Check every module and bundle, not just the change."
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the isolated copies and their outputs in this (new) directory.",
)
@json_output
@quiet
def drift_cmd(path: Path, everything: bool, keep: Path | None, as_json: bool, quiet: bool) -> None:
    """Rebuild the change at PATH twice under varied conditions; fail if any output drifts.

    The change is what differs from git HEAD (staged, unstaged, untracked), or
    from the last build outside git. The two builds run in isolated copies that
    differ in path, TZ, umask, locale, PYTHONHASHSEED, file creation order,
    mtimes and SOURCE_DATE_EPOCH; every output is also compared with the
    store's record for the same input and toolchain. Exit status: 0 no drift,
    1 drift, 2 the check could not run (toolchain mismatch, a failing build).
    """
    from vega_dag.daemon.autostart import ensure_started_for
    from vega_dag.drift.check import check_drift

    if keep is not None and keep.exists():
        raise click.BadParameter(f"{keep} already exists", param_hint="--keep")
    # Its builds run in isolated copies; the daemon serves the next `build`.
    ensure_started_for(path)
    try:
        report = check_drift(path, everything=everything, keep=keep)
    except VegaError as err:
        if as_json:
            click.echo(json.dumps({"error": str(err)}))
        else:
            click.secho("✗ Drift check could not run", fg="red", err=True)
            click.echo(f"  {err}", err=True)
        sys.exit(EXIT_ERROR)
    if as_json:
        data = msgspec.to_builtins(report)
        data["ok"] = report.ok
        click.echo(json.dumps(data, sort_keys=True))
    elif not quiet or not report.ok:
        print_report(report)
    sys.exit(0 if report.ok else EXIT_DRIFT)


def print_report(report) -> None:  # noqa: ANN001 - DriftReport, imported lazily
    what = f"{report.modules_checked} modules and {report.bundles_checked} bundles"
    if report.scope == "change" and not report.touched:
        click.echo(click.style("✓", fg="green") + " No changed modules: nothing to check")
        return
    for drift in report.drifts:
        outputs = ", ".join(
            f"{k} {v.removeprefix('blake3:')[:12]}" for k, v in drift.outputs.items()
        )
        if drift.kind == "module":
            head = f"{drift.name}: compiled output drifts ({outputs})"
        else:
            head = f"route {drift.name} ({drift.file}): bundle drifts ({outputs})"
            if drift.modules:
                head += f"; differing modules: {', '.join(drift.modules)}"
        click.echo(click.style("✗", fg="red") + " " + head)
        for line in drift.difference:
            click.echo(f"    {line}")
        if drift.diffoscope:
            click.echo("    diffoscope:")
            for line in drift.diffoscope:
                click.echo(f"      {line}")
    if report.ok:
        click.echo(
            click.style("✓", fg="green")
            + f" No drift in {what} ({report.compared_with_store} also matched the store) "
            f"in {report.seconds:.2f}s"
        )
    else:
        modules = sorted({m for d in report.drifts for m in d.modules})
        click.echo(
            click.style("✗", fg="red")
            + f" {len(report.drifts)} of the outputs of {what} drift"
            + (f"; modules: {', '.join(modules)}" if modules else "")
        )
        for label, cond in report.conditions.items():
            click.echo(f"  build {label}: {cond}")
