"""A deployment that does not load fails its prefetch fast, naming the route and what happened.

A route that hangs at import, exits, crashes the interpreter or raises: the
deploy fails within ``[tool.vega.health] load_timeout_s`` (3 s here), naming
the route pattern, its file, the exit status or signal and the last lines of
the traceback; no pointer moves and every region keeps serving what it
served. Both ways a worker loads are covered: cloned from the host loader's
template, and forked by the region's own zygote (the loader stopped).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.rollout.helpers import served, vega, vega_json
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet
from vega_dag.rollout.pointers import PointerStore

HANDLER = "def handler(request):\n    return 'never'\n\n\n"  # 4 lines
CASES = {
    "hang": (
        "api/hang.py",
        HANDLER + "import time\n\nwhile True:\n    time.sleep(0.01)\n",
        [
            "route /api/hang (api/hang.py) did not load within 3 s while importing it",
            '    File "api/hang.py", line 8, in <module>',
        ],
    ),
    "spin": (
        "api/spin.py",
        HANDLER + "def spin():\n    while True:\n        pass\n\n\nspin()\n",
        [
            "route /api/spin (api/spin.py) did not load within 3 s while importing it",
            '    File "api/spin.py", line 10, in <module>',
        ],
    ),
    "exit": (
        "api/quit.py",
        HANDLER + "import os\n\nos._exit(3)\n",
        [
            "route /api/quit (api/quit.py) did not load: the worker exited with status 3 "
            "while importing it"
        ],
    ),
    "crash": (
        "api/crash.py",
        HANDLER + "import ctypes\n\n\ndef read():\n    return ctypes.string_at(0)\n\n\nread()\n",
        [
            "route /api/crash (api/crash.py) did not load: the worker was killed by SIGSEGV "
            "while importing it",
            '    File "api/crash.py", line 9, in read',
        ],
    ),
    "raise": (
        "api/boom.py",
        HANDLER + "from lib.db import connect\n\nconnect()\n",
        [
            "route /api/boom (api/boom.py) did not load: RuntimeError: no database at db:5432",
            '    File "api/boom.py", line 7, in <module>',
            '    File "lib/db.py", line 2, in connect',
        ],
    ),
    "warm": (
        "api/busy.py",
        "async def handler(request):\n    while True: pass  # noqa: E701\n",
        [
            "route /api/busy (api/busy.py) did not load within 3 s while warming it",
            '    File "api/busy.py", line 2, in handler',
        ],
    ),
}


def with_load_timeout(root: Path, seconds: float) -> None:
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    text = text.replace("min_samples = 3\n", f"min_samples = 3\nload_timeout_s = {seconds}\n")
    # The build's own import check would catch these routes first
    # (tests/pipeline/test_import_check.py): this tests the region's.
    pyproject.write_text(text + "\n[tool.vega.import_check]\nenabled = false\n")


def pointers(root: Path) -> dict[str, str | None]:
    store = PointerStore(LocalFleet(load_config(root)).db_path)
    return {name: p.deployment for name, p in store.pointers().items()}


@pytest.mark.parametrize("loader", ["loader", "zygote"])
def test_a_deployment_that_does_not_load_fails_fast_and_moves_nothing(project, loader):
    with_load_timeout(project, 3)
    (project / "lib/db.py").write_text(
        "def connect():\n    raise RuntimeError('no database at db:5432')\n"
    )
    first = vega_json("deploy", str(project))["deployment"]
    fleet = LocalFleet(load_config(project))
    if loader == "zygote":
        fleet._stop_loader()  # each region loads with its own zygote
    before = pointers(project)

    for name, (path, source, expected) in CASES.items():
        (project / path).write_text(source)
        # The process limit guards against a hang; no duration is asserted.
        proc = vega("deploy", str(project), "--json", timeout=90)
        (project / path).unlink()
        assert proc.returncode == 1, (name, proc.stdout, proc.stderr)
        out = json.loads(proc.stdout)
        assert out["status"] == "failed", name
        problem = out["problems"][0]
        assert problem.startswith("prefetch:"), (name, problem)
        lines = problem.split("\n")
        assert lines[0].split(": ", 1)[1] == expected[0], (name, problem)
        for line in expected[1:]:
            assert line in lines, (name, problem)
        assert "blake3:" not in problem and "Traceback" not in problem, problem
        assert {r["outcome"] for r in out["regions"]} <= {"prefetch-failed", "pending"}, name
        # Nothing promoted: every region serves what it served.
        assert pointers(project) == before, name
        assert set(served(project).values()) == {first}, name

    # The loads' trails are gone, and the fleet deploys again.
    assert not [p.name for p in (fleet.dir / "run").glob("*.loading")]
    assert not [p.name for p in (fleet.dir / "run").glob("*.trace")]
    (project / "lib/version.py").write_text('VERSION = "v2"\n')
    assert vega_json("deploy", str(project))["status"] == "live"
