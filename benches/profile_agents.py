#!/usr/bin/env python3
"""Where a rollback and a deploy across region agents spend their time.

    python benches/profile_agents.py DIR [--rounds N] [--regions 24] [--idle 5]

Starts a real ``nats-server -js`` and SeaweedFS on loopback, N region agents
(``vega-dag region serve``, each in its own directory under DIR), generates
the 217-module project, deploys it, then for each round changes 3 modules,
deploys in this process (the build, the upload, the prefetch over NATS, each
wave's nodes, timed) and rolls back in this process (the pointer store's
open and reads, the agents' discovery, the prefetch, the CAS writes, the wait
for the status keys, timed). Beside the calls:

- each agent's own side of the rollback: from the end of the pointer write
  to the switch its status reports (``switched_at``), so the watch's wake-up
  and the switch together, and its status key's arrival at the command;
- each agent's fetch of the deploy (objects fetched, objects it held, seconds);
- the agents' idle CPU: utime + stime of every process of theirs (front,
  zygote, loader, workers) over ``--idle`` seconds with nothing deployed;
- the command's start: ``python -c pass``, the rollback's imports.

Medians over the rounds are printed. Run it with ``PYTHONPATH=OTHER/python``
to profile another tree the same way (agents and all).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("VEGA_DAG_DAEMON", "0")

from benches.generate_project import as_a_fleet, generate, touch_modules
from benches.profile_rollout import Steps


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` and every process in their sessions (agents start their own)."""
    ticks = os.sysconf("SC_CLK_TCK")
    sessions = {os.getsid(p) for p in pids if os.path.exists(f"/proc/{p}")}
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in sessions:  # field 6 of stat: the session id
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def command_start(tree: str, rounds: int = 5) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": tree}
    rows = {
        "python -c pass": "pass",
        "imports of the rollback on agents": (
            "import vega_dag.rollout.rollback, vega_dag.regions.agents, vega_dag.regions.target,"
            " vega_dag.rollout.jetstream, nats, nats.js, asyncio"
        ),
    }
    out = {}
    for label, code in rows.items():
        seen = []
        for _ in range(rounds):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            seen.append(time.perf_counter() - t)
        out[label] = statistics.median(seen)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--regions", type=int, default=24)
    parser.add_argument("--idle", type=float, default=5.0)
    args = parser.parse_args()

    from tests.agents.helpers import Agents, Backends
    from tests.rollout.natsserver import running_nats
    from tests.store.seaweed import BUCKET, running_seaweed

    args.dir.mkdir(parents=True, exist_ok=True)
    with (
        running_nats(args.dir / "nats") as nats,
        running_seaweed(args.dir / "seaweed") as seaweed,
    ):
        backends = Backends(f"s3://{BUCKET}/profile", f"{nats.url}/profile", seaweed.env())
        os.environ.update(backends.env)
        agents = Agents(backends, args.dir / "hosts")
        from vega_dag.regions import REGION_NAMES

        try:
            agents.start_many(list(REGION_NAMES[: args.regions]))
            pids = [a.proc.pid for a in agents.running.values()]
            before = cpu_seconds(pids)
            time.sleep(args.idle)
            idle = (cpu_seconds(pids) - before) / args.idle
            print(f"{args.regions} idle agents, nothing deployed: {idle * 1000:.0f} ms CPU/s")
            profile(args, backends, agents, pids)
        finally:
            agents.stop_all()


