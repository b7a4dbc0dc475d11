"""What the build's scan of a project leaves out, and which of the skipped files are errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vega_dag import _core
    from vega_dag.config import ProjectConfig


def scan_skip_dirs(config: ProjectConfig) -> list[str]:
    """Directories the build's scan never enters."""
    return [".git", "__pycache__", Path(config.vega.store).parts[0], ".venv", "node_modules"]


def check_skipped(changes: _core.Changes) -> list[str]:
    """The problems among the files the scan skipped, one line each (empty: none)."""
    problems = []
    for path, target, reason in changes.skipped:
        if reason == "symlink-outside-root":
            problems.append(
                f"{path}: symlink to {target} leaves the project; "
                "copy the file in or remove the link"
            )
        elif reason == "broken-symlink" and path.endswith(".py"):
            problems.append(f"{path}: broken symlink (to {target})")
        elif reason == "non-utf8-name" and path.endswith(".py"):
            problems.append(f"{path!r}: file name is not valid UTF-8")
    return problems
