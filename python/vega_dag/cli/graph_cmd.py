"""``vega-dag graph``: the import graph as DOT/SVG, and ``--why MODULE``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click

from vega_dag.cli.options import project_path


@click.command("graph")
@project_path
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of stdout; a .svg name renders with graphviz's dot.",
)
@click.option(
    "--why",
    "why_module",
    metavar="MODULE",
    help="List the routes a change to MODULE (dotted name or file path) would rebuild.",
)
def graph_cmd(path: Path, output: Path | None, why_module: str | None) -> None:
    """Show the project's first-party import graph (nothing is compiled or written)."""
    from vega_dag.errors import VegaError
    from vega_dag.graph.dag import components, dependents, import_graph, to_dot
    from vega_dag.pipeline import BuildError, analyze_project

    try:
        analysis = analyze_project(path)
    except BuildError as err:
        raise click.ClickException(
            "\n  ".join(["the project cannot be analysed:", *err.problems])
        ) from None
    except VegaError as err:
        raise click.ClickException(str(err)) from None
    if why_module is not None:
        by_path = {m.path: name for name, m in analysis.modules.items()}
        module = by_path.get(why_module.removeprefix("./"), why_module)
        if module not in analysis.modules:
            raise click.BadParameter(
                f"{why_module!r} is not a module of this project", param_hint="--why"
            )
        routes = dependents(analysis.closures, module)
        if not routes:
            click.echo(f"{module}: no route imports it; a change rebuilds no bundle")
        for pattern in routes:
            click.echo(f"{pattern}\t{analysis.routes[pattern].module.path}")
        return
    graph = import_graph(analysis.deps)
    dot = to_dot(graph, {p: r.module.name for p, r in analysis.routes.items()})
    if output is None:
        sys.stdout.write(dot)
    elif output.suffix == ".svg":
        dot_bin = shutil.which("dot")
        if dot_bin is None:
            raise click.ClickException(
                "writing SVG needs graphviz's `dot` (apt-get install graphviz); "
                "use a .dot output name for DOT text"
            )
        subprocess.run([dot_bin, "-Tsvg", "-o", str(output)], input=dot.encode(), check=True)
    else:
        output.write_text(dot)
    cycles = components(graph)
    if cycles and output is not None:
        largest = max(cycles, key=len)
        click.echo(
            f"{len(cycles)} import cycle(s), condensed for scheduling; the largest has "
            f"{len(largest)} modules ({', '.join(largest[:3])}{', …' if len(largest) > 3 else ''})",
            err=True,
        )
