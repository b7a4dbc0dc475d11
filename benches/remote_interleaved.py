"""remote-cache-shop, interleaved: on a shared machine whose load swings, the two rows of
benches/test_bench_remote.py measured minutes apart can differ by the load alone.
This runs them alternately (a second machine's cold build against the warm remote, then
a local no-op build), N times, and prints medians of wall and CPU time and their ratios.

    env -u PYTHONDONTWRITEBYTECODE python benches/remote_interleaved.py 10
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.examples import SHOP
from tests.store.seaweed import BUCKET, running_seaweed

VEGA = str(Path(sys.executable).parent / "vega-dag")
STORE = f"s3://{BUCKET}/interleaved"


def copy_of_shop(where: Path) -> Path:
    shutil.copytree(SHOP, where, ignore=shutil.ignore_patterns(".vega", "__pycache__"))
    return where


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, user + sys CPU) seconds of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="vega-remote-bench-") as tmp:
        base = Path(tmp)
        with running_seaweed(base / "seaweedfs") as server:
            env = {**os.environ, "VEGA_DAG_DAEMON": "0", **server.env()}
            build = [VEGA, "build", "-q", "--store"]
            subprocess.run([*build, STORE, str(copy_of_shop(base / "first"))], check=True, env=env)
            noop_root = copy_of_shop(base / "noop")
            subprocess.run([*build, "local", str(noop_root)], check=True, env=env)
            cold, noop = [], []
            for i in range(rounds):
                root = copy_of_shop(base / f"machine-{i}")
                cold.append(timed([*build, STORE, str(root)], env))
                noop.append(timed([*build, "local", str(noop_root)], env))
                shutil.rmtree(root)
    for name, runs in (("cold build, warm remote", cold), ("local no-op build", noop)):
        wall = statistics.median(w for w, _ in runs) * 1000
        cpu = statistics.median(c for _, c in runs) * 1000
        fastest = min(w for w, _ in runs) * 1000
        print(f"{name}: wall median {wall:.0f} ms (min {fastest:.0f}), cpu {cpu:.0f} ms")
    ratio_wall = statistics.median(w for w, _ in cold) / statistics.median(w for w, _ in noop)
    ratio_cpu = statistics.median(c for _, c in cold) / statistics.median(c for _, c in noop)
    print(f"ratio: wall {ratio_wall:.2f}×, cpu {ratio_cpu:.2f}× (target ≤ 2×)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
