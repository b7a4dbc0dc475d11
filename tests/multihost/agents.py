"""Region agents on the region hosts r1–r3 (fra, iad, sfo), the deployer on ``dev``.

Each region host runs ``vega-dag region serve`` listening on its own address,
reading its pointer through its leaf node (VEGA_DAG_POINTERS_LEAF) and
writing its status to the hub; the deployer talks to NATS and S3 in the hub
and probes the agents over the bridge (through httpx: they are not on its
loopback). Used by test_agents.py (one fleet per test) and
test_agent_faults.py (one fleet per module, restored between tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.multihost.cluster import Cluster
from tests.multihost.helpers import VEGA_DAG, host_env, hub_pointers, vega_json_on, vega_on
from tests.multihost.netns import call_in
from tests.rollout.helpers import write_project

HOSTS = {"fra": "r1", "iad": "r2", "sfo": "r3"}
PORT = 8000
#: The deployer calls an agent down after this many seconds without a heartbeat.
DOWN_S = "2"


def get(url: str) -> tuple[int, dict, bytes]:
    """GET ``url`` from the namespace of the calling thread (``call_in``).

    A client of its own each time: a pooled connection (remote_http's client
    is one per process) opened from another namespace to the same address
    would carry the request over that namespace's link, cut or not.
    """
    import httpx

    try:
        answer = httpx.get(url, timeout=10.0)
    except httpx.TimeoutException as err:
        raise TimeoutError(f"timed out ({type(err).__name__})") from None
    except httpx.TransportError as err:
        raise OSError(str(err)) from None
    return answer.status_code, dict(answer.headers), answer.content


def _reported(url: str) -> bool:
    try:
        code, _, body = get(url + "/__vega/status")
    except OSError:
        return False
    return code == 200 and bool(json.loads(body).get("reported"))


@dataclass
class Fleet:
    cluster: Cluster
    root: Path
    pointers: str
    store: str
    base: Path
    #: region → its agent's process (``ip netns exec`` execs it: the pid is the agent's)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: region → the directory its agent runs in (its store, its fleet records)
    dirs: dict[str, Path] = field(default_factory=dict)
    #: the environment every deployer command on dev gets (a signing key, …)
    env: dict[str, str] = field(default_factory=dict)
    trust: Path | None = None

    @property
    def namespace(self) -> str:
        return self.store.rpartition("/")[2]

    def url(self, region: str) -> str:
        return f"http://{self.cluster.net.hosts[HOSTS[region]].address}:{PORT}"

    # -- the agents --------------------------------------------------------------
    def start(
        self,
        region: str,
        *,
        directory: Path | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> subprocess.Popen:
        """(Re)start ``region``'s agent on its host; what is left of an old one is killed first."""
        self.kill(region)
        host_name = HOSTS[region]
        host = self.cluster.net.hosts[host_name]
        directory = directory or self.dirs.get(region) or self.base / host_name
        self.dirs[region] = directory
        agent_env = host_env(
            self.cluster,
            VEGA_DAG_POINTERS_LEAF=self.cluster.leaf_pointers(host_name),
            **(env or {}),
        )
        args = [VEGA_DAG, "region", "serve", "--name", region, "--dir", str(directory),
                "--listen", f"{host.address}:{PORT}", "--url", self.url(region),
                "--store", self.store, "--pointers", self.pointers]  # fmt: skip
        if self.trust is not None:
            args += ["--trust", str(self.trust)]
        with open(self.base / f"{host_name}.log", "ab") as log:
            self.procs[region] = self.cluster.net.popen(
                host, args, env=agent_env, stdout=log, stderr=log, start_new_session=True
            )
        if wait:
            self.wait_reported(region)
        return self.procs[region]

    def kill(self, region: str) -> None:
        """SIGKILL the agent's whole session (its zygote and workers too)."""
        proc = self.procs.pop(region, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for region in list(self.procs):
            self.kill(region)

    # -- what they serve -----------------------------------------------------------
    def served_from(self, where: str, region: str) -> str | None:
        """The deployment ``region`` answers GET /api with, asked from host ``where``."""
        code, headers, _ = call_in(self.cluster.net.hosts[where].ns, get, self.url(region) + "/api")
        return headers.get("x-vega-deployment") if code == 200 else None

    def served(self) -> dict[str, str | None]:
        """Each region's answer, asked from its own host (its own namespace, its own client)."""
        return {region: self.served_from(HOSTS[region], region) for region in HOSTS}

    def vega(self, *args: str, host: str = "dev", **env: str) -> dict:
        return vega_json_on(
            self.cluster, host, *args, VEGA_DAG_AGENT_DOWN_S=DOWN_S, **{**self.env, **env}
        )

    def vega_raw(self, *args: str, host: str = "dev", **env: str) -> subprocess.CompletedProcess:
        return vega_on(
            self.cluster, host, *args, VEGA_DAG_AGENT_DOWN_S=DOWN_S, **{**self.env, **env}
        )

    def status_rows(self) -> dict[str, dict]:
        return {r["name"]: r for r in self.vega("status", str(self.root))["regions"]}

    def truth(self) -> dict[str, str]:
        """Region → deployment, asserting that status and the agents' answers agree."""
        rows = self.status_rows()
        served = self.served()
        assert served == {n: r["deployment"] for n, r in rows.items()}, (served, rows)
        assert {r["health"] for r in rows.values()} == {"ok"}, rows
        return served

    def wait_down(self, region: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            rows = self.status_rows()
            if rows.get(region, {}).get("health", "down") == "down":
                return
            assert time.monotonic() < deadline, f"{region} never went down: {rows}"
            time.sleep(0.5)

    def wait_up(self, region: str) -> None:
        """Until ``status`` (the deployer's view: a fresh heartbeat) has ``region`` up again.

        After a link comes back, the agent's NATS client reconnects on its own
        schedule and its ``reported`` flag can still be the one from before the
        cut: the deployer's view is what the next command acts on.
        """
        self.wait_reported(region)
        deadline = time.monotonic() + 60
        while True:
            rows = self.status_rows()
            if rows.get(region, {}).get("health", "down") != "down":
                return
            assert time.monotonic() < deadline, f"{region} never came back: {rows}"
            time.sleep(0.5)

    def wait_reported(self, region: str) -> None:
        deadline = time.monotonic() + 60
        while not call_in(self.cluster.net.hosts["dev"].ns, _reported, self.url(region)):
            proc = self.procs[region]
            assert proc.poll() is None, f"agent {region} exited ({proc.returncode})"
            assert time.monotonic() < deadline, f"agent {region} never reported"
            time.sleep(0.1)

    def wait_serving(self, region: str, deployment: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while (now := self.served_from(HOSTS[region], region)) != deployment:
            assert time.monotonic() < deadline, f"{region} serves {now}, not {deployment}"
            time.sleep(0.2)


def agent_fleet(cluster: Cluster, base: Path, *, trust: Path | None = None, **project) -> Fleet:
    """A project on dev deploying to agents on r1–r3 (not started: ``Fleet.start``)."""
    unique = f"ag{os.getpid() % 10000}{time.monotonic_ns() % 10**6}"
    pointers = hub_pointers(cluster, unique)
    store = f"s3://vega-cache/{unique}"
    root = write_project(base / "proj", **project)
    with open(root / "pyproject.toml", "a") as f:
        f.write(
            f'\n[tool.vega.backend]\nstore = "{store}"\npointers = "{pointers}"\n'
            'regions = "agents"\n'
        )
    # A region host's link may be down: the deploy goes on without it.
    text = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        text.replace("[tool.vega.rollout]\n", '[tool.vega.rollout]\non_region_down = "skip"\n')
    )
    return Fleet(cluster, root, pointers, store, base, trust=trust)


@contextlib.contextmanager
def running(fleet: Fleet):
    """Every agent started (each reporting); all killed however the block ends."""
    try:
        for region in HOSTS:
            fleet.start(region, wait=False)
        for region in HOSTS:
            fleet.wait_reported(region)
        yield fleet
    finally:
        fleet.stop_all()


def set_version(root: Path, version: str) -> None:
    (root / "lib" / "version.py").write_text(f'VERSION = "{version}"\n')
