"""``deploy``: the rollout as DAG nodes after the build.

    build ─┬─ prefetch:fra ─┐
           ├─ prefetch:iad ─┼─ promote:0 ─ gate:0 ─ promote:1 ─ gate:1 ─ … ─ finish
           └─ prefetch:…   ─┘

Every target region first confirms it holds and has verified every blob of
the new deployment (prefetch), then loads its worker in the background (all
regions at once, so the prefetch nodes answer in milliseconds and the loads
share the cores). Then wave by wave (canary first): once the workers are
loaded and warm (before the canary moves: every region's), one
compare-and-swap transaction moves the wave's pointers (so no pointer is ever
written to something a region could not load); the gate probes the changed
routes there. A failed gate (or any failure after the first promotion) swings
every touched pointer back, in one transaction.

With ``[tool.vega.rollout] weights`` (say ``[10, 50, 100]``) each wave
moves in steps: its pointers first give the new deployment 10 % of their
regions' requests (the old deployment, warm, answers the rest), the gate
judges that, then 50 %, gated again, then all of it (``promote:0@10``,
``gate:0@10``, …, ``promote:0``, ``gate:0``). A rollback puts the old
deployment back on every request at once.

The regions start loading the new deployment as soon as its objects are
stored (``EarlyLoad``: from the build's ``Reporter.on_stored``, or at the
start of ``Rollout.run``), without a deployment named and so without moving
anything: the preflight, the lock and the deployment record are written while
the workers load, and the prefetch nodes then find the load under way.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from vega_dag.config import ProjectConfig, RolloutConfig
from vega_dag.errors import VegaError
from vega_dag.manifest import Manifest, RouteEntry, decode_manifest
from vega_dag.manifest.schema import AppRouteEntry
from vega_dag.regions.fleet import RegionError, RegionInfo
from vega_dag.rollout.bake import BakeContext, BakeVerdict, bake, watch
from vega_dag.rollout.health import GateReport, probed_routes, run_gate
from vega_dag.rollout.pointers import (
    Move,
    PointerBackend,
    RegionPointer,
    default_actor,
    open_pointers,
)
from vega_dag.rollout.scheduler import Node, NodeFailed, Schedule
from vega_dag.rollout.signing import deployment_signer
from vega_dag.store.objects import ObjectStore


class DeployError(VegaError):
    """The deploy failed; ``outcome`` says what was (un)done."""

    def __init__(self, message: str, outcome: DeployOutcome | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass
class RegionOutcome:
    name: str
    url: str
    outcome: str = "pending"
    swap_seconds: float | None = None
    prefetch_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "outcome": self.outcome,
            "swap_seconds": None if self.swap_seconds is None else round(self.swap_seconds, 4),
        }


@dataclass
class DeployOutcome:
    deployment: str | None
    manifest: str
    status: str
    regions: dict[str, RegionOutcome] = field(default_factory=dict)
    gates: list[GateReport] = field(default_factory=list)
    #: live-traffic verdicts: each wave's bake, then the watch's windows
    bakes: list[BakeVerdict] = field(default_factory=list)
    waves: list[list[str]] = field(default_factory=list)
    changed_routes: list[str] = field(default_factory=list)
    #: a one-app project's changed routes, "GET /items/{id} (shop.routers.items)"
    changed_app_routes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: the id of the key that signed the deployment record ("" unsigned)
    signed_by: str = ""
    seconds: float = 0.0
    started_regions: bool = False
    #: regions that were down and not deployed to (``on_region_down = "skip"``)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "manifest": self.manifest,
            "status": self.status,
            "signed_by": self.signed_by,
            "seconds": round(self.seconds, 4),
            "changed_routes": self.changed_routes,
            "changed_app_routes": self.changed_app_routes,
            "waves": self.waves,
            "regions": [r.to_json() for r in self.regions.values()],
            "gates": [g.to_json() for g in self.gates],
            "bakes": [b.to_json() for b in self.bakes],
            "problems": self.problems,
            "skipped": [{"name": n, "why": w} for n, w in self.skipped.items()],
        }


@dataclass
class Events:
    """Hooks for the CLI's live display; all optional."""

    on_node_start: Callable[[Node], None] | None = None
    on_node_done: Callable[[Node, Any], None] | None = None
    on_message: Callable[[str], None] | None = None


