"""Print each benchmark group's figures as ratios against its peer tool.

python benches/report.py .benchmarks/latest.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

#: group -> (vega-dag's benchmark, the peer it is compared with)
PAIRS: dict[str, list[tuple[str, str]]] = {
    "hash-process": [("test_vega_dag_hash_process", "test_b3sum_process")],
    "hash-inprocess": [
        ("test_core_hash_files", "test_python_hashlib_loop"),
        ("test_core_hash_files", "test_python_blake3_loop"),
    ],
    "build-real-cold": [("test_vega_build_real_cold", "test_compileall_real_cold")],
    "graph-real-cold": [("test_vega_graph_real_cold", "test_ruff_analyze_graph_real_cold")],
    "build-217-incremental": [
        ("test_build_217_three_changed_daemon", "test_build_217_three_changed")
    ],
    "build-20k-noop": [("test_build_20k_noop_daemon", "test_build_20k_noop")],
    "build-20k-10changed": [("test_build_20k_ten_changed_daemon", "test_build_20k_ten_changed")],
    "drift-hook": [
        ("test_drift_hook_20_changed[this-one-shot]", "test_build_20_changed[this-one-shot]"),
        ("test_drift_hook_20_changed[this-daemon]", "test_build_20_changed[this-daemon]"),
        (
            "test_drift_hook_20_changed[this-one-shot]",
            "test_drift_hook_20_changed[reference-one-shot]",
        ),
        ("test_drift_hook_20_changed[this-daemon]", "test_drift_hook_20_changed[reference-daemon]"),
    ],
    # A toolchain upgrade: the new version's cold build beside the old one's.
    "upgrade-example": [
        (
            "test_build_with_step_version[2.11.3-example]",
            "test_build_with_step_version[2.9.0-example]",
        )
    ],
    "upgrade-real": [
        ("test_build_with_step_version[2.11.3-real]", "test_build_with_step_version[2.9.0-real]")
    ],
    # A region against the same handler under plain uvicorn (def and async def endpoints).
    "serve-keepalive": [
        ("test_region_kept_alive", "test_uvicorn_kept_alive"),
        ("test_region_kept_alive", "test_uvicorn_async_kept_alive"),
    ],
    "serve-fresh-connection": [("test_region_fresh_connection", "test_uvicorn_fresh_connection")],
    # A second machine's cold build against a warm shared cache, beside a local no-op build.
    "remote-cache-shop": [("test_build_shop_cold_remote", "test_build_shop_noop_local")],
    # GC against wiping the store and building the head cold (extra_info: bytes freed).
    "gc-2k-100builds": [("test_vega_gc", "test_wipe_and_rebuild_cold")],
    # A rollback with the pointers on NATS JetStream beside the SQLite file.
    "rollback-pointers-24": [("test_rollback_pointers[nats]", "test_rollback_pointers[sqlite]")],
}
#: group -> (vega-dag's benchmark, its peer), compared by extra_info["requests_per_s"]
RATES: dict[str, list[tuple[str, str]]] = {
    "serve-throughput": [
        ("test_region_wrk", "test_uvicorn_wrk"),
        ("test_region_wrk", "test_uvicorn_async_wrk"),
    ],
}


def _find(benches: dict[str, dict], name: str) -> str | None:
    """The benchmark called ``name``, or the only one whose name without parameters is."""
    if name in benches:
        return name
    found = [b for b in benches if b.split("[")[0] == name]
    return found[0] if len(found) == 1 else None


def main(path: str) -> None:
    with open(path) as f:
        data = json.load(f)
    by_group: dict[str, dict[str, dict]] = defaultdict(dict)
    extras: dict[str, dict[str, dict]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        by_group[bench["group"]][bench["name"]] = bench["stats"]
        if bench.get("extra_info"):
            extras[bench["group"]][bench["name"]] = bench["extra_info"]
    for group, benches in sorted(by_group.items()):
        print(f"## {group}")
        for name, stats in sorted(benches.items(), key=lambda kv: kv[1]["median"]):
            print(
                f"  {name:40s} median {stats['median'] * 1000:10.2f} ms"
                f"   min {stats['min'] * 1000:10.2f} ms"
            )
        for name, info in sorted(extras[group].items()):
            print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(info.items())))
        for ours_name, peer_name in PAIRS.get(group, []):
            ours = _find(benches, ours_name)
            peer = _find(benches, peer_name)
            if ours and peer:
                ratio = benches[peer]["median"] / benches[ours]["median"]
                print(f"  → {ours} is {ratio:.2f}× the speed of {peer} (median)")
        for ours_name, peer_name in RATES.get(group, []):
            ours_rate = extras[group].get(ours_name, {}).get("requests_per_s")
            peer_rate = extras[group].get(peer_name, {}).get("requests_per_s")
            if ours_rate and peer_rate:
                ratio = ours_rate / peer_rate
                print(f"  → {ours_name} serves {ratio:.2f}× the requests/s of {peer_name}")


if __name__ == "__main__":
    main(sys.argv[1])
