"""The pointer store on NATS JetStream (``[tool.vega.backend] pointers = "nats://…"``).

The same ``PointerBackend`` as the SQLite file, laid out as

- ``<ns>-pointers``, a KV bucket with one key per region: the pointer record
  (every field of ``RegionPointer`` but the generation, plus the move that
  wrote it: from, reason, actor). The key's KV revision is the generation,
  and a move is ``update(last=revision)`` (``create`` for a region's first
  pointer), so a write that raced another is refused by the server.
- ``<ns>-deployments``, a KV bucket with one key per deployment record.
- ``<ns>-locks``, a KV bucket holding the deploy lock: a ``create`` with a
  per-message TTL, refreshed by its holder while it runs. A holder that dies
  stops refreshing and its lock expires (``LOCK_TTL``); one whose process is
  gone on this host is taken over at once, as with SQLite.
- ``<ns>-history``, a stream (subjects ``<ns>.history.<deployment>.<region>``)
  that refuses deletes and purges: the append-only history. The KV keeps at
  most 64 revisions of a key, so it cannot be the history.

A multi-region swap is one CAS write per region (sent at once), then their
history entries, not one transaction. When a write is refused (a conflict)
the moves that were written are written back (CAS again) before
``PointerConflictError`` is raised, and no history is written: the store is
left as before. When the connection is lost midway, the regions written so
far stay on the new deployment: the pointer records (which name the move that
wrote them) say so even where their history entries were lost, the deploy
stays ``rolling``, and the next deploy (which marks it ``interrupted``) or a
``vega-dag rollback DPL`` puts them back, as after a deploy killed mid-wave.

nats-py is asyncio; the rollout is threads. One event loop thread per process
runs the client and every call waits on it with a timeout. nats-py is imported
only when a store is opened, never on the CLI's start-up path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from vega_dag.processes import pid_alive
from vega_dag.rollout.pointer_url import LOCAL as LOCAL  # re-exported: the names moved
from vega_dag.rollout.pointer_url import POINTERS_ENV as POINTERS_ENV
from vega_dag.rollout.pointer_url import pointers_url as pointers_url
from vega_dag.rollout.pointers import (
    Deployment,
    HistoryEntry,
    LockHeldError,
    Move,
    PointerConflictError,
    PointerStoreError,
    RegionPointer,
    Signer,
    UnknownDeploymentError,
    new_deployment_id,
)

if TYPE_CHECKING:
    import ssl


_T = TypeVar("_T")

#: Credentials and TLS, by the NATS CLI's names (``VEGA_DAG_`` ones first).
CREDS_ENV = ("VEGA_DAG_NATS_CREDS", "NATS_CREDS")
CA_ENV = ("VEGA_DAG_NATS_CA", "NATS_CA")
CERT_ENV = ("VEGA_DAG_NATS_CERT", "NATS_CERT")
KEY_ENV = ("VEGA_DAG_NATS_KEY", "NATS_KEY")
#: Seconds a deploy lock lives unless its holder refreshes it (every third of it).
LOCK_TTL = 15.0
#: Seconds any one request may take before the store gives up on the server.
TIMEOUT = 10.0
#: Seconds between a watcher's re-reads of its key: a KV watcher can report
#: its initial values done before delivering them (nats.py issue 842).
REREAD_SECONDS = 0.5
DEFAULT_NAMESPACE = "vega"

_NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,48}")
_SCHEMES = ("nats", "tls")


class PointersConfigError(PointerStoreError):
    """A pointers URL that cannot be used (``reason`` without the URL)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"pointers {url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class NatsTarget:
    #: the servers, as given (credentials in a URL stay there for the client)
    servers: list[str]
    namespace: str
    #: copies JetStream keeps of each bucket and stream this store creates (``?replicas=N``)
    replicas: int = 1

    @property
    def where(self) -> str:
        """The servers without credentials, for messages."""
        return ",".join(_redact(s) for s in self.servers)


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    path = parts.path if parts.path not in ("", "/") else ""
    return f"{parts.scheme}://{host}{port}{path}"