class EarlyLoad:
    """The new manifest's load, started in every running region before the deploy needs it.

    A prefetch without ``wait`` and without a deployment: each region verifies
    the manifest's blobs and starts loading its worker in the background, and
    no pointer, record or region state a deploy judges changes. The prefetch
    nodes ask again, naming the deployment (a region that must refuse it
    refuses it there, as before), and find the blobs verified and the load
    under way. What the early prefetch meets (a damaged blob, a route that
    does not import) is met again by the prefetch nodes and reported there,
    with the same messages.

    Only for a local fleet that trusts no signing key: a region that only
    serves signed deployments checks the record before it loads any code, so
    nothing may load there before the record exists. Other targets (region
    agents) are asked by the prefetch nodes only, as before.
    """

    def __init__(self, target: Any, regions: list[RegionInfo], manifest: str, **limit: Any) -> None:
        self.manifest = manifest
        self.regions = {r.name for r in regions}
        self.thread = threading.Thread(
            target=self._ask, args=(target, regions, manifest, limit), daemon=True
        )
        self.thread.start()

    @staticmethod
    def _ask(target: Any, regions: list[RegionInfo], manifest: str, limit: dict) -> None:
        # Best effort: whatever fails here, the prefetch nodes report.
        with contextlib.suppress(Exception):
            target.prefetch_many(regions, manifest, wait=False, errors=True, **limit)

    def join(self) -> None:
        """Once every region has answered (its blobs verified, its load started)."""
        self.thread.join()

    @classmethod
    def start(
        cls,
        config: ProjectConfig,
        target: Any,
        manifest: str,
        regions: list[RegionInfo] | None = None,
    ) -> EarlyLoad | None:
        """Start it in ``regions`` (default: the running ones) if the target allows; else None."""
        if not early_load_allowed(target):
            return None
        if regions is None:
            try:
                regions = target.regions()
            except (OSError, VegaError):
                return None
        if not regions:
            return None  # the deploy starts the fleet, and its prefetch loads
        limit: dict[str, Any] = {}
        if _accepts(target.prefetch_many, "load_timeout"):
            limit["load_timeout"] = config.vega.health.load_timeout_s
        return cls(target, regions, manifest, **limit)


def early_load_allowed(target: Any) -> bool:
    """Whether ``target`` is a local fleet whose regions load code without a signed record."""
    fleet = getattr(target, "dir", None)
    if not isinstance(fleet, Path) or not _accepts(getattr(target, "prefetch_many", None), "wait"):
        return False
    from vega_dag.rollout.signing import TRUST_DIR

    try:
        # Any key file (readable or not) makes the regions enforce signatures.
        return not any((fleet / TRUST_DIR).glob("*.pub"))
    except OSError:
        return False


def plan_waves(regions: list[str], rollout: RolloutConfig) -> list[list[str]]:
    """Canary first, then the configured waves ("*": every region not yet placed)."""
    available = list(regions)
    if rollout.canary not in available:
        raise DeployError(
            f"canary region {rollout.canary!r} is not in the fleet ({', '.join(available)}); "
            "set [tool.vega.rollout] canary"
        )
    placed = {rollout.canary}
    waves = [[rollout.canary]]
    for wave in rollout.waves:
        names = []
        for name in wave:
            picks = [r for r in available if r not in placed] if name == "*" else [name]
            for pick in picks:
                if pick in available and pick not in placed:
                    names.append(pick)
                    placed.add(pick)
        if names:
            waves.append(names)
    rest = [r for r in available if r not in placed]
    if rest:
        waves.append(rest)
    return waves


def changed_routes(old: Manifest | None, new: Manifest) -> list[RouteEntry]:
    """Routes whose bundle differs from the live deployment's (all, on a first deploy).

    A one-app project's changed application stands for its discovered routes
    whose modules changed (``app_changes``).
    """
    everything = old is None or old.env != new.env or old.layer != new.layer
    if everything:
        changed = list(new.routes)
    else:
        assert old is not None
        before = {r.pattern: r.bundle for r in old.routes}
        changed = [r for r in new.routes if before.get(r.pattern) != r.bundle]
    if not new.app_routes or not changed:
        return changed
    return app_changes(None if everything else old, new, changed[0])


