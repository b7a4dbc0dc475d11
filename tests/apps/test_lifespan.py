"""The ASGI lifespan of a deployment's application runs in its region's worker.

A FastAPI app whose ``lifespan`` context manager opens its database (state a
route reads, both ``app.state`` and the lifespan ``state`` extension) is
deployed to a real region and served from there; a startup that raises fails
the deploy at its prefetch, naming the app and the error, with no pointer
moved; a worker retired by later deploys runs the shutdown (it writes a
file). A file route's Starlette app gets its lifespan too, in a worker forked
by the region's zygote (the loader stopped); a bare ASGI callable that does not
speak lifespan still serves; a startup that never finishes is timed out by
``load_timeout_s``, naming the route.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.apps.projects import ROLLOUT, write
from tests.rollout.helpers import get, stop_fleet, vega, vega_json, write_project
from tests.rollout.test_load_failures import pointers, with_load_timeout
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet

MAIN = """\
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from svc import db


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.db = db.connect(os.environ["DB_URL"])
    yield {"opened_by": f"lifespan {os.getpid()}"}
    with open(os.environ["SHUTDOWN_MARK"], "a") as mark:
        mark.write(f"{app.state.db} closed\\n")


app = FastAPI(lifespan=lifespan)


@app.get("/db")
def read(request: Request) -> dict:
    return {"db": request.app.state.db, "state": request.state.opened_by, "pid": os.getpid()}
"""

DB = 'VERSION = "v1"\n\n\ndef connect(url):\n    return f"{url} {VERSION}"\n'
FAILING_DB = "def connect(url):\n    raise RuntimeError(f'no database at {url}')\n"


@pytest.fixture
def lifespan_project(tmp_path):
    mark = tmp_path / "shutdowns.txt"
    pyproject = (
        '[project]\nname = "svc"\nversion = "0.1.0"\n\n[tool.vega]\napp = "svc.main:app"\n'
        f'env = {{ DB_URL = "db:5432", SHUTDOWN_MARK = "{mark}" }}\n' + ROLLOUT
    )
    root = write(
        tmp_path / "proj",
        {"pyproject.toml": pyproject, "svc/__init__.py": "", "svc/main.py": MAIN, "svc/db.py": DB},
    )
    yield root, mark
    stop_fleet(root)


def test_lifespan_startup_state_failure_and_shutdown_on_retire(lifespan_project):
    root, mark = lifespan_project
    first = vega_json("deploy", str(root))
    assert first["status"] == "live", first["problems"]
    url = first["regions"][0]["url"]
    status, _, body = get(url, "/db")
    answer = json.loads(body)
    assert status == 200, body
    assert answer["db"] == "db:5432 v1"
    # Run by the process that serves (a clone of the loader's template), not before the fork.
    assert answer["state"] == f"lifespan {answer['pid']}"

    # A startup that raises: the deploy fails at the prefetch, naming the app.
    before = pointers(root)
    (root / "svc/db.py").write_text(FAILING_DB)
    proc = vega("deploy", str(root), "--json", timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    problem = out["problems"][0]
    lines = problem.split("\n")
    assert lines[0] == (
        "prefetch:fra: route /{path:path?} (svc/main.py) did not load: the lifespan "
        "startup of svc.main:app failed: RuntimeError: no database at db:5432"
    ), problem
    assert '    File "svc/db.py", line 2, in connect' in lines, problem
    assert "Traceback" not in problem, problem
    assert pointers(root) == before
    assert json.loads(get(url, "/db")[2])["db"] == "db:5432 v1"  # still served
    assert not mark.exists()

    # Two good deploys later the first one's worker is retired: its shutdown runs.
    for version in ("v2", "v3"):
        (root / "svc/db.py").write_text(DB.replace("v1", version))
        out = vega_json("deploy", str(root))
        assert out["status"] == "live", out["problems"]
        assert json.loads(get(url, "/db")[2])["db"] == f"db:5432 {version}"
    deadline = time.monotonic() + 30  # a bound on a loaded machine, not a timing
    while not (mark.exists() and "v1 closed" in mark.read_text()):
        assert time.monotonic() < deadline, "the retired worker's shutdown did not run"
        time.sleep(0.1)
    assert "v3" not in mark.read_text()  # the one serving is not shut down


COUNTER = """\
import os
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


@asynccontextmanager
async def lifespan(app):
    app.state.opened_in = os.getpid()
    yield


async def counter(request):
    return JSONResponse({"opened_in": request.app.state.opened_in, "pid": os.getpid()})


app = Starlette(routes=[Route("/api/counter", counter)], lifespan=lifespan)
"""

# A startup that never finishes.
HANGS = COUNTER.replace("import os\n", "import asyncio\nimport os\n").replace(
    "    app.state.opened_in = os.getpid()\n", "    await asyncio.sleep(3600)\n"
)


@pytest.fixture
def routes_project(tmp_path):
    root = write_project(tmp_path / "proj", regions=1, extra={"api/counter.py": COUNTER})
    yield root
    stop_fleet(root)


def test_file_routes_lifespan_from_the_zygote_and_a_startup_that_hangs(routes_project):
    root = routes_project
    with_load_timeout(root, 3)
    first = vega_json("deploy", str(root))
    assert first["status"] == "live", first["problems"]
    # Forked by the region's own zygote from now on, not cloned from the loader's template.
    LocalFleet(load_config(root))._stop_loader()
    (root / "lib/version.py").write_text('VERSION = "v2"\n')
    second = vega_json("deploy", str(root))
    assert second["status"] == "live", second["problems"]
    url = second["regions"][0]["url"]
    answer = json.loads(get(url, "/api/counter")[2])
    assert answer["opened_in"] == answer["pid"]
    # api/raw.py, a bare ASGI callable that does not speak lifespan, still serves.
    assert get(url, "/api/raw")[2] == b"asgi /api/raw"

    (root / "api/counter.py").write_text(HANGS)
    proc = vega("deploy", str(root), "--json", timeout=90)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    problem = json.loads(proc.stdout)["problems"][0]
    assert problem.split("\n")[0] == (
        "prefetch:fra: route /api/counter (api/counter.py) did not load within 3 s "
        "while starting it"
    ), problem
    assert json.loads(get(url, "/api/counter")[2])["opened_in"] == answer["pid"]
