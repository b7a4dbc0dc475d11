"""One-app projects beside file-routed ones: whole `vega-dag build` processes.

Group build-app-incremental (see docs/performance.md): a FastAPI project of
ROUTERS router modules (three routes each, each router importing two shared
modules), one router module changed per round, built as a user runs it (the
first build starts the daemon; the rounds are the builds after it):

- ``test_app_one_router_changed``: one application, ``shop/main.py``
  including every router, so every round rebuilds the app's one bundle,
  imports it from the bundle alone (the import check) and lists its routes
  in the same child;
- ``test_files_one_route_changed``: the same modules as file routes
  (``api/r<i>.py``, each a FastAPI app of the same three routes), so every
  round rebuilds one route's bundle and imports that route.

Same module count, same third-party imports, same edit: what the one-app
form costs over the file-routed one is the app's wider import (every router)
and the listing. The ``*_one_shot`` rows build in their own process
(VEGA_DAG_DAEMON=0) and record the CPU seconds of each round, the build's
children included (``extra_info["cpu_s"]``): on a machine other jobs load,
CPU time compares the two forms where wall time cannot.
"""

from __future__ import annotations

import itertools
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benches.conftest import SMOKE

BIN = Path(sys.executable).parent
VEGA = str(BIN / "vega-dag")
ROUTERS = 6 if SMOKE else 60
ROUNDS = 2 if SMOKE else 15

ROUTER = """\
from fastapi import APIRouter

from shop.lib import db, models{i}

router = APIRouter()


@router.get("/")
def index() -> list:
    return db.rows("r{i}")


@router.get("/{{item_id}}")
def show(item_id: int) -> dict:
    return models{i}.one(item_id, {edit})


@router.post("/")
def add() -> dict:
    return {{"added": "r{i}"}}
"""

MODELS = "def one(item_id: int, edit: int) -> dict:\n    return {{'id': item_id, 'm': {i}}}\n"
#: A loaded machine (the benchmark's peers, other jobs) must not fail the rows.
CHECK = "\n[tool.vega.import_check]\ntimeout_s = 120\n"
DB = "def rows(name: str) -> list:\n    return [name]\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def one_app(root: Path) -> Path:
    _write(root / "pyproject.toml", '[tool.vega]\napp = "shop.main:app"\n' + CHECK)
    _write(root / "shop/__init__.py", "")
    _write(root / "shop/lib/__init__.py", "")
    _write(root / "shop/lib/db.py", DB)
    imports, includes = [], []
    for i in range(ROUTERS):
        _write(root / f"shop/lib/models{i}.py", MODELS.format(i=i))
        _write(root / f"shop/routers/r{i}.py", ROUTER.format(i=i, edit=0))
        imports.append(f"from shop.routers import r{i}")
        includes.append(f'app.include_router(r{i}.router, prefix="/r{i}")')
    _write(root / "shop/routers/__init__.py", "")
    main = "from fastapi import FastAPI\n\n" + "\n".join(imports) + "\n\napp = FastAPI()\n"
    _write(root / "shop/main.py", main + "\n".join(includes) + "\n")
    return root


def file_routed(root: Path) -> Path:
    """The same modules, each router a file route serving its three routes."""
    _write(root / "pyproject.toml", "[tool.vega]\n" + CHECK)
    _write(root / "shop/__init__.py", "")
    _write(root / "shop/lib/__init__.py", "")
    _write(root / "shop/lib/db.py", DB)
    for i in range(ROUTERS):
        _write(root / f"shop/lib/models{i}.py", MODELS.format(i=i))
        _write(root / f"api/r{i}/[[...rest]].py", _route_app(i, 0))
    # As many modules as the app's: its package inits and main.py.
    _write(root / "shop/routers/__init__.py", "")
    _write(root / "shop/main.py", "")
    return root


def _route_app(i: int, edit: int) -> str:
    return ROUTER.format(i=i, edit=edit).replace("APIRouter", "FastAPI").replace("router", "app")


def run_as_a_user(*cmd: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("VEGA_DAG_DAEMON", "CI")}
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)


def started(root: Path) -> Path:
    from vega_dag.daemon.client import call

    root = root.resolve()
    run_as_a_user(VEGA, "build", "-q", str(root))  # starts the daemon, builds here
    deadline = time.monotonic() + 180  # a loaded machine starts it slowly
    while call(root, {"status": True}, timeout=5) is None:
        assert time.monotonic() < deadline, "the first build started no daemon"
        time.sleep(0.05)
    run_as_a_user(VEGA, "build", "-q", str(root))  # the daemon's first build
    return root


def stop(root: Path) -> None:
    subprocess.run([VEGA, "daemon", "stop", str(root)], stdout=subprocess.DEVNULL, check=False)


@pytest.fixture
def app_project(tmp_path: Path):
    root = started(one_app(tmp_path / "app"))
    yield root
    stop(root)


@pytest.fixture
def routed_project(tmp_path: Path):
    root = started(file_routed(tmp_path / "files"))
    yield root
    stop(root)


def edits(root: Path, path_of, text_of):
    """A pedantic setup: a real edit of one module (another each round)."""
    counter = itertools.count(1)

    def setup():
        n = next(counter)
        i = n % ROUTERS
        (root / path_of(i)).write_text(text_of(i, n))
        return (VEGA, "build", "-q", str(root)), {}

    return setup


@pytest.mark.benchmark(group="build-app-incremental")
def test_app_one_router_changed(benchmark, app_project: Path):
    setup = edits(
        app_project, lambda i: f"shop/routers/r{i}.py", lambda i, n: ROUTER.format(i=i, edit=n)
    )
    benchmark.pedantic(run_as_a_user, setup=setup, rounds=ROUNDS)


@pytest.mark.benchmark(group="build-app-incremental")
def test_files_one_route_changed(benchmark, routed_project: Path):
    setup = edits(routed_project, lambda i: f"api/r{i}/[[...rest]].py", _route_app)
    benchmark.pedantic(run_as_a_user, setup=setup, rounds=ROUNDS)


def cpu_rounds(benchmark, setup):
    """Run one-shot builds, recording each round's CPU seconds (children included)."""
    seconds: list[float] = []

    def one(*cmd: str) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        env = {**os.environ, "VEGA_DAG_DAEMON": "0"}
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)

    benchmark.pedantic(one, setup=setup, rounds=ROUNDS)
    ordered = sorted(seconds)
    benchmark.extra_info["cpu_s"] = {"median": ordered[len(ordered) // 2], "min": ordered[0]}


@pytest.fixture
def app_one_shot(tmp_path: Path) -> Path:
    root = one_app(tmp_path / "app")
    subprocess.run([VEGA, "build", "-q", str(root)], check=True, stdout=subprocess.DEVNULL)
    return root


@pytest.fixture
def routed_one_shot(tmp_path: Path) -> Path:
    root = file_routed(tmp_path / "files")
    subprocess.run([VEGA, "build", "-q", str(root)], check=True, stdout=subprocess.DEVNULL)
    return root


@pytest.mark.benchmark(group="build-app-incremental")
def test_app_one_router_changed_one_shot(benchmark, app_one_shot: Path):
    setup = edits(
        app_one_shot, lambda i: f"shop/routers/r{i}.py", lambda i, n: ROUTER.format(i=i, edit=n)
    )
    cpu_rounds(benchmark, setup)


@pytest.mark.benchmark(group="build-app-incremental")
def test_files_one_route_changed_one_shot(benchmark, routed_one_shot: Path):
    cpu_rounds(benchmark, edits(routed_one_shot, lambda i: f"api/r{i}/[[...rest]].py", _route_app))
