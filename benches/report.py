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
}


def main(path: str) -> None:
    with open(path) as f:
        data = json.load(f)
    by_group: dict[str, dict[str, dict]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        by_group[bench["group"]][bench["name"].split("[")[0]] = bench["stats"]
    for group, benches in sorted(by_group.items()):
        print(f"## {group}")
        for name, stats in sorted(benches.items(), key=lambda kv: kv[1]["median"]):
            print(
                f"  {name:40s} median {stats['median'] * 1000:9.1f} ms"
                f"   min {stats['min'] * 1000:9.1f} ms"
            )
        for ours, peer in PAIRS.get(group, []):
            if ours in benches and peer in benches:
                ratio = benches[peer]["median"] / benches[ours]["median"]
                print(f"  → {ours} is {ratio:.2f}× the speed of {peer} (median)")


if __name__ == "__main__":
    main(sys.argv[1])
