"""A full disk during a build: a clear error naming the path, a valid store, then a good build.

On a real (small) tmpfs mounted over the project's ``.vega``; skipped where
mounting is not permitted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.rollout.helpers import write_project
from vega_dag.errors import StorageFullError, storage_error
from vega_dag.store.objects import write_durably


def vega(*args: str) -> subprocess.CompletedProcess:
    # The build runs in this process, not a daemon's: the error path under test is the CLI's.
    env = {**os.environ, "VEGA_DAG_DAEMON": "0"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("vega-dag")), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    where.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) here")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path, leave: int) -> Path:
    """A file taking all but ``leave`` bytes of the filesystem's free space."""
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    filler = directory / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_fails_the_build_clearly_and_the_next_build_succeeds(tmp_path):
    project = write_project(tmp_path / "proj")
    with tmpfs(project / ".vega", "2m") as store:
        filler = fill(store, 16 * 1024)
        failed = vega("build", str(project))
        assert failed.returncode == 1
        assert "Traceback" not in failed.stderr
        assert "no space left on the device (ENOSPC)" in failed.stderr
        assert str(store) in failed.stderr  # names where it was writing
        assert "vega-dag gc" in failed.stderr
        verify = vega("store", "verify", str(project))
        assert verify.returncode == 0, verify.stdout + verify.stderr

        filler.unlink()
        built = vega("build", str(project), "--json")
        assert built.returncode == 0, built.stderr
        assert vega("store", "verify", str(project)).returncode == 0


def test_write_durably_names_the_path_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    target = tmp_path / "packs" / "x.pack"

    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StorageFullError) as caught:
        write_durably(target, b"data")
    assert str(target) in str(caught.value) and "ENOSPC" in str(caught.value)
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert list(target.parent.iterdir()) == []  # the temporary file is gone


def test_storage_error_maps_only_the_machines_faults():
    assert storage_error(OSError(errno.EDQUOT, "quota", "/s/f")).path == "/s/f"
    assert "read-only" in str(storage_error(OSError(errno.EROFS, "ro", "/s")))
    assert storage_error(OSError(errno.ENOENT, "gone", "/s")) is None
    assert storage_error(ValueError("no")) is None
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # what sqlite3 sets on SQLITE_FULL
    assert "pointers.sqlite): no space left on the device (ENOSPC)" in str(storage_error(full))
    other = sqlite3.OperationalError("no such table: pointers")
    other.sqlite_errorcode = 1
    assert storage_error(other) is None
    import pickle

    err = storage_error(OSError(errno.ENOSPC, "full", "/s/p"))
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.errno == errno.ENOSPC
