"""A rollback of N local regions, the pointers on NATS JetStream beside the SQLite default.

Group rollback-pointers-N (see docs/performance.md): `vega-dag rollback`
measured from the command's start until every region answers a route with
the previous deployment's header, as rollback-24 measures it; the fleet and
the rollback use the SQLite file (``sqlite``) or a real local ``nats-server
-js`` (``nats``: one CAS write per region, which each region learns through its
KV watch). The project is the generated one at 60 modules (20 in smoke
runs): a rollback writes pointers, it builds nothing. VEGA_BENCH_ROUNDS=N
measures N rounds (default 5); with VEGA_BENCH_SMOKE=1 one round against 3
regions.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.rollout.natsserver import CannotRun, running_nats

import vega_dag
from benches.conftest import SMOKE
from benches.generate_project import generate, touch_modules
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet, request_many

REGIONS = 3 if SMOKE else 24
ROUNDS = 1 if SMOKE else int(os.environ.get("VEGA_BENCH_ROUNDS") or 5)
VEGA = [sys.executable, "-c", "from vega_dag.entry import main; main()"]
HERE = str(Path(vega_dag.__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory):
    try:
        with running_nats(tmp_path_factory.mktemp("nats")) as server:
            yield f"{server.url}/bench"
    except CannotRun as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module", params=["sqlite", "nats"])
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    env = {**os.environ, "PYTHONPATH": HERE, "VEGA_DAG_POINTERS": "local"}
    if request.param == "nats":
        env["VEGA_DAG_POINTERS"] = request.getfixturevalue("nats_url")
    base = tmp_path_factory.mktemp(f"pointers-{request.param}")
    project = generate(base / "api", 30 if SMOKE else 60, seed=0)
    text = (project.root / "pyproject.toml").read_text()
    text = text.replace("p99_ms = 250", "p99_ms = 2000\nload_timeout_s = 60")
    waves = '[["fra"], ["iad", "sfo", "lhr"], ["*"]]'
    text += f"\n[tool.vega.rollout]\nregions = {REGIONS}\nwaves = {waves}\n"
    (project.root / "pyproject.toml").write_text(text)

    def vega(*args: str) -> str:
        proc = subprocess.run([*VEGA, *args], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return proc.stdout

    try:
        vega("deploy", "-q", str(project.root))
        yield project, env, vega
    finally:
        LocalFleet(load_config(project.root)).down()


@pytest.mark.benchmark(group=f"rollback-pointers-{REGIONS}")
def test_rollback_pointers(benchmark, fleet) -> None:
    project, env, vega = fleet
    root = project.root
    regions = LocalFleet(load_config(root)).regions()
    out = json.loads(vega("build", "--json", str(root)))
    path = sorted(p for p in out["routes"] if "{" not in p)[0]
    seeds = itertools.count(100)
    previous: dict[str, str] = {}

    def setup():
        previous["id"] = json.loads(vega("deploy", "--json", str(root)))["deployment"]
        touch_modules(project, 3, seed=next(seeds))
        vega("deploy", "-q", str(root))
        return (), {}

    def rollback() -> None:
        proc = subprocess.Popen([*VEGA, "rollback", "-q", "--path", str(root)], env=env)
        pending = {r.name: r for r in regions}
        while pending:
            asked = list(pending.values())
            answers = request_many([(r.url + path, "GET", None) for r in asked], timeout=5.0)
            for r, answer in zip(asked, answers, strict=True):
                if isinstance(answer, OSError):
                    raise answer
                if answer[1].get("x-vega-deployment") == previous["id"]:
                    del pending[r.name]
            if pending:
                time.sleep(0.002)
        assert proc.wait() == 0

    benchmark.pedantic(rollback, setup=setup, rounds=ROUNDS, iterations=1)