def parse_pointers_url(value: str | list[str]) -> NatsTarget:
    """The servers and namespace of ``nats://[USER:PASS@]HOST:PORT[/NAMESPACE]`` (a list, or
    comma-separated, for a cluster; every URL names the same namespace, or none)."""
    urls = value if isinstance(value, list) else value.split(",")
    urls = [u.strip() for u in urls if u.strip()]
    shown = ",".join(urls) if isinstance(value, list) else value
    if not urls:
        raise PointersConfigError(shown, 'expected "nats://HOST:PORT" (or several, for a cluster)')
    servers, namespaces, replicas = [], set(), set()
    for url in urls:
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as err:
            raise PointersConfigError(_redact_safe(url), f"not a URL: {err}") from None
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise PointersConfigError(
                _redact_safe(url),
                'expected "nats://HOST:PORT" or "tls://HOST:PORT" (optionally /NAMESPACE)',
            )
        ns = parts.path.strip("/")
        if ns:
            if not _NAMESPACE.fullmatch(ns):
                raise PointersConfigError(
                    _redact(url), f"namespace {ns!r}: letters, digits, '-' and '_' only"
                )
            namespaces.add(ns)
        if parts.fragment:
            raise PointersConfigError(_redact(url), "no fragment is accepted")
        if parts.query:
            replicas.add(_replicas(url, parts.query))
        netloc = parts.netloc if port else f"{parts.netloc}:4222"
        servers.append(urllib.parse.urlunsplit((parts.scheme, netloc, "", "", "")))
    if len(namespaces) > 1:
        raise PointersConfigError(
            shown if "@" not in shown else ",".join(_redact(u) for u in urls),
            f"the URLs name different namespaces: {', '.join(sorted(namespaces))}",
        )
    if len(replicas) > 1:
        raise PointersConfigError(
            ",".join(_redact(u) for u in urls), "the URLs ask for different replicas"
        )
    return NatsTarget(
        servers,
        namespaces.pop() if namespaces else DEFAULT_NAMESPACE,
        replicas.pop() if replicas else 1,
    )


def _replicas(url: str, query: str) -> int:
    """``replicas=N`` (1–5, JetStream's limit), the one query a pointers URL takes."""
    try:
        given = urllib.parse.parse_qs(query, strict_parsing=True)
    except ValueError:
        given = {}
    if set(given) != {"replicas"} or len(given["replicas"]) != 1:
        raise PointersConfigError(_redact(url), f"unknown query {query!r} (only replicas=N)")
    value = given["replicas"][0]
    if not value.isdigit() or not 1 <= int(value) <= 5:
        raise PointersConfigError(_redact(url), f"replicas={value}: expected 1 to 5")
    return int(value)


def _redact_safe(url: str) -> str:
    try:
        return _redact(url)
    except ValueError:
        return "(an unparsable URL)"


def store_identity(url: str | None) -> str:
    """Which pointer store ``url`` is, as a region reports it: "sqlite" or "nats/NAMESPACE"."""
    return "sqlite" if url is None else f"nats/{parse_pointers_url(url).namespace}"


def _env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def connect_options(target: NatsTarget) -> dict[str, Any]:
    """nats-py's ``connect`` options: credentials and TLS from the environment."""
    options: dict[str, Any] = {}
    creds = _env(CREDS_ENV)
    if creds:
        if not os.path.isfile(creds):
            raise PointersConfigError(target.where, f"credentials file {creds} does not exist")
        options["user_credentials"] = creds
    ca, cert, key = _env(CA_ENV), _env(CERT_ENV), _env(KEY_ENV)
    if ca or cert or any(s.startswith("tls://") for s in target.servers):
        options["tls"] = _tls_context(target, ca, cert, key)
    return options


def _tls_context(
    target: NatsTarget, ca: str | None, cert: str | None, key: str | None
) -> ssl.SSLContext:
    import ssl

    try:
        context = ssl.create_default_context(cafile=ca)
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise PointersConfigError(target.where, f"TLS files: {err}") from None
    return context


class _Loop:
    """The process's event loop thread, on which every nats-py call runs."""

    _lock = threading.Lock()
    _instance: _Loop | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vega-nats", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> _Loop:
        with cls._lock:
            if cls._instance is None:
                cls._instance = _Loop()
            return cls._instance


