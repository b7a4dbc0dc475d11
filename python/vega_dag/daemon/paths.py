"""Where a project's build daemon listens (see vega_dag.unix_rpc.socket_dir)."""

from __future__ import annotations

from pathlib import Path

from vega_dag.unix_rpc import socket_dir


def daemon_dir(root: Path) -> Path:
    return socket_dir(root, "build-")


def daemon_socket(root: Path) -> Path:
    return daemon_dir(root) / "build.sock"


def daemon_pid_file(root: Path) -> Path:
    return daemon_dir(root) / "pid"


def daemon_log(root: Path) -> Path:
    return daemon_dir(root) / "daemon.log"


def daemon_lock(root: Path) -> Path:
    """Held (flock) by the daemon for its whole life: one daemon per project."""
    return daemon_dir(root) / "lock"


def daemon_root_file(root: Path) -> Path:
    """The project a daemon serves (the directory's name is only a digest of it)."""
    return daemon_dir(root) / "root"
