"""What ``vega-dag status`` reports, without the CLI: each region's deployment, health, age,
and its live traffic over the last minute (requests, error rate, p99: ``regions.observe``).

Free of click and rich, so the console script's fast path (``vega_dag.entry``)
can answer ``vega-dag status [PATH] [--json]`` with nothing else imported;
``vega_dag.cli.status_cmd`` prints the same data the same way.
"""

from __future__ import annotations

import os
import time

# A name typing and mypy both know; the typing module itself costs start-up here.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

#: What ``status`` says when no region runs and none ever did.
NO_REGIONS = "No regions (start them with `vega-dag regions up`, or deploy)"
#: ``collect``'s answer then (the early return below).
NOTHING: dict = {"regions": [], "rolling": [], "interrupted": []}


def nothing_to_report(path: str) -> bool:
    """Whether ``collect(path)`` is certainly ``NOTHING``, told without msgspec or pluggy.

    True only for a project whose configuration is certainly valid
    (``config_check``), with no plugin that could place its regions
    elsewhere, and whose local fleet has no region record and no pointer
    store: what ``collect`` answers then. Anything else (regions, a past
    deployment, a plugin, a configuration to report on) is ``collect``'s.
    """
    from vega_dag.config_check import store_dir
    from vega_dag.plugins.declared import may_declare_plugins

    store = store_dir(path)
    if store is None or may_declare_plugins():
        return False
    for name in ("VEGA_DAG_REGIONS", "VEGA_DAG_POINTERS"):
        # Region agents, or pointers on NATS, named by the environment: theirs to answer.
        if (os.environ.get(name) or "").strip() not in ("", "local"):
            return False
    fleet = os.path.join(store, "fleet")  # regions.fleet.fleet_dir
    if os.path.exists(os.path.join(fleet, "pointers.sqlite")):
        return False
    try:
        with os.scandir(os.path.join(fleet, "regions")) as entries:
            return not any(e.name.endswith(".json") for e in entries)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def collect(path: Path, probe: bool = False) -> dict:
    from vega_dag.config import load_config
    from vega_dag.plugins.manager import region_target
    from vega_dag.regions.fleet import RegionError

    config = load_config(path)
    target = region_target(config)
    regions = target.regions()
    supervised = _supervised(target)
    statuses = target.statuses(regions) if regions else {}
    from vega_dag.rollout.jetstream import pointers_url

    url = pointers_url(config)
    if not regions and url is None and not target.db_path.exists():
        # Never deployed, nothing running: nothing to open (sqlite would create the file).
        return {key: list(value) for key, value in NOTHING.items()}
    from vega_dag.rollout.pointers import open_pointers

    pointers = open_pointers(target.db_path, url)
    try:
        ptrs = pointers.pointers()
        lock = pointers.lock_holder()
        rolling = [d for d in pointers.deployments(20) if d.status == "rolling"]
        now = time.time()
        rows = []
        known = {r.name for r in regions}
        names = [r.name for r in regions] + sorted((set(ptrs) | set(supervised)) - known)
        urls = {r.name: r.url for r in regions}
        for name in names:
            p = ptrs.get(name)
            st = statuses.get(name)
            sup = supervised.get(name) or {}
            if st is None:
                health = "down"
                if sup.get("state") == "backoff" and sup.get("next_start") is not None:
                    health = "down (the supervisor restarts it)"
            elif isinstance(st, RegionError):
                health = "unreachable"
            elif st.get("error"):
                health = f"degraded: {st['error']}"
            elif sup.get("state") == "restarting" and (
                st.get("deployment") != (p.deployment if p else None)
            ):
                # Counted healthy only once it serves its pointer's deployment again.
                health = "restarting"
            elif p is not None and st.get("deployment") != p.deployment:
                health = "switching"
            else:
                health = "ok"
            row_probe: dict | None = None
            if probe and health == "ok" and p is not None and p.deployment and name in urls:
                row_probe = _probe(config, pointers, urls[name], p.deployment)
                if row_probe["problems"]:
                    health = "routes failing"
            rows.append(
                {
                    "name": name,
                    "url": urls.get(name),
                    "deployment": p.deployment if p else None,
                    "serving": st.get("deployment") if isinstance(st, dict) else None,
                    "generation": p.generation if p else 0,
                    # A weighted step: `deployment` answers `weight` %, `baseline` the rest.
                    "weight": p.weight if p else 100,
                    "baseline": p.baseline if p else None,
                    "health": health,
                    "age_seconds": round(now - p.updated_at, 1) if p else None,
                    "restarts": sup.get("restarts", 0),
                    "last_restart": (sup.get("history") or [None])[-1],
                    # The last minute's live traffic, from the region's metrics (None: off).
                    "traffic": st.get("traffic") if isinstance(st, dict) else None,
                    # A region agent's: deployment → why it would not serve it (a signature).
                    **({"refusals": refusals} if (refusals := _refusals(st)) else {}),
                    **({"probe": row_probe} if row_probe is not None else {}),
                }
            )
        interrupted = []
        for d in rolling:
            holder_alive = lock is not None and lock[3]
            if not holder_alive:
                interrupted.append(d.id)
        return {
            "regions": rows,
            "rolling": [d.id for d in rolling if d.id not in interrupted],
            "interrupted": interrupted,
            # Whether a region that dies is restarted (False: a local fleet without its supervisor).
            "supervised": bool(supervised) or not hasattr(target, "dir") or not regions,
        }
    finally:
        pointers.close()


def _refusals(st: object) -> dict | None:
    return st.get("refusals") if isinstance(st, dict) else None


def _supervised(target) -> dict[str, dict]:  # noqa: ANN001
    """The supervisor's record of each region (restarts, state), if one runs."""
    from vega_dag.regions.supervisor import read_state

    fleet_dir = getattr(target, "dir", None)
    state = read_state(fleet_dir) if fleet_dir is not None else None
    return dict(state.get("regions", {})) if state else {}


def _probe(config, pointers, url: str, deployment: str) -> dict:  # noqa: ANN001
    from vega_dag.manifest import decode_manifest
    from vega_dag.rollout.route_health import probe_region
    from vega_dag.store.objects import ObjectStore

    record = pointers.deployment(deployment)
    if record is None:
        return {"summary": "unknown deployment", "problems": [deployment], "p99_ms": None}
    manifest = decode_manifest(ObjectStore(config.store_dir).get(record.manifest))
    summary, problems, latency = probe_region(
        url, deployment, manifest, config.vega.health, config.vega.app_mount
    )
    return {"summary": summary, "problems": problems, "p99_ms": latency}
