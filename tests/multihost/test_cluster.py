"""The hub cluster and the leaf nodes: replicated buckets, a region host reading its pointer
through its leaf node's mirror, during a partition and after it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.multihost.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]

#: Run in a host's namespace: print the pointer of region argv[2] as JSON.
READ_THROUGH_LEAF = """
import asyncio, json, sys
from vega_dag.rollout.jetstream import (
    decode_pointer, open_reader, parse_leaf_url, parse_pointers_url)

async def main():
    nc, b = await open_reader(parse_pointers_url(sys.argv[1]), leaf=parse_leaf_url(sys.argv[3]))
    try:
        for _ in range(100):
            try:
                e = await b.pointers.get(sys.argv[2])
                break
            except Exception:
                await asyncio.sleep(0.05)  # the mirror's first copy is on its way
        p = decode_pointer(sys.argv[2], e.value, e.revision)
        print(json.dumps({"deployment": p.deployment, "generation": p.generation}))
    finally:
        await nc.close()

asyncio.run(main())
"""

#: Run on the developer machine: move region argv[2] to deployment argv[3].
WRITE_ON_HUB = """
import json, sys
from vega_dag.rollout.jetstream import JetStreamPointers
from vega_dag.rollout.pointers import Move

store = JetStreamPointers(sys.argv[1])
before = store.pointer(sys.argv[2])
store.swap([Move(sys.argv[2], before.generation, before.deployment, sys.argv[3])],
           sys.argv[3], "deploy", "test")
print(json.dumps({"generation": store.pointer(sys.argv[2]).generation}))
store.close()
"""


def py(cluster: Cluster, host: str, code: str, *args: str, timeout: float = 60) -> dict:
    h = cluster.net.hub if host == "hub" else cluster.net.hosts[host]
    done = cluster.net.run(h, [sys.executable, "-c", code, *args], cwd=ROOT, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def hub_pointers(cluster: Cluster, namespace: str) -> str:
    return ",".join(f"{u}/{namespace}" for u in cluster.hub_urls) + "?replicas=3"


def test_the_hub_replicates_the_pointer_bucket_and_the_history_three_times(cluster):
    url = hub_pointers(cluster, "repl")
    py(cluster, "dev", WRITE_ON_HUB, url, "r1", "dpl_one")
    assert cluster.stream_replicas("KV_repl-pointers") == 3
    assert cluster.stream_replicas("repl-history") == 3
    assert cluster.stream_leader("repl-history") in ("hub-a", "hub-b", "hub-c")


def test_a_region_host_reads_its_pointer_through_its_leaf_and_keeps_it_when_cut_off(healed):
    cluster = healed
    url = hub_pointers(cluster, "leaf")
    leaf = cluster.leaf_pointers("r1")
    first = py(cluster, "dev", WRITE_ON_HUB, url, "r1", "dpl_first")
    seen = py(cluster, "r1", READ_THROUGH_LEAF, url, "r1", leaf)
    assert seen == {"deployment": "dpl_first", "generation": first["generation"]}

    cluster.net.cut("r1")
    second = py(cluster, "dev", WRITE_ON_HUB, url, "r1", "dpl_second")
    # Cut off: the leaf still answers, with the last value it copied.
    assert py(cluster, "r1", READ_THROUGH_LEAF, url, "r1", leaf)["deployment"] == "dpl_first"

    cluster.net.mend("r1")
    deadline = time.monotonic() + 30
    while (seen := py(cluster, "r1", READ_THROUGH_LEAF, url, "r1", leaf))["deployment"] != (
        "dpl_second"
    ):
        assert time.monotonic() < deadline, f"r1's mirror never caught up: {seen}"
        time.sleep(0.2)
    assert seen["generation"] == second["generation"]
