"""A region agent: one region on its own host, on the shared backends (``vega-dag region serve``).

    vega-dag region serve --name fra --dir /var/lib/vega/fra --listen 0.0.0.0:8080 \\
        --store s3://bucket/prefix --pointers nats://hub:4222/shop --trust /etc/vega/trusted

It is the region front of the local fleet (``regions.server.Region``, its
zygote, workers and code layout), with three differences:

- its store and fleet directory are its own, under ``--dir`` (``store/``,
  ``fleet/``): it never reads the deployer's ``.vega/``. Before it verifies a
  manifest it fetches every object its store lacks from the S3 store
  (``store.ship``), each BLAKE3-checked before it enters that store; a
  damaged or missing object fails the prefetch naming it, and the region
  keeps serving what it served;
- its pointer comes from NATS (the KV watch and re-read of ``watch_nats``),
  and its control is NATS too: a deploy's prefetch is a request on
  ``<ns>.agent.<region>.prefetch`` (``{manifest, deployment, load_timeout,
  wait}``, answered ``{ok, …}`` or ``{ok: false, error}`` naming the route or
  object), and the agent writes ``status.<region>`` in the ``<ns>-agents``
  KV bucket (its URL, what it serves and at which generation, the manifests
  it has loaded, its refusals, a heartbeat, its version) every second and on
  every change. ``regions.agents.AgentFleet`` is the deployer's side;
- it may listen on any address (``--listen``): traffic is served there,
  but the admin endpoints that change state answer only on loopback
  (``regions.server.PUBLIC_ADMIN`` lists the read-only ones answered anywhere).

Trusted keys come from ``--trust DIR`` (``.pub`` files): with any, only a
deployment record signed by one of them is served (``signing.Trust``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from vega_dag.regions.agent_bus import AGENTS_BUCKET as AGENTS_BUCKET  # re-exported
from vega_dag.regions.agent_bus import agents_bucket as agents_bucket
from vega_dag.regions.agent_bus import open_agents_kv as open_agents_kv
from vega_dag.regions.agent_bus import prefetch_subject as prefetch_subject
from vega_dag.regions.agent_bus import status_key as status_key
from vega_dag.regions.server import Region, WorkerLoadError

#: Seconds between two status writes of an idle agent (its heartbeat).
HEARTBEAT_SECONDS = 1.0


class AgentRegion(Region):
    """A ``Region`` whose blobs come from S3 and whose control and status go through NATS."""

    def __init__(
        self,
        name: str,
        directory: Path,
        *,
        pointers: str,
        store_url: str | None,
        url: str,
        trust: Path | None = None,
        observe: dict | None = None,
        control: str | None = None,
    ) -> None:
        fleet, store = directory / "fleet", directory / "store"
        for sub in ("regions", "logs"):
            (fleet / sub).mkdir(parents=True, exist_ok=True)
        store.mkdir(parents=True, exist_ok=True)
        super().__init__(name, fleet, store, observe, pointers)
        self.store_url = store_url
        self.url = url
        #: the NATS servers it takes prefetches on and writes its status to (None: ``pointers``)
        self.control_url = control
        if trust is not None:
            from vega_dag.rollout.signing import Trust

            self.trust = Trust(trust)
        self._remote: Any = None
        self._fetching: dict[str, asyncio.Lock] = {}
        #: deployment → why it was refused (its record unsigned, or by a key not trusted)
        self.refusals: dict[str, str] = {}
        #: manifest → (objects fetched, objects already held, seconds) of its fetch
        self.fetches: dict[str, tuple[int, int, float]] = {}
        self._dirty: asyncio.Event | None = None
        #: why the control connection is down, if it is
        self.control_error: str | None = None
        #: whether its status key has been written since the control connection opened
        self.reported = False

    async def start(self) -> None:
        await super().start()
        self._dirty = asyncio.Event()
        self._spawn(self.control())

    def _notify(self) -> None:
        super()._notify()
        if self._dirty is not None:
            self._dirty.set()

    def refusal(self, deployment: str, manifest: str) -> str | None:
        why = super().refusal(deployment, manifest)
        if why is not None and self.refusals.get(deployment) != why:
            self.refusals[deployment] = why
            while len(self.refusals) > 16:
                self.refusals.pop(next(iter(self.refusals)))
            if self._dirty is not None:
                self._dirty.set()
        return why

    # -- blobs ----------------------------------------------------------------
    def _remote_cache(self) -> Any:
        from vega_dag.store.remote import RemoteCache

        if self._remote is None:
            assert self.store_url is not None
            self._remote = RemoteCache(self.store_url)
        return self._remote

    def _fetch(self, manifest: str) -> None:
        from vega_dag.store.objects import ObjectStore
        from vega_dag.store.ship import fetch_deployment

        done = fetch_deployment(self._remote_cache(), ObjectStore(self.store), manifest)
        self.fetches[manifest] = (done.objects, done.present, round(done.seconds, 4))
        while len(self.fetches) > 8:
            self.fetches.pop(next(iter(self.fetches)))

    async def _verify(self, manifest: str) -> None:
        if manifest in self.verified:
            return
        if self.store_url is not None:
            lock = self._fetching.setdefault(manifest, asyncio.Lock())
            async with lock:
                if manifest in self.verified:
                    return
                from vega_dag.errors import VegaError

                loop = asyncio.get_running_loop()
                try:
                    await loop.run_in_executor(None, self._fetch, manifest)
                except VegaError as err:
                    raise WorkerLoadError(str(err)) from None
                except Exception as err:  # a full disk, a client error: named, never silent
                    why = f"{type(err).__name__}: {err}"
                    raise WorkerLoadError(
                        f"fetching {manifest} from {self.store_url}: {why}"
                    ) from None
                await super()._verify(manifest)
            return
        await super()._verify(manifest)

    # -- status ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        status = super().status()
        status.update(url=self.url, reported=self.reported, control=self.control_error)
        return status

    def agent_status(self) -> dict[str, Any]:
        """What ``status.<region>`` holds (the front's status, and the agent's own)."""
        from vega_dag import __version__

        status = self.status()
        status.update(
            url=self.url,
            version=__version__,
            heartbeat=time.time(),
            agent=True,
            store=self.store_url,
            target_generation=self.target[2] if self.target else 0,
            loaded=sorted(m for m in self.workers if self._loaded(m)),
            verified=sorted(self.verified)[-16:],
            refusals=dict(self.refusals),
            fetches={m: list(f) for m, f in self.fetches.items()},
        )
        return status

    async def control(self) -> None:
        """Answer prefetch requests and write the status key, reconnecting when NATS is lost."""
        from vega_dag.rollout.jetstream import NatsTarget, connect, parse_pointers_url

        assert self.pointers is not None and self._dirty is not None
        # The namespace is the pointers'; the servers may be others (the hub, when
        # the pointers are read through a leaf node on this host).
        pointers = parse_pointers_url(self.pointers)
        control = parse_pointers_url(self.control_url or self.pointers)
        # As many copies as the pointers have: a status bucket of one copy (the
        # default) made every deploy and status fail while its one server was down.
        replicas = max(pointers.replicas, control.replicas)
        where = NatsTarget(control.servers, pointers.namespace, replicas)
        key = status_key(self.name)
        while True:
            nc = None
            try:
                nc = await connect(where, name=f"vega-agent-{self.name}")
                kv = await open_agents_kv(
                    nc.jetstream(timeout=5.0), where.namespace, where.replicas
                )
                await nc.subscribe(
                    prefetch_subject(where.namespace, self.name), cb=self._on_prefetch
                )
                self.control_error = None
                while True:
                    self._dirty.clear()
                    await kv.put(key, json.dumps(self.agent_status()).encode())
                    self.reported = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._dirty.wait(), HEARTBEAT_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a lost server: say so, then connect again
                self.control_error = f"control {where.where}: {err or type(err).__name__}"
                self.reported = False
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()
                await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _on_prefetch(self, msg: Any) -> None:
        # Each request its own task: a slow load must not hold up the next region's answer.
        self._spawn(self._answer_prefetch(msg))

    async def _answer_prefetch(self, msg: Any) -> None:
        try:
            _, payload = await self.answer_prefetch(msg.data)
        except Exception as err:  # the deployer must get an answer, whatever went wrong
            why = f"{type(err).__name__}: {err}"
            payload = {"ok": False, "region": self.name, "error": f"prefetch failed: {why}"}
        if payload["ok"]:
            payload["fetched"] = self.fetches.get(payload["manifest"], [0, 0, 0.0])[0]
        elif self._remote is not None and self._remote.damaged:
            # What failed its BLAKE3 check here: the deployer can put its own copy back.
            payload["damaged"] = sorted(self._remote.damaged)[:64]
        if self._dirty is not None:
            self._dirty.set()
        with contextlib.suppress(Exception):
            await msg.respond(json.dumps(payload).encode())


def valid_name(name: str) -> bool:
    """Whether ``name`` can be a region's KV key and NATS subject token."""
    import re

    return re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name) is not None


