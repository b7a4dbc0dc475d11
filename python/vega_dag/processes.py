"""Small facts about OS processes, shared by the regions and the pointer store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive; its parent (this process, in tests) has not reaped it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def spawn_detached(
    args: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own session, output appended to ``log``; returns at once.

    Its own session, so a ^C or a caller's exit does not reach it and its group id
    is its pid; none of our file descriptors, so a caller reading our stdout to its
    end (a shell's $(…), a CI step) does not wait for it. The daemon's autostart, the
    fleet and the supervisor all start their long-lived children this way.
    """
    import subprocess

    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,
            close_fds=True,
            cwd=str(cwd),
        )
