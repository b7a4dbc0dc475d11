"""The versions a bisection covers: a range of an ordered list.

The list is given (``--versions``) or comes from the package index
(``vega_dag.compile.steps.venv.index_versions``, oldest first).
"""

from __future__ import annotations

from vega_dag.errors import VegaError


class VersionsError(VegaError):
    """The versions to bisect are missing, unknown or out of order."""


def versions_between(versions: list[str], good: str, bad: str | None = None) -> list[str]:
    """``versions`` from ``good`` to ``bad`` (default: the last), both included."""
    if len(set(versions)) != len(versions):
        raise VersionsError(f"versions are listed more than once: {', '.join(versions)}")
    if good not in versions:
        raise VersionsError(f"known-good version {good} is not among: {', '.join(versions)}")
    start = versions.index(good)
    end = len(versions) - 1
    if bad is not None:
        if bad not in versions:
            raise VersionsError(f"version {bad} is not among: {', '.join(versions)}")
        end = versions.index(bad)
        if end <= start:
            raise VersionsError(f"version {bad} does not come after the known-good {good}")
    if end == start:
        raise VersionsError(f"no version after the known-good {good} to test")
    return versions[start : end + 1]