def parse_listen(value: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT`` (``[::]:PORT`` for IPv6; ``:PORT`` means every address)."""
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {value}: expected HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def advertised_url(host: str, port: int) -> str:
    """The URL other hosts reach the region at, when ``--url`` does not say."""
    import socket

    if host in ("0.0.0.0", "::"):
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vega_dag.regions.agent")
    parser.add_argument("--name", required=True)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--url", default=None)
    parser.add_argument("--store", default=None)
    parser.add_argument("--pointers", required=True)
    parser.add_argument("--trust", type=Path, default=None)
    parser.add_argument("--control", default=None)
    parser.add_argument("--observe", type=json.loads, default={})
    args = parser.parse_args(argv)
    serve(args.name, args.dir, args.listen, args.url, args.store, args.pointers, args.trust,
          args.observe, args.control)  # fmt: skip


def serve(
    name: str,
    directory: Path,
    listen_at: str,
    url: str | None,
    store_url: str | None,
    pointers: str,
    trust: Path | None,
    observe: dict | None = None,
    control: str | None = None,
) -> None:
    """Run the agent in this process until it is stopped."""
    # Imported before the zygote forks (as regions.server.main does).
    from vega_dag.regions import worker  # noqa: F401
    from vega_dag.regions.server import listen, start

    host, port = parse_listen(listen_at)
    sock = listen(port, host)
    port = sock.getsockname()[1]
    url = url or advertised_url(host, port)
    directory = directory.resolve()
    region = AgentRegion(
        name, directory, pointers=pointers, store_url=store_url, url=url, trust=trust,
        observe=observe, control=control,
    )  # fmt: skip
    start(region, sock, url)


if __name__ == "__main__":
    main()
