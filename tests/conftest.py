"""Shared fixtures for the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# `vega-dag` subprocesses of the tests use a daemon a test started, and start
# none of their own, unless the run asks (`VEGA_DAG_DAEMON=1 python -m pytest`
# runs every test against daemons the builds start). Either way a daemon
# started under a test's tmp_path is stopped when the test ends, and any
# missed exits on its own soon.
os.environ.setdefault("VEGA_DAG_DAEMON", "attach")
os.environ.setdefault("VEGA_DAG_DAEMON_IDLE_TIMEOUT", "60")


def stop_daemons_under(base: Path) -> None:
    """Stop every build daemon serving a project under ``base``."""
    import contextlib
    import signal

    from vega_dag.daemon.client import call
    from vega_dag.unix_rpc import socket_dir

    base = base.resolve()
    for root_file in socket_dir(base).parent.glob("build-*/root"):
        with contextlib.suppress(OSError, ValueError):
            root = Path(root_file.read_text())
            if not root.is_relative_to(base):
                continue
            pid = int((root_file.parent / "pid").read_text())
            if call(root, {"stop": True}, timeout=10) is None:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(autouse=True, scope="session")
def _no_daemon_outlives_the_run(tmp_path_factory: pytest.TempPathFactory):
    yield
    stop_daemons_under(tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test(request: pytest.FixtureRequest):
    # Asked for before the test, so it is torn down after this fixture.
    base = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if base is not None:
        stop_daemons_under(base)


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
