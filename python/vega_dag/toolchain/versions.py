"""The released versions of a component, oldest first, from the package index."""

from __future__ import annotations

from vega_dag.errors import VegaError


class VersionsError(VegaError):
    """The versions to bisect are missing, unknown or out of order."""


def index_versions(dist: str) -> list[str]:
    """Every version of ``dist`` on the package index that installs here, oldest first."""
    from vega_dag.compile.steps.venv import index_versions as listed

    return listed(dist)


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