async def connect(target: NatsTarget, name: str = "vega-dag") -> Any:
    """A nats-py connection to ``target`` (``PointerStoreError`` naming it when none answers)."""
    import nats
    import nats.errors

    async def quiet(_: Exception) -> None:
        # nats-py logs every failed reconnect attempt; callers report what matters.
        return None

    try:
        return await nats.connect(
            servers=target.servers,
            name=name,
            connect_timeout=2,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.5,
            error_cb=quiet,
            **connect_options(target),
        )
    except (TimeoutError, OSError, nats.errors.Error) as err:
        why = str(err) or type(err).__name__
        if isinstance(err, nats.errors.NoServersError):
            why = "no server answered"
        raise PointerStoreError(f"pointers {target.where}: cannot connect ({why})") from None


class Buckets:
    """The KV buckets and the history stream of one namespace, created when missing."""

    def __init__(self, js: Any, namespace: str, replicas: int = 1) -> None:
        self.js = js
        self.ns = namespace
        self.replicas = replicas
        self.history_stream = f"{namespace}-history"
        self.pointers: Any = None
        self.deployments: Any = None
        self.locks: Any = None

    async def open(self, create: bool = True) -> None:
        self.pointers = await self._kv(f"{self.ns}-pointers", create, history=16)
        self.deployments = await self._kv(f"{self.ns}-deployments", create, history=4)
        self.locks = await self._kv(f"{self.ns}-locks", create, history=1)
        if create:
            await self._history()

    async def _kv(self, bucket: str, create: bool, history: int) -> Any:
        from nats.js.errors import BucketNotFoundError

        try:
            return await self.js.key_value(bucket)
        except BucketNotFoundError:
            if not create:
                raise
        # An existing bucket is used as it is: an operator may create them
        # replicated (`nats kv add --replicas 3`); two creators race harmlessly.
        return await self.js.create_key_value(
            bucket=bucket, history=history, replicas=self.replicas
        )

    async def _history(self) -> None:
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        try:
            await self.js.stream_info(self.history_stream)
        except NotFoundError:
            await self.js.add_stream(
                StreamConfig(
                    name=self.history_stream,
                    subjects=[f"{self.ns}.history.>"],
                    deny_delete=True,
                    deny_purge=True,
                    num_replicas=self.replicas,
                )
            )


#: The environment variable naming a region host's leaf node, through which its
#: region reads its pointer (``nats://127.0.0.1:4222?domain=LEAF[&hub=HUB]``).
LEAF_ENV = "VEGA_DAG_POINTERS_LEAF"
#: The hub's JetStream domain when the leaf URL names none.
HUB_DOMAIN = "hub"
_DOMAIN = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class LeafTarget:
    """A leaf node on the region's own host, and the JetStream domains either side."""

    server: str
    #: the leaf's JetStream domain, where the mirrors live
    domain: str
    #: the hub's JetStream domain, which the mirrors copy from
    hub: str = HUB_DOMAIN


def parse_leaf_url(value: str) -> LeafTarget:
    """``nats://HOST:PORT?domain=LEAF[&hub=HUB]`` (credentials and TLS as for the hub)."""
    shown = _redact_safe(value.strip())
    try:
        parts = urllib.parse.urlsplit(value.strip())
        port = parts.port
        query = urllib.parse.parse_qs(parts.query, strict_parsing=bool(parts.query))
    except ValueError as err:
        raise PointersConfigError(shown, f"leaf: not a URL: {err}") from None
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise PointersConfigError(shown, 'leaf: expected "nats://HOST:PORT?domain=LEAF"')
    unknown = set(query) - {"domain", "hub"}
    domain = (query.get("domain") or [""])[-1]
    hub = (query.get("hub") or [HUB_DOMAIN])[-1]
    if unknown or not _DOMAIN.fullmatch(domain) or not _DOMAIN.fullmatch(hub):
        raise PointersConfigError(
            shown, "leaf: expected ?domain=LEAF[&hub=HUB] (JetStream domain names)"
        )
    netloc = parts.netloc if port else f"{parts.netloc}:4222"
    server = urllib.parse.urlunsplit((parts.scheme, netloc, "", "", ""))
    return LeafTarget(server, domain, hub)


def leaf_from_env() -> LeafTarget | None:
    value = os.environ.get(LEAF_ENV, "").strip()
    return parse_leaf_url(value) if value else None


