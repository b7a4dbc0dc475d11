"""The shared build cache on S3: a second machine's cold build beside a local no-op build.

Group remote-cache-shop (docs/performance.md, docs/remote-cache.md):
- test_build_shop_cold_remote: `vega-dag build` of a fresh copy of
  examples/shop-api (its own empty `.vega`, the lock's dependency layer
  included) against a shared store that a first copy filled: every module and
  the layer come from SeaweedFS on loopback (a real S3 service), verified;
- test_build_shop_noop_local: `vega-dag build` of a built copy that changed
  nothing, with no remote (the embedded default).
Both are one-shot processes (VEGA_DAG_DAEMON=0), started from the
interpreter's bin directory. The target: ≤ 2× the no-op.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.examples import SHOP
from tests.store.seaweed import BUCKET, CannotRun, running_seaweed

from benches.conftest import SMOKE

VEGA = str(Path(sys.executable).parent / "vega-dag")
ROUNDS = 1 if SMOKE else 5
STORE = f"s3://{BUCKET}/bench-shop"


def copy_of_shop(where: Path) -> Path:
    shutil.copytree(SHOP, where, ignore=shutil.ignore_patterns(".vega", "__pycache__"))
    return where


def build_json(root: Path, env: dict[str, str], *args: str) -> dict:
    out = subprocess.run(
        [VEGA, "build", "--json", *args, str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "VEGA_DAG_DAEMON": "0", **env},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def warm_remote(tmp_path_factory: pytest.TempPathFactory):
    """A running SeaweedFS whose prefix holds a first machine's build of shop-api."""
    base = tmp_path_factory.mktemp("remote")
    try:
        with running_seaweed(base / "seaweedfs") as server:
            env = server.env()
            first = build_json(copy_of_shop(base / "first"), env, "--store", STORE)
            assert first["modules_compiled"] == 68, first
            yield base, env, first["manifest"]
    except CannotRun as err:
        pytest.skip(str(err))


@pytest.mark.benchmark(group="remote-cache-shop")
def test_build_shop_cold_remote(benchmark, warm_remote) -> None:
    base, env, manifest = warm_remote
    machines = iter(range(ROUNDS + 1))

    def setup():
        root = copy_of_shop(base / f"machine-{next(machines)}")
        cmd = [VEGA, "build", "--json", "--store", STORE, str(root)]
        return (cmd,), {}

    results: list[dict] = []

    def cold_build(cmd: list[str]) -> None:
        out = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "VEGA_DAG_DAEMON": "0", **env}
        )
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout))

    benchmark.pedantic(cold_build, setup=setup, rounds=ROUNDS, iterations=1)
    for result in results:
        assert (result["modules_compiled"], result["modules_remote"]) == (0, 68), result
        assert result["manifest"] == manifest and not result["warnings"]


@pytest.mark.benchmark(group="remote-cache-shop")
def test_build_shop_noop_local(benchmark, tmp_path: Path) -> None:
    root = copy_of_shop(tmp_path / "shop-api")
    build_json(root, {}, "--store", "local")
    env = {**os.environ, "VEGA_DAG_DAEMON": "0", "VEGA_DAG_STORE": "local"}

    def noop() -> None:
        subprocess.run([VEGA, "build", "-q", str(root)], check=True, env=env)

    benchmark.pedantic(noop, rounds=ROUNDS * 2, iterations=1, warmup_rounds=0 if SMOKE else 1)
