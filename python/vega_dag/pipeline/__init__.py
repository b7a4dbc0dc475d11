"""The build: scan → graph → compile → bundle → manifest → commit, driven as one pipeline.

Each stage lives in its own package; this one runs them:

    run.py       ``build()`` and the orchestrator that calls the stages in order
    context.py   ``BuildContext``: what every stage is given, and adds to
    result.py    ``BuildResult``, ``BuildError``, ``Reporter``
"""

from vega_dag.pipeline.context import BuildContext
from vega_dag.pipeline.result import BuildError, BuildResult, Reporter
from vega_dag.pipeline.run import analyze_project, build

__all__ = ["BuildContext", "BuildError", "BuildResult", "Reporter", "analyze_project", "build"]
