"""Running the CLI and Python on a host of the multi-host network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.multihost.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
VEGA_DAG = str(Path(sys.executable).with_name("vega-dag"))


def host_env(cluster: Cluster, **extra: str) -> dict[str, str]:
    """A host's environment: the shared S3 store's credentials, nothing of the test's own."""
    env = {**os.environ, **cluster.s3_env(), **extra}
    for name in ("VEGA_DAG_POINTERS", "VEGA_DAG_STORE", "VEGA_DAG_POINTERS_LEAF", "PYTHONPATH"):
        if name not in extra:
            env.pop(name, None)
    return env


def vega_on(
    cluster: Cluster, host: str, *args: str, timeout: float = 180, **env: str
) -> subprocess.CompletedProcess:
    """``vega-dag ARGS`` run on ``host``."""
    h = cluster.net.hub if host == "hub" else cluster.net.hosts[host]
    return cluster.net.run(
        h, [VEGA_DAG, *args], env=host_env(cluster, **env), cwd=ROOT, timeout=timeout
    )


def vega_json_on(cluster: Cluster, host: str, *args: str, **env: str) -> dict | list:
    done = vega_on(cluster, host, *args, "--json", **env)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    return json.loads(done.stdout)


def python_on(cluster: Cluster, host: str, code: str, *args: str, timeout: float = 60) -> dict:
    """``code`` run by this interpreter on ``host``; its last line of output, as JSON."""
    h = cluster.net.hub if host == "hub" else cluster.net.hosts[host]
    done = cluster.net.run(
        h, [sys.executable, "-c", code, *args], cwd=ROOT, env=host_env(cluster), timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def deploy_past_the_canary(cluster: Cluster, host: str, *args: str, **env: str):
    """``vega-dag deploy ARGS`` started on ``host``, returned once its canary passed (its
    stdout read up to that line; the rest is the caller's, with ``communicate``)."""
    deploy = cluster.net.popen(
        cluster.net.hosts[host],
        [VEGA_DAG, "deploy", *args],
        env=host_env(cluster, PYTHONUNBUFFERED="1", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert deploy.stdout is not None
    for line in deploy.stdout:
        if "Canary passed" in line:
            break
    return deploy


def hub_pointers(cluster: Cluster, namespace: str, replicas: int = 3) -> str:
    """The pointers URL of the hub cluster: every server, a namespace, ``replicas`` copies."""
    return ",".join(f"{u}/{namespace}" for u in cluster.hub_urls) + f"?replicas={replicas}"


#: Seconds within which writes must resume after a leader's death (measured: ~5 s).
RESUME_WITHIN = 60.0


def until_it_goes_through(
    cluster: Cluster, host: str, args: list[str], **env: str
) -> tuple[list[str], dict]:
    """Run ``vega-dag ARGS --json`` on ``host`` until it succeeds; the failures' messages and
    the outcome. Each failure must be a clear one (no traceback)."""
    import time

    failures: list[str] = []
    deadline = time.monotonic() + RESUME_WITHIN
    while True:
        done = vega_on(cluster, host, *args, "--json", **env)
        if done.returncode == 0:
            return failures, json.loads(done.stdout)
        said = (done.stderr + done.stdout).strip()
        assert "Traceback" not in said, said
        failures.append(f"rc={done.returncode} {said}")
        assert time.monotonic() < deadline, f"writes did not resume: {failures}"
        time.sleep(0.5)


def kill_stream_leader(cluster: Cluster, stream: str) -> str:
    """SIGKILL the hub server leading ``stream`` (from the servers' /jsz); its name."""
    import time

    deadline = time.monotonic() + 30
    while (leader := cluster.stream_leader(stream)) is None:
        assert time.monotonic() < deadline, f"no leader of {stream}"
        time.sleep(0.2)
    cluster.kill(leader)
    return leader