def app_changes(old: Manifest | None, new: Manifest, app: RouteEntry) -> list[RouteEntry]:
    """The app's routes whose modules differ from ``old``'s (all without one), one per path.

    When none did (the bundle changed, not what any route runs: a discovered
    route removed), the app itself stands for the change.
    """
    before = {(tuple(r.methods), r.path): r.closure for r in old.app_routes} if old else {}
    by_path: dict[str, tuple[list[str], str]] = {}
    for r in new.app_routes:
        if before.get((tuple(r.methods), r.path)) != r.closure:
            methods, module = by_path.get(r.path, ([], r.module))
            by_path[r.path] = (sorted({*methods, *r.methods}), module)
    if not by_path:
        return [app]
    return [
        AppRouteEntry(
            pattern=path, module=module, file="", entry=app.entry, bundle=app.bundle, methods=m
        )
        for path, (m, module) in sorted(by_path.items())
    ]


def config_snapshot(config: ProjectConfig) -> dict[str, Any]:
    return msgspec.to_builtins(config.vega)


class Rollout:
    def __init__(
        self,
        config: ProjectConfig,
        manifest_digest: str,
        target: Any,
        *,
        actor: str | None = None,
        events: Events | None = None,
        lock_timeout: float = 10.0,
        health_checks: list | None = None,
        early: EarlyLoad | None = None,
    ) -> None:
        self.config = config
        self.manifest_digest = manifest_digest
        self.target = target
        self.actor = actor or default_actor()
        self.events = events or Events()
        self.lock_timeout = lock_timeout
        self.health_checks = health_checks or []
        #: the new manifest's loads started before the prefetch nodes (``EarlyLoad``)
        self.early: list[EarlyLoad] = (
            [early] if early is not None and early.manifest == manifest_digest else []
        )
        self.store = ObjectStore(config.store_dir)
        self.manifest = decode_manifest(self.store.get(manifest_digest))
        #: signs the deployment record when a signing key is configured
        self.signer = deployment_signer(config)

    def open_pointers(self) -> PointerBackend:
        """The pointer store: the target's SQLite file, or [tool.vega.backend] pointers."""
        from vega_dag.rollout.jetstream import pointers_url

        return open_pointers(self.target.db_path, pointers_url(self.config))

    def ship(self) -> None:
        """With a shared store, put every blob the regions will need there first (``store.ship``).

        Before the deployment exists, so before any region is asked for it: a
        region agent on another host reads nothing but the shared store.
        """
        from vega_dag.store.remote import store_url

        url = store_url(self.config)
        if url is None:
            return
        from vega_dag.store.remote import RemoteCache, RemoteError
        from vega_dag.store.ship import ShipError, upload_deployment

        try:
            done = upload_deployment(RemoteCache(url), self.store, self.manifest_digest)
        except (ShipError, RemoteError) as err:
            raise DeployError(f"{err} (nothing was changed)") from None
        if done.objects:
            self.say(f"⇡ Uploaded {done.objects} object(s) to {url} ({done.present} there)")

    def say(self, text: str) -> None:
        if self.events.on_message:
            self.events.on_message(text)

    def preflight(self, regions: list[RegionInfo]) -> dict[str, str]:
        """Every region that has (or will get) a pointer must run and answer, before anything.

        A region that is down fails the deploy here (``on_region_down =
        "fail"``), or is skipped (``"skip"``): the regions skipped, name → why.
        """
        statuses = self.target.statuses(regions)
        problems = [str(e) for e in statuses.values() if isinstance(e, Exception)]
        from vega_dag.rollout.jetstream import pointers_url, store_identity

        ours = store_identity(pointers_url(self.config))
        elsewhere = sorted(
            (name, st["pointers"])
            for name, st in statuses.items()
            if isinstance(st, dict) and st.get("pointers", ours) != ours
        )
        if elsewhere:
            names = ", ".join(n for n, _ in elsewhere)
            raise DeployError(
                f"region(s) {names} watch the pointer store {elsewhere[0][1]}, but this deploy "
                f"writes {ours}: restart them on this one (`vega-dag regions down`, then deploy "
                "or `vega-dag regions up` with the same --pointers) (nothing was changed)"
            )
        running = {r.name for r in regions}
        down: dict[str, str] = {}
        if hasattr(self.target, "down_regions"):
            down = dict(self.target.down_regions(regions))
        pointers = self.open_pointers()
        try:
            for name, p in sorted(pointers.pointers().items()):
                if name not in running and p.deployment is not None:
                    why = down.get(name) or "not running"
                    down[name] = f"it serves {p.deployment}; {why}"
        finally:
            pointers.close()
        if problems:
            raise DeployError("; ".join(problems) + " (nothing was changed)")
        rollout = self.config.vega.rollout
        if down and (rollout.on_region_down != "skip" or rollout.canary in down):
            names = ", ".join(sorted(down))
            detail = "; ".join(f"region {n}: down ({w})" for n, w in sorted(down.items()))
            # How this target's regions come back (a remote one's: on their own hosts).
            how = getattr(self.target, "bring_back", None)
            if rollout.on_region_down == "skip":
                back = how or "`vega-dag regions up`"
                advice = f"the canary is never skipped: bring it back with {back}"
            else:
                how = how or "`vega-dag regions up` (it starts only what is missing)"
                advice = (
                    f"bring {names} back with {how}, or set [tool.vega.rollout] "
                    'on_region_down = "skip" to deploy to the others'
                )
            raise DeployError(f"{detail} — {advice} (nothing was changed)")
        return down

    def run(self) -> DeployOutcome:
        started = time.perf_counter()
        bake_needs(self)
        regions, started_regions = self.target.up(self.config.vega.rollout.regions)
        if hasattr(self.target, "settle"):
            regions = self.target.settle(regions)
        by_name = {r.name: r for r in regions}
        asked = {name for load in self.early for name in load.regions}
        missed = [r for r in regions if r.name not in asked]
        if missed:
            # They load while the preflight, the lock and the record are done.
            more = EarlyLoad.start(self.config, self.target, self.manifest_digest, missed)
            self.early += [more] if more is not None else []
        skipped = self.preflight(regions)
        outcome = DeployOutcome(
            None, self.manifest_digest, "rolling", started_regions=started_regions
        )
        outcome.regions = {r.name: RegionOutcome(r.name, r.url) for r in regions}
        outcome.skipped = skipped
        for name in skipped:
            self.say(f"! Skipping {name}: down ({skipped[name]})")
        pointers = self.open_pointers()
        try:
            with pointers.deploy_lock(f"deploy by {self.actor}", self.lock_timeout) as _took_over:
                # Holding the lock, any deployment still "rolling" lost its deploy.
                for d in pointers.deployments(50):
                    if d.status == "rolling":
                        pointers.set_status(d.id, "interrupted", "its deploy process died")
                        self.say(f"! {d.id}'s deploy was interrupted; this deploy supersedes it")
                self._run_locked(pointers, regions, by_name, outcome)
                if outcome.status in ("live", "unchanged") and hasattr(
                    self.target, "converge_later"
                ):
                    # Skipped regions serve it once back (the supervisor moves
                    # their pointers after they verified and loaded it).
                    live = outcome.deployment
                    moved = [n for n, r in outcome.regions.items() if r.outcome == "promoted"]
                    if live is not None:
                        self.target.converge_later(sorted(skipped), live, moved)
        finally:
            outcome.seconds = time.perf_counter() - started
            pointers.close()
            for load in self.early:
                load.join()  # nothing left asking when the deploy returns
        return outcome

    def _run_locked(
        self,
        pointers: PointerBackend,
        regions: list[RegionInfo],
        by_name: dict[str, RegionInfo],
        outcome: DeployOutcome,
    ) -> None:
        ptrs = pointers.pointers()
        live = {
            r.name: (
                pointers.deployment(p.deployment)
                if (p := ptrs.get(r.name)) and p.deployment
                else None
            )
            for r in regions
        }
        # A region moves unless it serves this manifest from a deployment
        # that completed (one left by an interrupted deploy is finished now).
        moving = [
            r.name
            for r in regions
            if (d := live[r.name]) is None
            or d.manifest != self.manifest_digest
            or d.status not in ("live", "unchanged")
        ]
        if not moving:
            outcome.status = "unchanged"
            current = {d.id for d in live.values() if d}
            outcome.deployment = sorted(current)[0] if len(current) == 1 else None
            for r in outcome.regions.values():
                r.outcome = "unchanged"
            return
        manifests: dict[str, Manifest | None] = {}
        for d in live.values():
            if d is not None and d.manifest not in manifests:
                try:
                    manifests[d.manifest] = decode_manifest(self.store.get(d.manifest))
                except VegaError:
                    manifests[d.manifest] = None  # unknown baseline: probe every route
        #: region → the routes that change there
        changes = {
            name: changed_routes(
                manifests[d.manifest] if (d := live[name]) else None, self.manifest
            )
            for name in moving
        }
        union = {r.pattern: r for name in moving for r in changes[name]}
        outcome.changed_routes = sorted(union)
        outcome.changed_app_routes = [
            r.describe() for _, r in sorted(union.items()) if isinstance(r, AppRouteEntry)
        ]
        waves = [
            [n for n in wave if n in moving]
            for wave in plan_waves([r.name for r in regions], self.config.vega.rollout)
        ]
        waves = [w for w in waves if w]
        outcome.waves = waves
        for name in by_name:
            if name not in moving:
                outcome.regions[name].outcome = "unchanged"

        self.ship()
        deployment = pointers.create_deployment(
            self.manifest_digest,
            str(self.config.root),
            config_snapshot(self.config),
            dict(self.manifest.env),
            self.actor,
            signer=self.signer,
        )
        outcome.deployment = deployment.id
        outcome.signed_by = deployment.signed_by
        if deployment.signed_by:
            self.say(f"✎ Signed {deployment.id} with {deployment.signed_by}")
        schedule = build_schedule(self, pointers, deployment.id, waves, by_name, changes, outcome)
        for load in self.early:
            # Its verification done, so the prefetch nodes' is not done twice.
            load.join()
        try:
            schedule.run(on_start=self.events.on_node_start, on_done=self.events.on_node_done)
        except Exception as err:
            if not isinstance(err, VegaError):
                err = DeployError(f"internal error: {type(err).__name__}: {err}")
            outcome.problems.append(str(err))
            for other in getattr(err, "others", []):
                outcome.problems.append(str(other))
            touched = pointers.touched_by(deployment.id)
            if touched:
                self.say(f"↩ Rolling back {len(touched)} region(s)")
                from vega_dag.rollout.rollback import reverse

                reason = "auto-rollback"
                verdict = getattr(err, "details", None)
                if isinstance(verdict, BakeVerdict):
                    # The history says why, with the numbers behind the verdict.
                    reason += (
                        f": {verdict.label} {'; '.join(verdict.problems)} ({verdict.numbers()})"
                    )
                result = reverse(
                    pointers, self.target, deployment.id, by_name, reason[:2000], self.actor
                )
                for name, seconds in result.seconds.items():
                    outcome.regions[name].outcome = "rolled-back"
                    outcome.regions[name].swap_seconds = seconds
                outcome.status = "rolled-back"
            else:
                outcome.status = "failed"
            pointers.set_status(deployment.id, outcome.status, "; ".join(outcome.problems)[:2000])
            raise DeployError(str(err), outcome) from err
        outcome.status = "live"
        pointers.set_status(deployment.id, "live")