def profile(args: Any, backends: Any, agents: Any, pids: list[int]) -> None:
    import vega_dag.rollout.deploy as deploy
    import vega_dag.rollout.jetstream as jetstream
    from vega_dag.cli.build_cmd import run_build
    from vega_dag.config import load_config
    from vega_dag.plugins.manager import health_checks, region_target
    from vega_dag.rollout.rollback import rollback

    root = args.dir / "api"
    project = generate(root, 217, seed=0)
    backend = f'\n[tool.vega.backend]\nstore = "{backends.store}"\npointers = "{backends.pointers}"'
    as_a_fleet(root, args.regions, backend + '\nregions = "agents"\n')
    print(f"vega_dag from {Path(deploy.__file__).parent.parent}")
    for label, seconds in command_start(str(Path(deploy.__file__).parent.parent)).items():
        print(f"  {label:44s} {seconds * 1000:8.1f} ms")
    config = load_config(root)
    d, r, a = Steps(), Steps(), Steps()
    counts: list[tuple[float, float]] = []

    def run_deploy(steps: Steps | None) -> None:
        target = region_target(config)
        started = time.perf_counter()
        build = run_build(root, as_json=False, quiet=True, explain=False, jobs=None)
        built = time.perf_counter()
        nodes: dict[str, float] = {}

        def start(node: Any) -> None:
            nodes[node.key + "@"] = time.perf_counter()

        def done(node: Any, _: Any) -> None:
            began = nodes.pop(node.key + "@", 0.0)
            key = node.key.split(":")[0] if node.key.startswith("prefetch:") else node.key
            nodes[key] = max(nodes.get(key, 0.0), time.perf_counter() - began)

        events = deploy.Events(on_node_start=start, on_node_done=done)
        rollout = deploy.Rollout(
            config, build.manifest, target, events=events, health_checks=health_checks(config)
        )
        rollout.run()
        if steps is not None:
            steps.add("build (in process)", built - started)
            for key, seconds in nodes.items():
                steps.add(f"node {key} (longest)", seconds)
            steps.add("deploy, all", time.perf_counter() - started)
            fetched = []
            for st in target._all().values():
                f = (st.get("fetches") or {}).get(build.manifest)
                if f:
                    fetched.append(f)
            if fetched:
                counts.append(
                    (
                        statistics.median(x[0] for x in fetched),
                        statistics.median(x[1] for x in fetched),
                    )
                )
                steps.add("agents' fetch, median", statistics.median(x[2] for x in fetched))
                steps.add("agents' fetch, slowest", max(x[2] for x in fetched))
        target.close()

    run_deploy(None)
    for i in range(args.rounds):
        touch_modules(project, 3, seed=1000 + i)
        run_deploy(d)
        d.end_round()
        time.sleep(1.0)
        target = region_target(config)
        for attr in ("regions", "prefetch_many", "wait_serving_many"):
            r.wrap(target, attr, f"agents.{attr}")
        for attr in ("__init__", "touched_by", "pointers", "swap", "deployments", "require",
                     "deploy_lock", "set_status", "deployment"):  # fmt: skip
            r.wrap(jetstream.JetStreamPointers, attr, f"pointers.{attr}")
        swapped: list[float] = []
        inner_swap = jetstream.JetStreamPointers.swap

        def swap(
            self: Any, *a: Any, _inner: Any = inner_swap, _at: list = swapped, **k: Any
        ) -> Any:
            out = _inner(self, *a, **k)
            _at.append(time.time())
            return out

        jetstream.JetStreamPointers.swap = swap  # type: ignore[method-assign]
        started = time.perf_counter()
        rollback(config, target)
        r.add("rollback(), all", time.perf_counter() - started)
        jetstream.JetStreamPointers.swap = inner_swap  # type: ignore[method-assign]
        for attr in ("regions", "prefetch_many", "wait_serving_many"):
            r.unwrap(target, attr)
        for attr in ("__init__", "touched_by", "pointers", "swap", "deployments", "require",
                     "deploy_lock", "set_status", "deployment"):  # fmt: skip
            r.unwrap(jetstream.JetStreamPointers, attr)
        switched = [
            float(st.get("switched_at") or 0) - swapped[-1] for st in target._all().values()
        ]
        a.add("agent: pointer written → switched, median", statistics.median(switched))
        a.add("agent: pointer written → switched, max", max(switched))
        target.close()
        r.end_round()
        a.end_round()
    pids = [p for p in pids if os.path.exists(f"/proc/{p}")]
    before = cpu_seconds(pids)
    time.sleep(args.idle)
    idle = (cpu_seconds(pids) - before) / args.idle
    d.print(f"deploy, 3 modules changed, {args.regions} agents (median of {args.rounds})")
    for fetched, held in counts:
        print(f"  an agent's fetch: {fetched:.0f} objects fetched, {held:.0f} already held")
    r.print(f"rollback, {args.regions} agents (median of {args.rounds})")
    a.print("the agents' side of the rollback")
    print(f"{args.regions} idle agents serving 2 deployments: {idle * 1000:.0f} ms CPU/s")


if __name__ == "__main__":
    main()
