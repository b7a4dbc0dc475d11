#!/usr/bin/env python3
"""Where a deploy and a rollback spend their time: timestamps around each step.

    python benches/profile_rollout.py DIR [--rounds N] [--regions 24]

Generates the 217-module project in DIR (once; later runs reuse it and its
fleet), deploys it, then for each round changes 3 modules and runs one
deploy and one rollback in this process, with the steps timed (the build,
the preflight, prefetch, each wave's promote and gate; the rollback's
pointer reads, prefetch, swap and confirmation). The median of each step
over the rounds is printed, then the fleet is stopped unless ``--keep``. Run
it with ``PYTHONPATH=OTHER/python`` to profile another tree the same way
(the tables in docs/performance.md are this script, before and after).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("VEGA_DAG_DAEMON", "0")

from benches.generate_project import as_a_fleet, generate, touch_modules


class Steps:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.round: dict[str, float] = defaultdict(float)

    def add(self, name: str, seconds: float) -> None:
        self.round[name] += seconds

    def wrap(self, obj: Any, attr: str, name: str | None = None) -> None:
        f = getattr(obj, attr)

        @functools.wraps(f)
        def timed(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                self.add(name or attr, time.perf_counter() - t)

        setattr(obj, attr, timed)

    def unwrap(self, obj: Any, attr: str) -> None:
        setattr(obj, attr, getattr(obj, attr).__wrapped__)

    def end_round(self) -> None:
        for name, seconds in self.round.items():
            self.times[name].append(seconds)
        self.round = defaultdict(float)

    def print(self, title: str) -> None:
        print(title)
        for name, values in self.times.items():
            med, lo, hi = statistics.median(values), min(values), max(values)
            print(f"  {name:44s} {med * 1000:8.1f} ms  ({lo * 1000:.1f}–{hi * 1000:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--regions", type=int, default=24)
    parser.add_argument("--keep", action="store_true", help="leave the fleet running")
    args = parser.parse_args()

    import vega_dag.rollout.deploy as deploy
    import vega_dag.rollout.pointers as pointers
    from vega_dag.cli.build_cmd import run_build
    from vega_dag.config import load_config
    from vega_dag.plugins.manager import health_checks, region_target
    from vega_dag.rollout.rollback import rollback

    root = args.dir / "api"
    fresh = not root.exists()
    project = generate(root, 217, seed=0) if fresh else None
    if fresh:
        as_a_fleet(root, args.regions)
    print(f"vega_dag from {Path(deploy.__file__).parent.parent}")

    config = load_config(root)
    target = region_target(config)
    d, r = Steps(), Steps()

    def run_deploy(steps: Steps | None) -> None:
        started = time.perf_counter()
        build = run_build(root, as_json=False, quiet=True, explain=False, jobs=None)
        built = time.perf_counter()
        nodes: dict[str, float] = {}
        prefetch: list[float] = []

        def start(node: Any) -> None:
            nodes[node.key + "@"] = time.perf_counter()

        def done(node: Any, _: Any) -> None:
            began = nodes.pop(node.key + "@", 0.0)
            if node.key.startswith("prefetch:"):
                prefetch.extend((began, time.perf_counter()))
            else:
                nodes[node.key] = time.perf_counter() - began

        events = deploy.Events(on_node_start=start, on_node_done=done)
        rollout = deploy.Rollout(
            config, build.manifest, target, events=events, health_checks=health_checks(config)
        )
        rollout.run()
        if steps is not None:
            steps.add("build (in process)", built - started)
            steps.add("prefetch: verify, start loads", max(prefetch) - min(prefetch))
            for key, seconds in nodes.items():
                label = {"promote:0": "promote:0 (waits for every load)"}.get(key, key)
                steps.add(label, seconds)
            steps.add("deploy, all", time.perf_counter() - started)

    try:
        profile(args, root, project, config, target, d, r, run_deploy, pointers, rollback)
    finally:
        if not args.keep:
            from vega_dag.regions.fleet import LocalFleet

            LocalFleet(config).down()


def profile(args, root, project, config, target, d, r, run_deploy, pointers, rollback) -> None:
    """The rounds, then the medians (the fleet is stopped by the caller, even on a failure)."""
    run_deploy(None)  # the fleet up, and a live deployment to change
    from benches.generate_project import GeneratedProject

    shape = project if project is not None else _reload(root, GeneratedProject)
    d.wrap(target, "statuses", "preflight: statuses")
    for i in range(args.rounds):
        touch_modules(shape, 3, seed=1000 + i + int(time.time()) % 100000)
        run_deploy(d)
        d.end_round()
        # hold_and_wait_many: a prefetch and a wait in one request per region (the
        # local fleet; it includes the swap), else prefetch_many, then wait_serving_many.
        wrapped = [
            a
            for a in ("regions", "prefetch_many", "wait_serving_many", "hold_and_wait_many")
            if hasattr(target, a)
        ]
        for attr in wrapped:
            r.wrap(target, attr)
        r.wrap(pointers.PointerStore, "touched_by")
        r.wrap(pointers.PointerStore, "swap")
        started = time.perf_counter()
        rollback(config, target)
        r.add("rollback(), all", time.perf_counter() - started)
        for attr in wrapped:
            setattr(target, attr, getattr(target, attr).__wrapped__)
        for attr in ("touched_by", "swap"):
            setattr(pointers.PointerStore, attr, getattr(pointers.PointerStore, attr).__wrapped__)
        r.end_round()  # back on the deployment the next round changes
    d.print(f"deploy, 3 modules changed, {args.regions} regions (median of {args.rounds})")
    r.print(f"rollback, {args.regions} regions (median of {args.rounds})")


def _reload(root: Path, kind: Any) -> Any:
    """The generated project's description, for touch_modules (regenerated in a scratch dir)."""
    scratch = root.parent / "shape"
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)
    shape = generate(scratch, 217, seed=0)
    shutil.rmtree(scratch)
    # The same (modules, seed) gives the same tree: point its paths at root.
    return kind(
        root,
        shape.modules,
        shape.seed,
        [root / p.relative_to(scratch) for p in shape.routes],
        [root / p.relative_to(scratch) for p in shape.shared],
        shape.route_urls,
        shape.edges,
        shape.cycles,
    )


if __name__ == "__main__":
    main()
