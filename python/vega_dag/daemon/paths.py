"""Where a project's build daemon listens: a short path (unix sockets allow 107 bytes)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def daemon_dir(root: Path) -> Path:
    key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"vega-{os.getuid()}" / f"build-{key}"


def daemon_socket(root: Path) -> Path:
    return daemon_dir(root) / "build.sock"


def daemon_pid_file(root: Path) -> Path:
    return daemon_dir(root) / "pid"
