"""Where the drift check makes its copies: /dev/shm when it has room, else TMPDIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vega_dag.drift import sandbox


def test_the_environment_chooses_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(sandbox.SCRATCH_ENV, str(tmp_path))
    assert sandbox.scratch_base(10**15) == str(tmp_path)


def test_a_tmpfs_with_room_is_used_and_one_without_is_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.delenv(sandbox.SCRATCH_ENV, raising=False)
    monkeypatch.setattr(sandbox, "SHM", tmp_path)
    st = os.statvfs(tmp_path)
    room = st.f_bavail * st.f_frsize
    assert sandbox.scratch_base(1024) == str(tmp_path)
    # Too big for ~8 copies: the system's temporary directory (None) serves.
    assert sandbox.scratch_base(room // 8) is None
    monkeypatch.setattr(sandbox, "SHM", tmp_path / "missing")
    assert sandbox.scratch_base(1024) is None


def test_project_files_reports_the_bytes_a_copy_needs(tmp_path: Path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.txt").write_bytes(b"12345")
    files, size = sandbox.project_files(tmp_path, [".git", ".vega"])
    assert files == ["a.py", "b.txt"] and size == 11
