"""Which files the working-tree change touches.

In a git work tree, the change is what differs from ``HEAD`` (staged or not)
plus untracked files that are not ignored: under pre-commit, which stashes
unstaged edits first, that is exactly what is being committed. Outside git,
it is what differs from the last build's recorded sources. ``None`` means
"everything" (no HEAD yet, no earlier build, or a changed configuration).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from vega_dag.config import ProjectConfig

#: Files whose change can alter every output.
_GLOBAL_INPUTS = ("pyproject.toml", "vega.toml")


def touched_files(config: ProjectConfig) -> set[str] | None:
    """Project-relative POSIX paths the working-tree change touches, or None for all."""
    files = _git_changes(config.root)
    if files is None:
        files = _changes_since_build(config)
    if files is None or any(f in _GLOBAL_INPUTS for f in files):
        return None
    return files


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:  # git not installed
        return None
    return proc.stdout if proc.returncode == 0 else None


def _git_changes(root: Path) -> set[str] | None:
    if _git(root, "rev-parse", "--verify", "-q", "HEAD") is None:
        return None  # not a work tree, or no commit yet
    # --relative: paths relative to root, and only changes under it.
    diff = _git(root, "diff", "HEAD", "--name-only", "--relative", "-z", "--no-renames")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z", ".")
    if diff is None or untracked is None:
        return None
    return {p for p in (diff + untracked).split("\0") if p}


def _changes_since_build(config: ProjectConfig) -> set[str] | None:
    """What the build's own stat-cache scan would call changed (new, edited or removed)."""
    from vega_dag.scan.project import scan_skip_dirs
    from vega_dag.scan.statcache import load_stat_cache, refresh
    from vega_dag.store.state import load_head, state_paths

    stat_path, _, head_path = state_paths(config)
    if load_head(head_path).manifest is None:
        return None  # never built: everything
    changes, _ = refresh(config.root, load_stat_cache(stat_path), skip_dirs=scan_skip_dirs(config))
    return {*changes.changed, *changes.removed}
