"""A drift fixture: a small project, and compile-step plugins that leak nondeterminism.

The plugins are a real distribution (a ``.dist-info`` with an entry point in
the ``vega_dag`` group) on PYTHONPATH, so ``vega-dag`` and its isolated drift
builds discover them exactly as they discover installed plugins.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = """
import os
import random
import time

from vega_dag.plugins import hookimpl

WORDS = [f"word{i}" for i in range(24)]


class Step:
    version = "1"

    def __init__(self, name, extra):
        self.name = name
        self.extra = extra

    def transform(self, path, source):
        # Only modules that ask for it: the report must name exactly those.
        if b"# nondet" not in source:
            return source
        return source + b"\\n" + self.extra().encode() + b"\\n"


STEPS = {
    "clean": lambda: "MARKED = True",
    "timestamp": lambda: f"BUILT_AT = {time.time()!r}",
    "random": lambda: f"SALT = {random.random()!r}",
    "set-order": lambda: f"ORDER = {list(set(WORDS))!r}",
    "env-leak": lambda: f"FLAVOUR = {os.environ.get('NONDET_FLAVOUR')!r}",
    "cwd": lambda: f"WHERE = {os.getcwd()!r}",
}


@hookimpl
def vega_dag_compile_steps(config):
    return [Step(name, extra) for name, extra in STEPS.items()]
"""


@pytest.fixture(scope="session")
def nondet_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory to put on PYTHONPATH that installs the ``nondet_steps`` plugin."""
    site = tmp_path_factory.mktemp("nondet-site")
    (site / "nondet_steps.py").write_text(PLUGIN)
    info = site / "nondet_steps-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nondet-steps\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[vega_dag]\nnondet = nondet_steps\n")
    return site


def drift_project(root: Path, step: str | None, extra_toml: str = "") -> Path:
    """lib.clock (marked) is imported by /api/time only; /api/hello imports lib.util."""
    steps = f'compile_steps = ["{step}"]\n' if step else ""
    files = {
        "pyproject.toml": f'[project]\nname = "p"\n[tool.vega]\n{steps}{extra_toml}',
        "lib/__init__.py": "",
        "lib/clock.py": "# nondet\nimport time\n\n\ndef now():\n    return time.time()\n",
        "lib/util.py": "def greet(name):\n    return f'hello {name}'\n",
        "api/time.py": "from lib import clock\n\n\ndef handler(request):\n"
        "    return {'now': clock.now()}\n",
        "api/hello.py": "from lib.util import greet\n\n\ndef handler(request):\n"
        "    return {'msg': greet('you')}\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def vega(
    *args: str, cwd: Path, site: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a fresh process (plugins on PYTHONPATH when ``site``)."""
    full = dict(os.environ)
    if site is not None:
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), full.get("PYTHONPATH")]))
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "vega_dag", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        check=False,
    )


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )
