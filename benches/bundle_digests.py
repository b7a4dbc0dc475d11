"""The bundle step's digests alone, this tree against a reference, on one built project.

    python benches/bundle_digests.py PROJECT [--reference DIR] [--every 1700] [--rounds 5]

PROJECT is a generated project built by this tree (e.g. the build bench's
20,000-module one). The changed modules are every N-th module in path order,
as issue 13 describes the 10-module change; the routes whose closures hold
one are the rebuilt bundles. Each round times, on the same inputs and in
alternation: this tree's patched trees (``_core.tree_patches``: what an
incremental build does), its listed trees (``_core.tree_records``: a bundle
whose entry names changed), and, with ``--reference`` (a checkout's
``python/`` before trees), the reference's archive digests
(``_core.stored_archive_digests`` over the members' bytes), in a process of
that tree. Inputs are made before the clock starts; the figure is the call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

_REFERENCE = r"""
import json, sys, time
from vega_dag import _core
spec = json.load(open(sys.argv[1]))
blobs = {d: open(p, "rb").read() for d, p in spec["blobs"].items()}
inline = [(n, c.encode()) for n, c in spec["inline"]]
jobs = [(inline, [tuple(m) for m in members]) for members in spec["members"]]
t0 = time.perf_counter()
_core.stored_archive_digests(jobs, blobs, epoch=spec["epoch"])
print(time.perf_counter() - t0)
"""


def main() -> int:
    from vega_dag import _core
    from vega_dag.bundle.routes import BUNDLE_EPOCH, archive_name_of
    from vega_dag.config import load_config
    from vega_dag.store.objects import ObjectStore
    from vega_dag.store.state import load_state, state_paths

    parser = argparse.ArgumentParser()
    parser.add_argument("project", type=Path)
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--every", type=int, default=1700)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    config = load_config(args.project)
    _, state_path, _ = state_paths(config, None)
    state = load_state(state_path)
    store = ObjectStore(config.store_dir)
    by_path = sorted(state.modules.items(), key=lambda kv: kv[1].path)
    changed = {name for name, _ in by_path[:: args.every]}
    routes = sorted(p for p, c in state.closures.items() if not changed.isdisjoint(c))
    members = {
        p: sorted(
            (archive_name_of(n, state.modules[n].path), state.modules[n].pyc)
            for n in state.closures[p]
        )
        for p in routes
    }
    # A changed digest per changed module (any 32 bytes: the cost is the same).
    new = {n: _core.hash_bytes(n.encode()) for n in changed}
    patches = [
        (
            store.tree_record(state.routes[p].bundle),
            [
                (archive_name_of(n, state.modules[n].path), new[n])
                for n in changed.intersection(state.closures[p])
            ],
        )
        for p in routes
    ]
    listed = [[("__vega__/route.json", _core.hash_bytes(p.encode())), *members[p]] for p in routes]
    entries = sum(len(m) for m in members.values())
    spec_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bundle-digests-{os.getpid()}.json"
    if args.reference:
        blob_dir = spec_path.with_suffix(".blobs")
        blob_dir.mkdir(exist_ok=True)
        blobs = {}
        for ms in members.values():
            for _, d in ms:
                if d not in blobs:
                    path = blob_dir / d.removeprefix("blake3:")
                    path.write_bytes(store.get(d))
                    blobs[d] = str(path)
        spec_path.write_text(
            json.dumps(
                {
                    "blobs": blobs,
                    "inline": [["__vega__/route.json", "{}"]],
                    "members": [members[p] for p in routes],
                    "epoch": BUNDLE_EPOCH,
                }
            )
        )
    times: dict[str, list[float]] = {"patched trees": [], "listed trees": [], "reference": []}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        _core.tree_patches(patches)
        times["patched trees"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _core.tree_records(listed, epoch=BUNDLE_EPOCH)
        times["listed trees"].append(time.perf_counter() - t0)
        if args.reference:
            env = {**os.environ, "PYTHONPATH": str(args.reference.resolve())}
            out = subprocess.run(
                [sys.executable, "-c", _REFERENCE, str(spec_path)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            times["reference"].append(float(out.stdout))
    print(f"{len(changed)} changed modules, {len(routes)} rebuilt bundles, {entries} entries")
    for what, ts in times.items():
        if ts:
            med = statistics.median(ts) * 1000
            print(
                f"  {what:14s} median {med:8.1f} ms  min {min(ts) * 1000:8.1f} ms  "
                f"({med * 1000 / len(routes):.1f} µs a bundle)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
