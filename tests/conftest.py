"""Shared fixtures for the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_python(
    code: str, *, cwd: Path, env: dict[str, str] | None = None, umask: int | None = None
):
    """Run ``code`` in a fresh interpreter with the given cwd, env overrides and umask."""
    full_env = {**os.environ, **(env or {})}

    def preexec() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=full_env,
        preexec_fn=preexec,
        capture_output=True,
        check=True,
    )


@pytest.fixture
def tree(tmp_path: Path):
    """A factory that writes {relative path: text} under tmp_path/"proj"."""

    def make(files: dict[str, str | bytes], root: Path | None = None) -> Path:
        base = root or tmp_path / "proj"
        for rel, content in files.items():
            path = base / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        base.mkdir(parents=True, exist_ok=True)
        return base

    return make


@pytest.fixture
def make_step_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A factory for an offline index of ``vega-fake-step`` wheels (see tests/step_index.py).

    ``make_step_index(versions, drift_from=None, unsupported=None, broken=())``
    writes the wheels under tmp_path and points pip at them only
    (``PIP_NO_INDEX=1``, ``PIP_FIND_LINKS``), with the step cache in tmp_path
    too (``VEGA_DAG_CACHE_DIR``). Returns the ``StepIndex``.
    """
    from tests.step_index import write_step_index

    def make(versions: list[str], drift_from: str | None = None, **kwargs: object):
        index = write_step_index(tmp_path / "step-index", versions, drift_from, **kwargs)
        monkeypatch.setenv("PIP_NO_INDEX", "1")
        monkeypatch.setenv("PIP_FIND_LINKS", str(index.links))
        monkeypatch.delenv("PIP_INDEX_URL", raising=False)
        monkeypatch.setenv("VEGA_DAG_CACHE_DIR", str(tmp_path / "step-cache"))
        return index

    return make


@pytest.fixture(scope="session")
def pypi_step_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One step cache for the whole session: each real PyPI step installs once."""
    return tmp_path_factory.mktemp("pypi-step-cache")
