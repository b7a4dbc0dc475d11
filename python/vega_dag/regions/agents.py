"""The deployer's side of region agents: a region target that talks NATS, not region ports.

``[tool.vega.backend] regions = "agents"`` (or ``VEGA_DAG_REGIONS=agents``)
makes ``deploy``, ``rollback``, ``status``, ``history`` and ``plan`` use the
agents that report in the ``<ns>-agents`` bucket of the pointer store
(``regions.agent``) instead of starting local regions:

- the regions are the agents whose ``status.<region>`` heartbeat is at most
  ``DOWN_AFTER`` seconds old; an older one is down (the deploy's
  ``on_region_down`` policy says whether that fails it or skips the region);
- a prefetch is a NATS request to each agent, all at once;
- waiting for a region to serve a deployment watches its status key until
  it reports serving the deployment at (at least) the generation its pointer
  has, or that it failed to load it.

Only the gates' health probes (and ``status --probe``) reach the regions'
own URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vega_dag.regions import FALLBACK_LOAD_TIMEOUT, REGION_NAMES
from vega_dag.regions.fleet import PREFETCH_VERIFY_SECONDS, RegionError, RegionInfo

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig

#: Seconds a pointer store request may take (``rollout.jetstream.TIMEOUT``, not imported here).
TIMEOUT = 10.0
#: A heartbeat older than this many seconds means the agent is down
#: (``VEGA_DAG_AGENT_DOWN_S`` overrides it). Agents write one every second.
DOWN_AFTER = 5.0
#: Seconds between two asks of an agent that has not answered a prefetch yet.
RESEND_SECONDS = 5.0
#: ``[tool.vega.backend] regions`` values, and the variable that overrides it.


def down_after() -> float:
    try:
        value = float(os.environ.get("VEGA_DAG_AGENT_DOWN_S") or DOWN_AFTER)
    except ValueError:
        return DOWN_AFTER
    return value if value > 0 else DOWN_AFTER


class AgentFleet:
    """Region agents on other hosts, reached through NATS (see the module docstring)."""

    name = "agents"
    #: what a deploy that finds a region down advises
    bring_back = "`vega-dag region serve` on its host"

    def __init__(self, config: ProjectConfig) -> None:
        from vega_dag.regions.fleet import fleet_dir
        from vega_dag.rollout.jetstream import parse_pointers_url, pointers_url

        self.config = config
        url = pointers_url(config)
        if url is None:
            raise RegionError(
                "agents",
                "region agents learn their pointers from NATS: set [tool.vega.backend] pointers "
                "(or --pointers / VEGA_DAG_POINTERS) to the server the agents use",
            )
        self.url = url
        self.where = parse_pointers_url(url)
        #: not used with NATS pointers; a RegionTarget names one
        self.db_path: Path = fleet_dir(config) / "pointers.sqlite"
        self._nc: Any = None
        self._kv: Any = None
        self._pointers_kv: Any = None
        self._statuses: dict[str, dict] = {}
        self._opening: asyncio.Lock | None = None
        #: several agents may name the same damaged object at once: one repair each
        self._repairing = threading.Lock()

    # -- the connection -------------------------------------------------------
    def _run(self, coro: Any, timeout: float) -> Any:
        from vega_dag.rollout.jetstream import _Loop

        future = asyncio.run_coroutine_threadsafe(coro, _Loop.get().loop)
        try:
            return future.result(timeout + 5.0)
        except TimeoutError:
            future.cancel()
            raise RegionError("agents", f"pointers {self.where.where}: no answer") from None

    async def _open(self) -> None:
        from vega_dag.regions.agent_bus import open_agents_kv
        from vega_dag.rollout.jetstream import connect

        if self._opening is None:
            self._opening = asyncio.Lock()  # the deploy's nodes prefetch from several threads
        async with self._opening:
            if self._nc is not None and not self._nc.is_closed:
                return
            try:
                nc = await connect(self.where, name="vega-dag-agents")
            except Exception as err:
                raise RegionError("agents", str(err)) from None
            from vega_dag.rollout.jetstream import Buckets

            buckets = Buckets(nc.jetstream(timeout=5.0), self.where.namespace, self.where.replicas)
            await buckets.open()
            self._kv = await open_agents_kv(buckets.js, self.where.namespace, self.where.replicas)
            self._pointers_kv = buckets.pointers
            self._nc = nc

    def close(self) -> None:
        if self._nc is not None:
            nc, self._nc = self._nc, None
            self._run(nc.close(), 2.0)

    async def _read_all(self) -> dict[str, dict]:
        """region → its latest status record (every agent that ever reported).

        One pass over the bucket's stream, the last message of each key, until
        the server says none is pending: not ``kv.keys()``, whose watcher can
        report the end of the initial values before them (nats.py issue 842).
        """
        from nats.js.api import DeliverPolicy

        from vega_dag.regions.agent_bus import agents_bucket

        await self._open()
        bucket = agents_bucket(self.where.namespace)
        js = self._nc.jetstream(timeout=5.0)
        info = await js.stream_info(f"KV_{bucket}")
        found: dict[str, dict] = {}
        if info.state.messages == 0:
            return found
        sub = await js.subscribe(
            f"$KV.{bucket}.>",
            stream=f"KV_{bucket}",
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=5.0)
                if (msg.headers or {}).get("KV-Operation") not in ("DEL", "PURGE"):
                    with contextlib.suppress(ValueError):
                        status = json.loads(msg.data)
                        if isinstance(status, dict) and "region" in status:
                            found[status["region"]] = status
                if msg.metadata.num_pending == 0:
                    return found
        finally:
            await sub.unsubscribe()

    async def _get_status(self, key: str) -> dict | None:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        try:
            status = json.loads(entry.value)
        except ValueError:
            return None
        return status if isinstance(status, dict) and "region" in status else None

    def _all(self) -> dict[str, dict]:
        self._statuses = self._run(self._read_all(), 10.0)
        return self._statuses

    # -- discovery ------------------------------------------------------------
    def regions(self) -> list[RegionInfo]:
        """The agents whose heartbeat is recent, in fleet order."""
        now = time.time()
        limit = down_after()
        found = [
            RegionInfo(
                s["region"],
                s.get("url") or "",
                int(s.get("pid") or 0),
                0,
                float(s.get("started_at") or 0.0),
            )
            for s in self._all().values()
            if now - float(s.get("heartbeat") or 0.0) <= limit
        ]
        order = {name: i for i, name in enumerate(REGION_NAMES)}
        return sorted(found, key=lambda r: (order.get(r.name, len(order)), r.name))

    def start_missing(self, count: int) -> tuple[list[RegionInfo], list[str]]:
        """``regions up``: nothing to start from here; the agents that report."""
        return self.up(count)[0], []

    def up(self, count: int) -> tuple[list[RegionInfo], bool]:
        """The agents that report (none can be started from here)."""
        regions = self.regions()
        if not regions:
            raise RegionError(
                "agents",
                f"no region agent reports to {self.where.where} (namespace "
                f"{self.where.namespace}): start `vega-dag region serve` on each region host",
            )
        return regions, False

    def down(self) -> list[str]:
        raise RegionError(
            "agents", "region agents run on their own hosts: stop `vega-dag region serve` there"
        )

    def down_regions(self, regions: list[RegionInfo]) -> dict[str, str]:
        """Agents that reported once and have gone quiet: name → since when."""
        running = {r.name for r in regions}
        now = time.time()
        return {
            name: f"its agent's last heartbeat was {now - float(s.get('heartbeat') or 0):.0f}s ago"
            for name, s in sorted(self._statuses.items())
            if name not in running
        }

    # -- talking to agents ----------------------------------------------------
    def status(self, region: RegionInfo, timeout: float = 2.0) -> dict:
        value = self.statuses([region])[region.name]
        if isinstance(value, RegionError):
            raise value
        return value

    def statuses(self, regions: list[RegionInfo]) -> dict[str, dict | RegionError]:
        known = self._statuses or self._all()
        out: dict[str, dict | RegionError] = {}
        for r in regions:
            st = known.get(r.name)
            out[r.name] = st if st is not None else RegionError(r.name, "its agent does not report")
        return out

    def prefetch(
        self,
        region: RegionInfo,
        manifest: str,
        timeout: float | None = None,
        *,
        wait: bool = True,
        load_timeout: float | None = None,
        deployment: str | None = None,
    ) -> dict:
        return self.prefetch_many(
            [region], manifest, timeout, wait=wait, load_timeout=load_timeout, deployment=deployment
        )[region.name]

    def prefetch_many(
        self,
        regions: list[RegionInfo],
        manifest: str | dict[str, str],
        timeout: float | None = None,
        *,
        wait: bool = True,
        errors: bool = False,
        load_timeout: float | None = None,
        deployment: str | None = None,
    ) -> dict[str, Any]:
        """Ask every agent at once to fetch, verify and load ``manifest`` (per region, or one)."""
        if timeout is None:
            timeout = PREFETCH_VERIFY_SECONDS + 2 * (load_timeout or FALLBACK_LOAD_TIMEOUT) + 5.0
        body: dict[str, Any] = {"wait": wait}
        if load_timeout is not None:
            body["load_timeout"] = load_timeout
        if deployment is not None:
            body["deployment"] = deployment
        wanted = {
            r.name: manifest if isinstance(manifest, str) else manifest[r.name] for r in regions
        }
        out = self._run(self._prefetch_all(wanted, body, timeout), timeout)
        if not errors:
            for value in out.values():
                if isinstance(value, RegionError):
                    raise value
        return out

    async def _prefetch_all(
        self, wanted: dict[str, str], body: dict, timeout: float
    ) -> dict[str, Any]:
        await self._open()
        names = list(wanted)
        answers = await asyncio.gather(
            *(self._prefetch_one(n, {"manifest": wanted[n], **body}, timeout) for n in names)
        )
        return dict(zip(names, answers, strict=True))

    async def _prefetch_one(self, name: str, body: dict, timeout: float) -> dict | RegionError:
        import nats.errors

        from vega_dag.regions.agent_bus import prefetch_subject, status_key

        subject = prefetch_subject(self.where.namespace, name)
        data = json.dumps(body).encode()
        deadline = time.monotonic() + timeout
        pending: set[asyncio.Future] = set()
        failure: BaseException | None = None
        msg = None
        next_send = 0.0
        pid = (self._statuses.get(name) or {}).get("pid")
        while msg is None and (now := time.monotonic()) < deadline:
            if now >= next_send:
                # Asked again while unanswered: a request or its answer is lost when
                # the agent's server (or ours) dies, and asking twice is harmless (the
                # agent answers both from the one fetch and load).
                request = self._nc.request(subject, data, timeout=deadline - now)
                pending.add(asyncio.ensure_future(request))
                next_send = now + RESEND_SECONDS
            if pending:
                done, pending = await asyncio.wait(
                    pending, timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
                for future in done:
                    if future.exception() is None:
                        msg = future.result()
                        break
                    failure = future.exception()
                if msg is not None:
                    break
            else:
                await asyncio.sleep(min(1.0, max(0.0, next_send - time.monotonic())))
            # An agent killed mid-prefetch never answers: its heartbeat says so first.
            st = await self._get_status(status_key(name))
            age = time.time() - float((st or {}).get("heartbeat") or 0.0)
            if st is None or age > down_after() or (pid and st.get("pid") != pid):
                for future in pending:
                    future.cancel()
                why = "restarted" if st is not None and age <= down_after() else "went quiet"
                return RegionError(
                    name, f"its agent {why} during the prefetch (last heartbeat {age:.0f}s ago)"
                )
        for future in pending:
            future.cancel()
        if msg is None:
            if isinstance(failure, nats.errors.NoRespondersError):
                return RegionError(name, f"no agent answers on {subject} (is it running?)")
            if failure is None or isinstance(failure, nats.errors.TimeoutError):
                return RegionError(name, f"its agent did not answer the prefetch in {timeout:.0f}s")
            return RegionError(name, f"prefetch over NATS: {failure or type(failure).__name__}")
        try:
            payload = json.loads(msg.data)
        except ValueError:
            return RegionError(name, f"a malformed answer: {msg.data[:200]!r}")
        if not payload.get("ok"):
            # The agent's message names what did not load: the route, or the object.
            why = str(payload.get("error"))
            damaged = [d for d in payload.get("damaged") or [] if isinstance(d, str)]
            if damaged:
                loop = asyncio.get_running_loop()
                why += await loop.run_in_executor(None, self._repair, damaged)
            return RegionError(name, why)
        return payload

    def _repair(self, damaged: list[str]) -> str:
        """Put this machine's verified copies of ``damaged`` in the shared store; what was done.

        The listing shows a damaged object as present, so no later upload would
        replace it (``store.ship.repair_objects``).
        """
        from vega_dag.store.objects import ObjectStore
        from vega_dag.store.remote import RemoteCache, store_url
        from vega_dag.store.ship import repair_objects

        url = store_url(self.config)
        if url is None:
            return ""
        try:
            with self._repairing:
                repaired, unavailable = repair_objects(
                    RemoteCache(url), ObjectStore(self.config.store_dir), damaged
                )
        except Exception as err:  # the repair is a courtesy: the failure is already named
            return f" (could not re-upload it: {type(err).__name__}: {err})"
        said = ""
        if repaired:
            said += (
                f" (re-uploaded {len(repaired)} damaged object(s) from this machine's verified"
                " store: run the command again)"
            )
        for digest, why in sorted(unavailable.items())[:3]:
            said += f" (cas/{digest.removeprefix('blake3:')}: not repaired: {why})"
        return said

    def wait_serving(
        self, region: RegionInfo, deployment: str | None, timeout: float = 30.0
    ) -> float:
        value = self.wait_serving_many([(region, deployment)], timeout)[region.name]
        if isinstance(value, RegionError):
            raise value
        return value

    def wait_serving_many(
        self,
        pairs: list[tuple[RegionInfo, str | None]],
        timeout: float = 30.0,
        meanwhile: Callable[[], object] | None = None,
    ) -> dict[str, float | RegionError]:
        """Seconds until each agent's status says it serves its deployment (or why it does not).

        With ``meanwhile`` (the pointer write that makes them switch), the
        status keys are watched first and ``meanwhile`` runs once the watch
        is open, the seconds counting from its end: every status an agent
        writes after the write reaches the watch, with no subscription or
        read left to make after it. What it raises is raised.
        """
        # The write's own time on top: the pointer store's requests have their own limit.
        limit = timeout if meanwhile is None else timeout + 2 * TIMEOUT
        return self._run(self._wait_all(pairs, timeout, meanwhile), limit)

    async def _wait_all(
        self,
        pairs: list[tuple[RegionInfo, str | None]],
        timeout: float,
        meanwhile: Callable[[], object] | None = None,
    ) -> dict[str, float | RegionError]:
        from nats.js.errors import KeyNotFoundError

        from vega_dag.regions.agent_bus import status_key

        await self._open()
        want = {r.name: d for r, d in pairs}
        watcher = None
        if meanwhile is not None:
            watcher = await self._kv.watch(f"{status_key('*')}")
            try:
                # Off the event loop: the pointer store's calls run on this loop too.
                await asyncio.get_running_loop().run_in_executor(None, meanwhile)
            except BaseException:
                await watcher.stop()
                raise
        started = time.perf_counter()
        deadline = time.monotonic() + timeout

        async def generation(name: str) -> int:
            try:
                return int((await self._pointers_kv.get(name)).revision)
            except KeyNotFoundError:
                return 0

        names = list(want)
        generations: dict[str, int] = {}
        out: dict[str, float | RegionError] = {}
        last: dict[str, dict] = {}

        def judge(name: str, st: dict | None) -> None:
            if st is None or name in out:
                return
            last[name] = st
            d, gen = want[name], generations[name]
            if st.get("deployment") == d and (d is None or int(st.get("generation") or 0) >= gen):
                out[name] = time.perf_counter() - started
                return
            error = st.get("error") or ""
            if (
                d is not None
                and st.get("pointer") == d
                and int(st.get("target_generation") or 0) >= gen
                and error.startswith(f"{d}: ")
            ):
                out[name] = RegionError(name, f"cannot serve {d}: {error}")

        try:
            # A status counts once it reflects the pointer as it is now (a weight
            # step moves the generation, not the deployment).
            got_generations = await asyncio.gather(*map(generation, names))
            generations.update(zip(names, got_generations, strict=True))
            if watcher is None:
                watcher = await self._kv.watch(f"{status_key('*')}")
                for name, st in zip(
                    names,
                    await asyncio.gather(*(self._get_status(status_key(n)) for n in names)),
                    strict=True,
                ):
                    judge(name, st)
            # (With the watch open before the write, every status written since
            # is in it, the current ones first: no read is needed here.)
            reread = time.monotonic() + 0.5
            while len(out) < len(want):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    entry = await watcher.updates(timeout=min(left, 0.5))
                except Exception:
                    entry = None
                if entry is not None and entry.value:
                    try:
                        st = json.loads(entry.value)
                    except ValueError:
                        st = None
                    if isinstance(st, dict) and st.get("region") in want:
                        judge(st["region"], st)
                if time.monotonic() >= reread:
                    # The watch may deliver late (nats.py issue 842): read the keys too.
                    pending = [n for n in names if n not in out]
                    got = await asyncio.gather(*(self._get_status(status_key(n)) for n in pending))
                    for name, st in zip(pending, got, strict=True):
                        judge(name, st)
                    reread = time.monotonic() + 0.5
        finally:
            if watcher is not None:
                await watcher.stop()
        for name in names:
            if name not in out:
                why = (last.get(name) or {}).get("error") or "it did not switch"
                out[name] = RegionError(
                    name, f"not serving {want[name]} after {timeout:.0f}s: {why}"
                )
        return out