class MirrorBuckets(Buckets):
    """The pointer and deployment buckets as read-only mirrors in a leaf node's domain.

    A mirror is a stream in the leaf's own JetStream that copies the hub's
    bucket stream: reads are answered by the leaf, so during a partition the
    region still reads its last pointer, and it catches up once the link is
    back. The deploy lock and the history are not mirrored (a region reads
    neither). Nothing is written here: a write through a leaf's domain-bound
    KV fails in nats-py, and writers talk to the hub.
    """

    def __init__(self, js: Any, namespace: str, leaf: LeafTarget, hub_js: Any = None) -> None:
        super().__init__(js, namespace)
        self.leaf = leaf
        #: the hub's JetStream, seen through the leaf (read only: to check a source exists)
        self.hub_js = hub_js

    async def open(self, create: bool = True) -> None:
        self.pointers = await self._mirror(f"{self.ns}-pointers", history=16)
        self.deployments = await self._mirror(f"{self.ns}-deployments", history=4)

    async def _mirror(self, bucket: str, history: int) -> Any:
        from nats.js.api import ExternalStream, StreamConfig, StreamSource
        from nats.js.errors import NotFoundError

        stream = f"KV_{bucket}"
        try:
            await self.js.stream_info(stream)
        except NotFoundError:
            if self.hub_js is not None:
                # A mirror of a stream the hub does not have yet waits long to begin
                # copying once it appears: made only when there is something to copy
                # (until then the region's watch tries again, as for a lost server).
                try:
                    await self.hub_js.stream_info(stream)
                except NotFoundError:
                    raise PointerStoreError(
                        f"pointers: the hub has no bucket {bucket} yet (nothing deployed)"
                    ) from None
            hub_api = ExternalStream(api=f"$JS.{self.leaf.hub}.API")
            source = StreamSource(name=stream, external=hub_api)
            # Two regions on one host race to create it; the same config is no error.
            await self.js.add_stream(
                StreamConfig(name=stream, mirror=source, max_msgs_per_subject=history)
            )
        return await self.js.key_value(bucket)


async def open_reader(
    target: NatsTarget, name: str = "vega-dag", leaf: LeafTarget | None = None
) -> tuple[Any, Buckets]:
    """A connection and the buckets a region reads its pointer from.

    Through its host's leaf node (``leaf``, else VEGA_DAG_POINTERS_LEAF) when
    there is one, else straight from ``target``.
    """
    leaf = leaf if leaf is not None else leaf_from_env()
    if leaf is None:
        nc = await connect(target, name=name)
        buckets = Buckets(nc.jetstream(timeout=5.0), target.namespace, target.replicas)
    else:
        nc = await connect(NatsTarget([leaf.server], target.namespace), name=name)
        buckets = MirrorBuckets(
            nc.jetstream(timeout=5.0, domain=leaf.domain),
            target.namespace,
            leaf,
            hub_js=nc.jetstream(timeout=5.0, domain=leaf.hub),
        )
    try:
        await buckets.open()
    except BaseException:
        with contextlib.suppress(Exception):
            await nc.close()
        raise
    return nc, buckets


def _encode(record: dict) -> bytes:
    return msgspec.json.encode(record, order="sorted")


def pointer_record(pointer: RegionPointer, **move: Any) -> bytes:
    """Every field of ``pointer`` but its generation (the KV revision), and the move."""
    record = {f.name: getattr(pointer, f.name) for f in dataclasses.fields(pointer)}
    record.pop("generation")
    return _encode({**record, **move})


def decode_pointer(region: str, value: bytes | None, revision: int) -> RegionPointer:
    """The ``RegionPointer`` a KV entry holds; fields it lacks take their defaults."""
    data = msgspec.json.decode(value or b"{}")
    known = {f.name for f in dataclasses.fields(RegionPointer)}
    given = {k: v for k, v in data.items() if k in known}
    given.update(region=region, generation=revision)
    given.setdefault("deployment", None)
    given.setdefault("updated_at", 0.0)
    return RegionPointer(**given)


