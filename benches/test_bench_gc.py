"""Store GC benchmark: `vega-dag gc` on a store of 100 builds, beside wiping and rebuilding.

Group (see docs/performance.md):
- gc-2k-100builds: the generated 2,000-module project built 100 times (3
  modules changed each time), each build recorded as a deployment, so the
  store holds 100 builds' packs. `vega-dag gc` (keep the newest 10
  deployments, the head, and what rollback reaches) against the only way to
  shrink a store without GC: delete the store (all of `.vega/` but the
  pointer store) and build the head cold, which loses every deployment's
  objects. Each side runs on its own copy of the same store; `extra_info`
  carries the bytes before and after.

With VEGA_BENCH_SMOKE=1: 200 modules, 5 builds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benches.conftest import SMOKE
from benches.generate_project import GeneratedProject, generate, touch_modules
from vega_dag.config import load_config
from vega_dag.pipeline import build
from vega_dag.regions.fleet import fleet_dir
from vega_dag.rollout.pointers import PointerStore

BIN = Path(sys.executable).parent
VEGA = str(BIN / "vega-dag")
MODULES = 200 if SMOKE else 2_000
BUILDS = 5 if SMOKE else 100


def _store_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def store_of_100(tmp_path_factory: pytest.TempPathFactory) -> GeneratedProject:
    project = generate(tmp_path_factory.mktemp("gc2k") / "api", MODULES, seed=0)
    config = load_config(project.root)
    pointers = PointerStore(fleet_dir(config) / "pointers.sqlite")
    try:
        for n in range(BUILDS):
            if n:
                touch_modules(project, 3, seed=n)
            manifest = build(project.root).manifest
            dpl = pointers.create_deployment(manifest, str(project.root), {}, {}, "bench")
            pointers.set_status(dpl.id, "live")
    finally:
        pointers.close()
    return project


def _copy(project: GeneratedProject, tmp: Path) -> Path:
    dest = tmp / "copy"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(project.root, dest, symlinks=True)
    return dest


@pytest.mark.benchmark(group="gc-2k-100builds")
def test_vega_gc(benchmark, store_of_100: GeneratedProject, tmp_path: Path):
    root = _copy(store_of_100, tmp_path)
    before = _store_bytes(root / ".vega")
    benchmark.pedantic(
        subprocess.run,
        args=([VEGA, "gc", "-q", "--keep-deployments", "10", str(root)],),
        kwargs={"check": True},
        rounds=1,
        iterations=1,
    )
    after = _store_bytes(root / ".vega")
    benchmark.extra_info.update(bytes_before=before, bytes_after=after, freed=before - after)
    assert after < before
    subprocess.run([VEGA, "store", "verify", str(root)], check=True, stdout=subprocess.DEVNULL)


@pytest.mark.benchmark(group="gc-2k-100builds")
def test_wipe_and_rebuild_cold(benchmark, store_of_100: GeneratedProject, tmp_path: Path):
    root = _copy(store_of_100, tmp_path)
    before = _store_bytes(root / ".vega")

    def wipe_and_build() -> None:
        for child in (root / ".vega").iterdir():  # the pointer store stays
            if child.name != "fleet":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        subprocess.run([VEGA, "build", "-q", str(root)], check=True, stdout=subprocess.DEVNULL)

    benchmark.pedantic(wipe_and_build, rounds=1, iterations=1)
    after = _store_bytes(root / ".vega")
    benchmark.extra_info.update(bytes_before=before, bytes_after=after, freed=before - after)
