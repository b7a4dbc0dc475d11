"""The build: scan → graph → compile → store → bundle → manifest, driven as one pipeline."""

from vega_dag.pipeline.run import (
    BuildError,
    BuildResult,
    Reporter,
    analyze_project,
    build,
    scan_skip_dirs,
)

__all__ = ["BuildError", "BuildResult", "Reporter", "analyze_project", "build", "scan_skip_dirs"]