def build_schedule(
    rollout: Rollout,
    pointers: PointerBackend,
    deployment: str,
    waves: list[list[str]],
    by_name: dict[str, RegionInfo],
    changes: dict[str, list[RouteEntry]],
    outcome: DeployOutcome,
) -> Schedule:
    schedule = Schedule()
    target = rollout.target
    manifest = rollout.manifest_digest
    prefetch_keys = []
    # Prefetch verifies; the workers load in the background and each wave's
    # promote waits for its own (a target without background loads loads in
    # its prefetch, as before).
    background = _accepts(target.prefetch, "wait")
    # Each region's worker must load within the project's load timeout; the
    # region then names the route it was loading and what happened.
    limit: dict[str, Any] = {}
    if _accepts(target.prefetch, "load_timeout"):
        limit["load_timeout"] = rollout.config.vega.health.load_timeout_s
    if _accepts(target.prefetch, "deployment"):
        limit["deployment"] = deployment
    for wave in waves:
        for name in wave:
            region = by_name[name]

            def prefetch(_: dict, region: RegionInfo = region) -> dict:
                try:
                    if background:
                        result = target.prefetch(region, manifest, wait=False, **limit)
                    else:
                        result = target.prefetch(region, manifest, **limit)
                except RegionError as err:
                    outcome.regions[region.name].outcome = "prefetch-failed"
                    raise NodeFailed(f"prefetch:{region.name}", err.reason) from None
                outcome.regions[region.name].prefetch_seconds = result.get("seconds")
                return result

            key = f"prefetch:{name}"
            prefetch_keys.append(key)
            schedule.add(
                Node(
                    key,
                    prefetch,
                    cacheable=True,
                    describe=f"load and verify {manifest[:19]}… in {name}",
                )
            )

    def ready(regions: list[RegionInfo]) -> None:
        """Every region has the deployment's worker loaded (its pointer may move)."""
        if hasattr(target, "prefetch_many"):
            many = {k: v for k, v in limit.items() if _accepts(target.prefetch_many, k)}
            results = target.prefetch_many(regions, manifest, wait=True, errors=True, **many)
        else:
            results = {}
            for region in regions:
                try:
                    results[region.name] = target.prefetch(region, manifest, wait=True, **limit)
                except RegionError as err:
                    results[region.name] = err
        failed = [(n, r) for n, r in results.items() if isinstance(r, RegionError)]
        for name, _ in failed:
            outcome.regions[name].outcome = "prefetch-failed"
        if failed:
            first, failure = failed[0]
            raise NodeFailed(f"prefetch:{first}", failure.reason)

    everyone = [n for wave in waves for n in wave]
    previous = tuple(prefetch_keys)
    settings = rollout.config.vega.health.bake
    baking = (
        bake_context(rollout, deployment, by_name) if settings.bake_s or settings.watch_s else None
    )
    steps = rollout.config.vega.rollout.weights
    for i, wave in enumerate(waves):
        vega = rollout.config.vega
        routes = probed_routes(
            list({r.pattern: r for n in wave for r in changes[n]}.values()),
            vega.health,
            vega.app_mount,
        )
        for j, weight in enumerate(steps):
            # The last step (100 %) keeps the names an unweighted wave has always had.
            step = "" if weight == 100 else f"@{weight}"

            def promote(
                _: dict, wave: list[str] = wave, weight: int = weight, first: bool = j == 0
            ) -> dict[str, float]:
                if background and first:
                    # The canary waits for every region's worker: the loads run at
                    # once anyway, no pointer moves unless every region loaded the
                    # deployment, and no gate measures latency on a loading machine.
                    ready([by_name[n] for n in (everyone if wave is waves[0] else wave)])
                ptrs = pointers.pointers()
                moves = [weighted_move(ptrs.get(n), n, deployment, weight) for n in wave]

                def swap() -> None:
                    if baking is not None and baking.first_move is None:
                        baking.first_move = time.time()
                    pointers.swap(moves, deployment, "promote", rollout.actor)

                regions = [by_name[n] for n in wave]
                if first and _accepts(getattr(target, "wait_serving_many", None), "meanwhile"):
                    # No region of the wave is on the deployment yet: each has its
                    # wait before the write and answers as it switches.
                    return wait_all(target, regions, deployment, outcome, "promoted", swap)
                swap()
                return wait_all(target, regions, deployment, outcome, "promoted")

            def gate(
                _: dict,
                i: int = i,
                wave: list[str] = wave,
                routes: list[RouteEntry] = routes,
                step: str = step,
            ) -> GateReport:
                report = run_gate(
                    i,
                    [by_name[n] for n in wave],
                    routes,
                    deployment,
                    rollout.config.vega.health,
                    rollout.health_checks,
                )
                outcome.gates.append(report)
                if not report.passed:
                    raise NodeFailed(f"gate:{i}{step}", "health gate failed", report)
                return report

            label = "canary" if i == 0 else f"wave {i}"
            share = "" if weight == 100 else f" ({weight}% of requests)"
            schedule.add(
                Node(
                    f"promote:{i}{step}",
                    promote,
                    previous,
                    describe=f"move {label} pointers{share}: {', '.join(wave)}",
                )
            )
            schedule.add(
                Node(
                    f"gate:{i}{step}",
                    gate,
                    (f"promote:{i}{step}",),
                    describe=f"probe {len(routes)} changed route(s) in {label}{share}",
                )
            )
            previous = (f"gate:{i}{step}",)
        if baking is not None and settings.bake_s:
            later = [n for w in waves[i + 1 :] for n in w]
            patterns = sorted({r.pattern for n in wave for r in changes[n]})

            def held(
                _: dict,
                i: int = i,
                wave: list[str] = wave,
                later: list[str] = later,
                patterns: list[str] = patterns,
            ) -> BakeVerdict:
                assert baking is not None
                verdict = bake(baking, i, wave, later, patterns, settings.bake_s)
                outcome.bakes.append(verdict)
                if not verdict.passed:
                    raise NodeFailed(
                        f"bake:{i}",
                        "live-traffic bake failed: " + "; ".join(verdict.problems),
                        verdict,
                    )
                return verdict

            schedule.add(
                Node(
                    f"bake:{i}",
                    held,
                    previous,
                    describe=f"judge {label}'s live traffic for {settings.bake_s:g}s",
                )
            )
            previous = (f"bake:{i}",)
    if baking is not None and settings.watch_s:
        patterns = sorted({r.pattern for n in everyone for r in changes[n]})

        def watched(_: dict) -> list[BakeVerdict]:
            assert baking is not None
            verdicts = watch(baking, everyone, patterns)
            outcome.bakes.extend(verdicts)
            failed = [v for v in verdicts if not v.passed]
            if failed:
                raise NodeFailed(
                    "watch",
                    "live-traffic watch failed: " + "; ".join(failed[0].problems),
                    failed[0],
                )
            return verdicts

        schedule.add(
            Node(
                "watch",
                watched,
                previous,
                describe=f"watch every region's live traffic for {settings.watch_s:g}s",
            )
        )
    return schedule