def _pointer_after(move: Move, now: float) -> RegionPointer:
    """The pointer a move writes; fields ``Move`` shares with ``RegionPointer`` carry over."""
    extra = {
        f.name: getattr(move, f.name)
        for f in dataclasses.fields(RegionPointer)
        if f.name not in ("region", "deployment", "generation", "updated_at")
        and hasattr(move, f.name)
    }
    if not (extra.get("weight", 100) < 100 and extra.get("baseline") is not None):
        # As in the SQLite store: a full weight needs no baseline, and no baseline
        # means a full weight.
        extra.update(weight=100, baseline=None)
    return RegionPointer(move.region, move.after, move.generation, now, **extra)


class JetStreamPointers:
    """A ``PointerBackend`` on NATS JetStream (see the module docstring)."""

    def __init__(self, url: str, *, lock_ttl: float = LOCK_TTL, timeout: float = TIMEOUT) -> None:
        self.target = parse_pointers_url(url)
        self.where = self.target.where
        self.lock_ttl = lock_ttl
        self.timeout = timeout
        #: why the deploy lock this store held was lost (then no swap is written)
        self.lock_lost: str | None = None
        self._loop = _Loop.get()
        self.nc: Any = None
        self.nc = self._run(connect(self.target))
        self.js = self.nc.jetstream(timeout=timeout)
        self.b = Buckets(self.js, self.target.namespace, self.target.replicas)
        self._run(self.b.open())

    def _run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        import nats.errors

        future = asyncio.run_coroutine_threadsafe(coro, self._loop.loop)
        limit = (timeout or self.timeout) + 2.0
        try:
            return future.result(limit)
        except TimeoutError:
            future.cancel()
            raise PointerStoreError(f"pointers {self.where}: no answer in {limit:.0f}s") from None
        except (nats.errors.Error, OSError) as err:
            if isinstance(err, PointerStoreError):
                raise
            why = str(err) or type(err).__name__
            if isinstance(err, nats.errors.NoRespondersError):
                why = "no JetStream answered (is the server started with -js?)"
            raise PointerStoreError(f"pointers {self.where}: {why}") from None

    def close(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                self._run(self.nc.close(), timeout=2.0)
            self.nc = None

    # -- deployments ----------------------------------------------------------
    def create_deployment(
        self,
        manifest: str,
        project: str,
        config: dict,
        env: dict[str, str],
        actor: str,
        signer: Signer | None = None,
    ) -> Deployment:
        return self._run(self._create_deployment(manifest, project, config, env, actor, signer))

    async def _create_deployment(
        self,
        manifest: str,
        project: str,
        config: dict,
        env: dict[str, str],
        actor: str,
        signer: Signer | None,
    ) -> Deployment:
        from nats.js.errors import KeyWrongLastSequenceError

        # What is signed is what a region reads back: the stored JSON, parsed.
        config = msgspec.json.decode(_encode(config))
        env = msgspec.json.decode(_encode(env))
        while True:
            now, dpl_id = time.time(), new_deployment_id()
            signed_by, signature = signer(dpl_id, manifest, config, env) if signer else ("", "")
            dpl = Deployment(
                dpl_id, manifest, project, config, env, now, actor, "rolling", "",
                signed_by, signature,
            )  # fmt: skip
            try:
                await self.b.deployments.create(dpl.id, _encode(dataclasses.asdict(dpl)))
                return dpl
            except KeyWrongLastSequenceError:
                continue  # the same id in the same millisecond: draw another

    def set_status(self, deployment: str, status: str, detail: str = "") -> None:
        self._run(self._set_status(deployment, status, detail))

    async def _set_status(self, deployment: str, status: str, detail: str) -> None:
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        while True:
            try:
                entry = await self.b.deployments.get(deployment)
            except KeyNotFoundError:
                return
            data = msgspec.json.decode(entry.value)
            data.update(status=status, detail=detail)
            try:
                await self.b.deployments.update(deployment, _encode(data), last=entry.revision)
                return
            except KeyWrongLastSequenceError:
                continue  # another status write came first: apply ours on top

    def deployment(self, deployment: str) -> Deployment | None:
        return self._run(self._deployment(deployment))

    async def _deployment(self, deployment: str) -> Deployment | None:
        from nats.js.errors import InvalidKeyError, KeyNotFoundError

        try:
            entry = await self.b.deployments.get(deployment)
        except (KeyNotFoundError, InvalidKeyError):
            return None
        return msgspec.convert(msgspec.json.decode(entry.value), Deployment)

    def require(self, deployment: str) -> Deployment:
        found = self.deployment(deployment)
        if found is None:
            raise UnknownDeploymentError(deployment, [d.id for d in self.deployments(5)])
        return found

    def deployments(self, limit: int = 50) -> list[Deployment]:
        return self._run(self._deployments(limit))

    async def _deployments(self, limit: int) -> list[Deployment]:
        records = await self._all("deployments")
        found = [msgspec.convert(msgspec.json.decode(v), Deployment) for v, _ in records.values()]
        found.sort(key=lambda d: (d.created_at, d.id), reverse=True)
        return found[:limit]

    async def _all(self, name: str) -> dict[str, tuple[bytes, int]]:
        """Key → (value, revision) of every live key of bucket ``NS-name``, in one pass of its
        stream (``KV_<bucket>``, subjects ``$KV.<bucket>.<key>``)."""
        from nats.js.api import DeliverPolicy

        bucket = f"{self.b.ns}-{name}"
        info = await self.js.stream_info(f"KV_{bucket}")
        if info.state.messages == 0:
            return {}
        found: dict[str, tuple[bytes, int]] = {}
        prefix = f"$KV.{bucket}."
        sub = await self.js.subscribe(
            f"{prefix}>",
            stream=f"KV_{bucket}",
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=self.timeout)
                key = msg.subject[len(prefix) :]
                op = (msg.headers or {}).get("KV-Operation")
                if op in ("DEL", "PURGE"):
                    found.pop(key, None)
                else:
                    found[key] = (msg.data, msg.metadata.sequence.stream)
                if msg.metadata.num_pending == 0:
                    return found
        finally:
            await sub.unsubscribe()

    # -- pointers -------------------------------------------------------------
    def pointers(self) -> dict[str, RegionPointer]:
        records = self._run(self._all("pointers"))
        return {key: decode_pointer(key, v, rev) for key, (v, rev) in sorted(records.items())}

    def pointer(self, region: str) -> RegionPointer:
        return self._run(self._pointer(region))

    async def _pointer(self, region: str) -> RegionPointer:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self.b.pointers.get(region)
        except KeyNotFoundError:
            return RegionPointer(region, None, 0, 0.0)
        return decode_pointer(region, entry.value, entry.revision)

    def swap(self, moves: list[Move], deployment: str, reason: str, actor: str) -> float:
        """Every move by CAS, in order; a refused one writes the earlier ones back (see above)."""
        if self.lock_lost:
            raise PointerStoreError(f"pointers {self.where}: {self.lock_lost}; nothing was written")
        return self._run(self._swap(moves, deployment, reason, actor))

    async def _cas(self, move: Move, now: float, deployment: str, reason: str, actor: str) -> int:
        """One CAS pointer write; the new revision (the record names the move, see above)."""
        record = pointer_record(
            _pointer_after(move, now),
            moved_from=move.before,
            by=deployment,
            reason=reason,
            actor=actor,
        )
        if move.generation == 0:
            return int(await self.b.pointers.create(move.region, record))
        return int(await self.b.pointers.update(move.region, record, last=move.generation))

    async def _append(
        self, moves: list[Move], now: float, deployment: str, reason: str, actor: str
    ) -> None:
        """The history entries of ``moves``: sent in order on one connection, so stored in order."""
        entries = [
            (
                f"{self.b.ns}.history.{deployment}.{m.region}",
                _encode(
                    {
                        "deployment": deployment, "region": m.region, "from": m.before,
                        "to": m.after, "at": now, "reason": reason, "actor": actor,
                        "weight": m.weight if m.baseline is not None else 100,
                    }
                ),
            )
            for m in moves
        ]  # fmt: skip
        await asyncio.gather(
            *(self.js.publish(subj, data, stream=self.b.history_stream) for subj, data in entries)
        )

    async def _swap(self, moves: list[Move], deployment: str, reason: str, actor: str) -> float:
        from nats.js.errors import KeyWrongLastSequenceError

        now = time.time()
        # Every region's CAS at once: one round trip for the wave, not one per region.
        results = await asyncio.gather(
            *(self._cas(m, now, deployment, reason, actor) for m in moves), return_exceptions=True
        )
        done = [(m, r) for m, r in zip(moves, results, strict=True) if isinstance(r, int)]
        failed = [
            (m, r) for m, r in zip(moves, results, strict=True) if isinstance(r, BaseException)
        ]
        if not failed:
            await self._append(moves, now, deployment, reason, actor)
            return now
        refused = [(m, e) for m, e in failed if isinstance(e, KeyWrongLastSequenceError)]
        if len(refused) < len(failed):
            # Not a conflict (the server was lost): what was written stays, its history
            # if it can be written (touched_by also reads the pointer records).
            with contextlib.suppress(Exception):
                await self._append([m for m, _ in done], now, deployment, reason, actor)
            raise next(e for _, e in failed if not isinstance(e, KeyWrongLastSequenceError))
        move = refused[0][0]
        actual = (await self._pointer(move.region)).generation
        left = await self._undo(done, deployment, reason, actor)
        if left:
            with contextlib.suppress(Exception):
                stuck = [m for m, _ in done if m.region in left]
                await self._append(stuck, now, deployment, reason, actor)
            raise PointerStoreError(
                f"region {move.region}: its pointer moved underneath this write "
                f"(expected generation {move.generation}, found {actual}); writing back "
                f"the other moves failed too: {', '.join(left)} stay on "
                f"{move.after} (roll back {deployment})"
            ) from None
        raise PointerConflictError(move.region, move.generation, actual) from None

    async def _undo(
        self, done: list[tuple[Move, int]], deployment: str, reason: str, actor: str
    ) -> list[str]:
        """Write ``done`` back (no history: the store is as before); the regions not written."""
        now = time.time()
        backs = [Move(m.region, revision, m.after, m.before) for m, revision in done]
        results = await asyncio.gather(
            *(self._cas(b, now, deployment, f"{reason}-undone", actor) for b in backs),
            return_exceptions=True,
        )
        return [b.region for b, r in zip(backs, results, strict=True) if not isinstance(r, int)]

    # -- history --------------------------------------------------------------
    def history(self, deployment: str | None = None, limit: int = 1000) -> list[HistoryEntry]:
        return self._run(self._history(deployment, limit))

    async def _history(self, deployment: str | None, limit: int) -> list[HistoryEntry]:
        from nats.js.api import ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        subject = f"{self.b.ns}.history.{deployment or '*'}.*"
        info = await self.js.stream_info(self.b.history_stream)
        if info.state.messages == 0:
            return []
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        if deployment is None and info.state.last_seq - limit + 1 > info.state.first_seq:
            # The newest ``limit`` entries only: every entry matches the filter.
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=info.state.last_seq - limit + 1,
            )
        try:
            sub = await self.js.subscribe(
                subject, stream=self.b.history_stream, ordered_consumer=True, config=config
            )
        except NotFoundError:
            return []
        entries: list[HistoryEntry] = []
        try:
            info = await sub.consumer_info()
            # Sent to us already (perhaps not read yet) plus still to send: none means none.
            sent = info.delivered.consumer_seq if info.delivered else 0
            if not sent and not info.num_pending:
                return []
            while True:
                msg = await sub.next_msg(timeout=self.timeout)
                e = msgspec.json.decode(msg.data)
                entries.append(
                    HistoryEntry(
                        msg.metadata.sequence.stream,
                        e["deployment"],
                        e["region"],
                        e["from"],
                        e["to"],
                        e["at"],
                        e["reason"],
                        e["actor"],
                        e.get("weight", 100),
                    )
                )
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        entries.reverse()
        return entries[:limit]

    def touched_by(self, deployment: str) -> dict[str, str | None]:
        """Region → the deployment it served before ``deployment`` first reached it.

        From the history, and from the pointer records too: a move whose
        history entry was lost with the connection still names where it came from.
        """
        before: dict[str, str | None] = {}
        for e in reversed(self.history(deployment)):
            if e.after == deployment:
                before.setdefault(e.region, e.before)
        records = self._run(self._all("pointers"))
        for region, (value, _) in sorted(records.items()):
            data = msgspec.json.decode(value)
            if data.get("deployment") == deployment and data.get("by") == deployment:
                before.setdefault(region, data.get("moved_from"))
        return before

    # -- the deploy lock ------------------------------------------------------
    def lock_holder(self) -> tuple[str, int, float, bool] | None:
        found = self._run(self._lock())
        if found is None:
            return None
        data, _ = found
        if data.get("released"):
            return None
        alive = data["host"] != socket.gethostname() or pid_alive(data["pid"])
        return data["holder"], data["pid"], data["acquired_at"], alive

    async def _lock(self) -> tuple[dict, int] | None:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self.b.locks.get("deploy")
        except KeyNotFoundError:
            return None
        return msgspec.json.decode(entry.value), entry.revision

    async def _put_lock(self, record: bytes, last: int) -> int:
        """A CAS write of the lock that lives ``lock_ttl`` unless written again."""
        ack = await self.js.publish(
            f"$KV.{self.b.ns}-locks.deploy",
            record,
            stream=f"KV_{self.b.ns}-locks",
            headers={"Nats-Expected-Last-Subject-Sequence": str(last)},
            msg_ttl=max(1, round(self.lock_ttl)),
        )
        return int(ack.seq)

    async def _acquire(self, record: bytes) -> tuple[int | None, bool, tuple[dict, int] | None]:
        """(revision, took over, holder): the revision is None while another holds it."""
        from nats.js.errors import APIError

        held = await self._lock()
        last = held[1] if held else 0
        if held is not None:
            data, _ = held
            if data.get("released") or (
                data["host"] == socket.gethostname() and not pid_alive(data["pid"])
            ):
                try:
                    return await self._put_lock(record, last), not data.get("released"), None
                except APIError:
                    return None, False, await self._lock()
            return None, False, held
        try:
            return await self._put_lock(record, last), False, None
        except APIError:
            return None, False, await self._lock()

    @contextlib.contextmanager
    def deploy_lock(self, holder: str, timeout: float = 10.0) -> Iterator[bool]:
        """Hold the deploy lock (refreshed in the background); yields whether it was taken over."""
        started = time.monotonic()
        mine = {
            "holder": holder,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "acquired_at": time.time(),
        }
        record = _encode(mine)
        while True:
            revision, took_over, other = self._run(self._acquire(record))
            if revision is not None:
                break
            waited = time.monotonic() - started
            if waited >= timeout:
                if other is None:
                    continue  # it expired just now
                data = other[0]
                raise LockHeldError(
                    self.where, data["holder"], data["pid"], data["acquired_at"], waited
                )
            time.sleep(0.05)
        state = {"revision": revision}
        self.lock_lost = None
        stop = threading.Event()

        def refresh() -> None:
            from nats.js.errors import APIError

            while not stop.wait(self.lock_ttl / 3):
                try:
                    state["revision"] = self._run(self._put_lock(record, state["revision"]))
                except APIError:
                    # Refused: it expired (the server was out of reach for a TTL) and
                    # another holder wrote it. No pointer moves under a lock we lost.
                    self.lock_lost = f"the deploy lock ({holder}) expired and was taken"
                    return
                except Exception:
                    continue  # a slow or lost server: the next refresh tries again

        keeper = threading.Thread(target=refresh, name="vega-nats-lock", daemon=True)
        keeper.start()
        try:
            yield took_over
        finally:
            stop.set()
            keeper.join()
            # Released, not deleted: a delete marker would never expire; this does.
            released = _encode({**mine, "released": True})
            with contextlib.suppress(Exception):
                self._run(self._put_lock(released, state["revision"]))

    # -- watching -------------------------------------------------------------
    def wait_moved(self, region: str, generation: int, timeout: float) -> RegionPointer | None:
        return self._run(self._wait_moved(region, generation, timeout), timeout=timeout)

    async def _wait_moved(
        self, region: str, generation: int, timeout: float
    ) -> RegionPointer | None:
        """A KV watch on the key, and a re-read every ``REREAD_SECONDS`` (nats.py issue 842)."""
        import nats.errors

        deadline = time.monotonic() + timeout
        watcher = await self.b.pointers.watch(region)
        try:
            while True:
                found = await self._pointer(region)
                if found.generation > generation:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                try:
                    entry = await watcher.updates(timeout=min(left, REREAD_SECONDS))
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                if entry is not None and entry.revision > generation and entry.value:
                    return decode_pointer(region, entry.value, entry.revision)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()
