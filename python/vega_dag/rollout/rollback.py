"""``rollback``: a deployment's pointer writes, in reverse.

Each region the deployment reached goes back to the deployment it served
before (from the append-only history), by compare-and-swap, in one
transaction: no rebuild, no upload. Regions keep the previous deployment's
worker warm, so the swap is a pointer read away; an older target is loaded
(and verified) first, and the pointer moves only once the region holds it.
Regions no longer on the deployment are left alone, so a rollback is
idempotent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vega_dag.errors import VegaError
from vega_dag.regions.fleet import RegionError, RegionInfo
from vega_dag.rollout.pointers import Move, PointerBackend, default_actor, open_pointers


class RollbackError(VegaError):
    pass


@dataclass
class RollbackResult:
    deployment: str
    #: region → the deployment it went back to (None: no deployment)
    targets: dict[str, str | None] = field(default_factory=dict)
    #: region → seconds from the pointer write until it served the target
    seconds: dict[str, float] = field(default_factory=dict)
    #: region → why it was left alone
    skipped: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    total_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "seconds": round(self.total_seconds, 4),
            "regions": [
                {
                    "name": name,
                    "url": self.urls.get(name),
                    "to": self.targets[name],
                    "swap_seconds": round(self.seconds[name], 4) if name in self.seconds else None,
                }
                for name in self.targets
            ],
            "skipped": self.skipped,
        }


def reverse(
    pointers: PointerBackend,
    target: Any,
    deployment: str,
    by_name: dict[str, RegionInfo],
    reason: str,
    actor: str,
) -> RollbackResult:
    """Move every region still on ``deployment`` back; the caller holds the deploy lock."""
    result = RollbackResult(deployment)
    before = pointers.touched_by(deployment)
    ptrs = pointers.pointers()
    moves = []
    for region, previous in before.items():
        p = ptrs.get(region)
        if p is None or p.deployment != deployment:
            result.skipped[region] = f"already on {p.deployment if p else None}"
            continue
        moves.append(Move(region, p.generation, deployment, previous))
        result.targets[region] = previous
    missing = [m.region for m in moves if m.region not in by_name]
    if missing:
        how = getattr(target, "bring_back", "`vega-dag regions up`")
        raise RollbackError(
            f"region(s) {', '.join(missing)} are not running: start them with "
            f"{how}, then roll back again (nothing was changed)"
        )
    # A region switches only to what it has loaded: make sure each holds its
    # target before any pointer moves (a warm previous deployment answers at once).
    # Each record read once (24 regions go back to one or two deployments; with
    # JetStream pointers every read is a round trip).
    records = {d: pointers.deployment(d) for d in {m.after for m in moves} if d is not None}
    wanted = {m.region: records[m.after] for m in moves if m.after is not None}

    manifests = {name: dpl.manifest for name, dpl in wanted.items() if dpl is not None}
    if moves and hasattr(target, "hold_and_wait_many"):
        # One request per region for both (the local fleet): it loads its
        # target and says so, then answers once it serves it, the pointer
        # write in between.
        written = False

        def swap_once() -> None:
            nonlocal written
            pointers.swap(moves, deployment, reason, actor)
            written = True

        items = [(by_name[m.region], m.after, manifests.get(m.region)) for m in moves]
        try:
            answers = target.hold_and_wait_many(items, swap_once)
        except RegionError as err:
            if written:
                raise
            raise RollbackError(f"{err} (nothing was changed)") from None
        for answer in answers.values():
            if isinstance(answer, Exception):
                raise answer
        result.seconds = {m.region: answers[m.region] for m in moves}
        result.urls = {name: info.url for name, info in by_name.items()}
        return result
    manifests = {name: dpl.manifest for name, dpl in wanted.items() if dpl is not None}
    try:
        if hasattr(target, "prefetch_many"):
            # One thread, every region at once (a warm worker answers at once).
            # Each names its target deployment, so that a region which would
            # refuse to serve it (a record no key it trusts signed) says so
            # here, before any pointer moves, not after.
            groups: dict[str, list[str]] = {}
            for m in moves:
                if m.region in manifests and m.after is not None:
                    groups.setdefault(m.after, []).append(m.region)
            for deployment_id, names in groups.items():
                target.prefetch_many(
                    [by_name[name] for name in names],
                    {name: manifests[name] for name in names},
                    deployment=deployment_id,
                )
        else:
            from concurrent.futures import ThreadPoolExecutor  # a plugin's target only

            with ThreadPoolExecutor(max_workers=min(32, len(manifests) or 1)) as pool:
                list(pool.map(lambda n: target.prefetch(by_name[n], manifests[n]), manifests))
    except RegionError as err:
        raise RollbackError(f"{err} (nothing was changed)") from None
    if not moves:
        return result

    def swap() -> None:
        pointers.swap(moves, deployment, reason, actor)

    if hasattr(target, "wait_serving_many"):
        pairs = [(by_name[m.region], m.after) for m in moves]
        if _accepts_meanwhile(target):
            # Each region has its "tell me when you serve it" before the write
            # (none of them serves its target yet): it answers as it switches.
            answers = target.wait_serving_many(pairs, meanwhile=swap)
        else:
            swap()
            answers = target.wait_serving_many(pairs)
        for answer in answers.values():
            if isinstance(answer, Exception):
                raise answer
        result.seconds = {m.region: answers[m.region] for m in moves}
    else:
        swap()
        from concurrent.futures import ThreadPoolExecutor

        def wait(move: Move) -> tuple[str, float]:
            return move.region, target.wait_serving(by_name[move.region], move.after)

        with ThreadPoolExecutor(max_workers=min(32, len(moves))) as pool:
            result.seconds = dict(pool.map(wait, moves))
    result.urls = {name: info.url for name, info in by_name.items()}
    return result


def _accepts_meanwhile(target: Any) -> bool:
    """Whether ``target.wait_serving_many`` takes the write to run once its requests are out."""
    import inspect

    try:
        return "meanwhile" in inspect.signature(target.wait_serving_many).parameters
    except (TypeError, ValueError):
        return False


def rollback(
    config: Any,
    target: Any,
    deployment: str | None = None,
    *,
    actor: str | None = None,
    lock_timeout: float = 10.0,
) -> RollbackResult:
    """Undo ``deployment`` (default: the latest) in every region it reached."""
    started = time.perf_counter()
    actor = actor or default_actor()
    from vega_dag.rollout.pointer_url import pointers_url

    pointers = open_pointers(target.db_path, pointers_url(config))
    try:
        if deployment is None:
            latest = pointers.deployments(1)
            if not latest:
                raise RollbackError("nothing to roll back: there are no deployments yet")
            deployment = latest[0].id
        dpl = pointers.require(deployment)
        by_name = {r.name: r for r in target.regions()}
        with pointers.deploy_lock(f"rollback by {actor}", lock_timeout):
            result = reverse(pointers, target, dpl.id, by_name, "rollback", actor)
            if result.targets or dpl.status in ("rolling", "interrupted"):
                pointers.set_status(dpl.id, "rolled-back", f"rolled back by {actor}")
    finally:
        pointers.close()
    result.total_seconds = time.perf_counter() - started
    return result


def _region_target(config: Any) -> Any:
    """The project's region target, without pluggy when no plugin can provide one.

    With the plugin manager not yet made in this process (nothing registered
    a plugin by hand) and no installed distribution declaring the plugin
    group, the built-in target (``regions.target``) is the only answer the hook can give,
    and importing pluggy (inspect, importlib.metadata) only to be told so is
    start-up on the rollback's clock.
    """
    import sys

    from vega_dag.plugins.declared import may_declare_plugins

    if "vega_dag.plugins.manager" not in sys.modules and not may_declare_plugins():
        from vega_dag.regions.target import builtin_target

        return builtin_target(config)
    from vega_dag.plugins.manager import region_target

    return region_target(config)


def run_command(
    path: Any,
    deployment: str | None,
    *,
    as_json: bool,
    quiet: bool,
    lock_timeout: float,
    echo: Any,
    style: Any,
) -> int:
    """``vega-dag rollback``: its output through ``echo(text, err=False)``; the exit status.

    One source for both the click command and the console script's fast
    path (``entry``), which pass click's ``echo``/``style`` or their
    equivalents without click.
    """
    import json

    from vega_dag.config import load_config

    try:
        config = load_config(path)
        target = _region_target(config)
        result = rollback(config, target, deployment, lock_timeout=lock_timeout)
    except VegaError as err:
        if as_json:
            echo(json.dumps({"error": str(err)}))
        else:
            echo(style(f"✗ Rollback failed: {err}", fg="red"), err=True)
        return 1
    if as_json:
        echo(json.dumps(result.to_json(), sort_keys=True))
        return 0
    if quiet:
        return 0
    if not result.targets:
        echo(f"= {result.deployment} is not live in any region: nothing to roll back")
        return 0
    for name, to in result.targets.items():
        echo(f"  {name:<4} → {to or '(no deployment)'}   {result.seconds[name] * 1000:.0f}ms")
    echo(
        style("✓", fg="green")
        + f" Rolled back {result.deployment} in {len(result.targets)} regions"
        + f" in {result.total_seconds:.2f}s"
    )
    return 0