def bake_context(rollout: Rollout, deployment: str, by_name: dict[str, RegionInfo]) -> BakeContext:
    """What the bakes of ``deployment`` read: the regions' request logs, flushed on demand."""
    fleet = bake_needs(rollout)
    assert fleet is not None

    def flush(names: list[str]) -> None:
        from vega_dag.regions.fleet import request_many

        asks: list[tuple[str, str, bytes | None]] = [
            (by_name[n].url + "/__vega/flush", "POST", b"{}") for n in names if n in by_name
        ]
        # A region that does not answer leaves its last second out of the window, no more.
        request_many(asks, timeout=2.0)

    health = rollout.config.vega.health
    return BakeContext(fleet, deployment, health.bake, flush, p99_ms=health.p99_ms)


def bake_needs(rollout: Rollout) -> Path | None:
    """The fleet directory whose request logs a bake reads (None: no bake); DeployError if none."""
    config = rollout.config
    settings = config.vega.health.bake
    if not (settings.bake_s or settings.watch_s):
        return None
    fleet = getattr(rollout.target, "dir", None)
    if fleet is None:
        raise DeployError(
            "[tool.vega.health.bake] needs the regions' request logs, which this region target "
            f"({type(rollout.target).__name__}) does not keep (nothing was changed)"
        )
    if not config.vega.observe.request_log:
        raise DeployError(
            "[tool.vega.health.bake] judges the regions' request logs, but [tool.vega.observe] "
            "request_log = false: turn it on (and restart the regions) or set bake_s and "
            "watch_s to 0 (nothing was changed)"
        )
    return Path(fleet)


