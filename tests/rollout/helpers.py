"""A small example project and a fleet that is always stopped, even on failure."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import vega_dag
from vega_dag.config import load_config
from vega_dag.regions.fleet import LocalFleet, request

PYPROJECT = """
[tool.vega]
env = {{ GREETING = "{greeting}" }}

[tool.vega.rollout]
canary = "fra"
waves = [["fra"], ["*"]]
regions = {regions}

[tool.vega.health]
p99_ms = {p99_ms}
min_samples = 3
timeout_s = {timeout_s}

[tool.vega.health.probes]
"/api/items/{{id}}" = ["/api/items/7"]
"""

FILES = {
    "lib/__init__.py": "",
    "lib/version.py": 'VERSION = "v1"\n',
    "api/index.py": (
        "import os\n"
        "from lib.version import VERSION\n\n"
        "def handler(request):\n"
        '    return {"version": VERSION, "greeting": os.environ.get("GREETING")}\n'
    ),
    "api/items/[id].py": (
        "def handler(request):\n"
        '    return {"id": request.path_params["id"], "q": request.query}, 200, {"x-item": "1"}\n'
    ),
    "api/raw.py": (
        "async def app(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 200,\n"
        "                'headers': [(b'content-type', b'text/plain')]})\n"
        "    body = b'asgi ' + scope['path'].encode()\n"
        "    await send({'type': 'http.response.body', 'body': body})\n"
    ),
    "api/legacy.py": (
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'wsgi ', environ['PATH_INFO'].encode()]\n"
    ),
}


def write_project(
    root: Path,
    *,
    regions: int = 3,
    p99_ms: float = 5000,
    timeout_s: float = 2.0,
    greeting: str = "hi",
    extra: dict[str, str] | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        PYPROJECT.format(regions=regions, p99_ms=p99_ms, timeout_s=timeout_s, greeting=greeting)
    )
    for rel, text in {**FILES, **(extra or {})}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def cli_env() -> dict[str, str]:
    here = str(Path(vega_dag.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": here}
    env.pop("VEGA_DAG_TEST_KILL_AT", None)
    return env


def vega(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """Run the CLI in a fresh process (as a user would)."""
    return subprocess.run(
        [sys.executable, "-c", "from vega_dag.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env={**cli_env(), **(env or {})},
        timeout=timeout,
    )


def vega_json(*args: str) -> dict:
    proc = vega(*args, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def stop_fleet(root: Path) -> None:
    fleet = LocalFleet(load_config(root))
    regions = fleet.regions()
    fleet.down()
    for info in regions:  # belt and braces: nothing of a test outlives it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(info.pgid, signal.SIGKILL)


def get(url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    status, headers, body, _ = request(url + path, timeout=5.0)
    return status, headers, body


def served(root: Path) -> dict[str, str | None]:
    """Region → the deployment named by its answer to GET /api."""
    fleet = LocalFleet(load_config(root))
    return {r.name: get(r.url, "/api")[1].get("x-vega-deployment") for r in fleet.regions()}
