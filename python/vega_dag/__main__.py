"""``python -m vega_dag`` runs the command line (handy under a profiler)."""

from vega_dag.cli import main

main(prog_name="vega-dag")
