"""Where a project's build daemon listens (see vega_dag.unix_rpc.socket_dir)."""

from __future__ import annotations

import os

from vega_dag.unix_rpc import TYPE_CHECKING, socket_dir, socket_dir_name

if TYPE_CHECKING:
    from pathlib import Path

_PREFIX = "build-"
_SOCKET = "build.sock"


def daemon_dir(root: Path) -> Path:
    return socket_dir(root, _PREFIX)


def daemon_socket(root: Path) -> Path:
    return daemon_dir(root) / _SOCKET


def daemon_socket_name(root: str | os.PathLike[str]) -> str:
    """``daemon_socket`` as a string, without importing pathlib (the client's fast path)."""
    return os.path.join(socket_dir_name(root, _PREFIX), _SOCKET)


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
