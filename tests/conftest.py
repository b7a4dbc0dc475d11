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
