"""``vega-dag graph``: the import graph as DOT/SVG, and ``--why MODULE``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click

from vega_dag.build.state import load_state
from vega_dag.cli.build_cmd import run_build
from vega_dag.cli.options import project_path
from vega_dag.config import load_config


@click.command("graph")
@project_path
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of stdout; a .svg name renders with graphviz's dot.")
@click.option("--why", "why_module", metavar="MODULE",
              help="List the routes a change to MODULE (dotted name or file path) would rebuild.")
def graph_cmd(path: Path, output: Path | None, why_module: str | None) -> None:
    """Show the project's first-party import graph (builds first, from cache)."""
    run_build(path, as_json=False, quiet=True, explain=False, jobs=None)
    config = load_config(path)
    state = load_state(config.store_dir / "state" / "build.msgpack")
    from vega_dag.graph.dag import components, dependents, import_graph, to_dot

    edges = {name: rec.deps for name, rec in state.modules.items()}
    if why_module is not None:
        by_path = {rec.path: name for name, rec in state.modules.items()}
        module = by_path.get(why_module.removeprefix("./"), why_module)
        if module not in edges:
            raise click.BadParameter(f"{why_module!r} is not a module of this project", param_hint="--why")
        routes = dependents(state.closures, module)
        if not routes:
            click.echo(f"{module}: no route imports it; a change rebuilds no bundle")
        for pattern in routes:
            click.echo(f"{pattern}\t{state.modules[state.routes[pattern].module].path}")
        return
    graph = import_graph(edges)
    dot = to_dot(graph, {p: r.module for p, r in state.routes.items()})
    if output is None:
        sys.stdout.write(dot)
    elif output.suffix == ".svg":
        dot_bin = shutil.which("dot")
        if dot_bin is None:
            raise click.ClickException("writing SVG needs graphviz's `dot` (apt-get install graphviz); "
                                       "use a .dot output name for DOT text")
        subprocess.run([dot_bin, "-Tsvg", "-o", str(output)], input=dot.encode(), check=True)
    else:
        output.write_text(dot)
    cycles = components(graph)
    if cycles and output is not None:
        click.echo(f"{len(cycles)} import cycle(s), condensed for scheduling: "
                   + "; ".join(" ↔ ".join(c) for c in cycles[:5]), err=True)