def weighted_move(p: RegionPointer | None, region: str, deployment: str, weight: int) -> Move:
    """The write giving ``deployment`` ``weight`` percent of ``region``'s requests.

    The rest stay on what the region served before the wave began (through
    every step); a region that served nothing has no one to share with and
    takes every request at once.
    """
    before = p.deployment if p else None
    baseline = p.baseline if p is not None and before == deployment else before
    return Move(region, p.generation if p else 0, before, deployment, weight, baseline)


def wait_all(
    target: Any,
    regions: list[RegionInfo],
    deployment: str | None,
    outcome: DeployOutcome | None,
    label: str,
    meanwhile: Callable[[], object] | None = None,
) -> dict[str, float]:
    """Wait until every region serves ``deployment``; the seconds each took.

    ``meanwhile``: the pointer write, run once every region has its wait
    (``wait_serving_many``'s own).
    """

    if meanwhile is not None:
        answers = target.wait_serving_many([(r, deployment) for r in regions], meanwhile=meanwhile)
        for answer in answers.values():
            if isinstance(answer, Exception):
                raise answer
        seconds = dict(answers)
    elif hasattr(target, "wait_serving_many"):
        answers = target.wait_serving_many([(r, deployment) for r in regions])
        for answer in answers.values():
            if isinstance(answer, Exception):
                raise answer
        seconds = dict(answers)
    else:

        def one(region: RegionInfo) -> float:
            return target.wait_serving(region, deployment)

        with ThreadPoolExecutor(max_workers=min(32, len(regions) or 1)) as pool:
            seconds = dict(zip([r.name for r in regions], pool.map(one, regions), strict=True))
    if outcome is not None:
        for name, s in seconds.items():
            outcome.regions[name].outcome = label
            outcome.regions[name].swap_seconds = s
    return seconds


def _accepts(function: Callable | None, keyword: str) -> bool:
    if function is None:
        return False
    try:
        return keyword in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
