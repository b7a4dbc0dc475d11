"""A route's bundle holds exactly its compiled closure and runs with zipimport.

Third-party packages (Starlette, Flask) are not in route bundles, they come
from the dependency layer; here they come from the test's own site-packages.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from wsgiref.util import setup_testing_defaults

import pytest

from vega_dag import _core
from vega_dag.bundle.routes import BUNDLE_FORMAT, archive_name
from vega_dag.compile.bytecode import compile_source
from vega_dag.graph.modules import Module
from vega_dag.pipeline import build
from vega_dag.store.objects import ObjectStore
from vega_dag.store.state import load_state

FILES = {
    "rtlib/__init__.py": "from rtlib.version import VERSION\n",
    "rtlib/version.py": "VERSION = '2.5'\n",
    "rtlib/fmt.py": (
        "from . import version\n\n\n"
        "def shout(text):\n    return f'{text.upper()}! v{version.VERSION}'\n"
    ),
    "rtlib/unused.py": "X = 1\n",
    "rtplugins/greet.py": "def greet(name):\n    return 'hello ' + name\n",
    "api/hello.py": (
        "from rtlib.fmt import shout\nfrom rtplugins import greet\n\n\n"
        "def handler(request):\n    return {'text': shout(greet.greet(request['name']))}\n"
    ),
    "api/orders/[id].py": (
        "import rtlib\n\n\ndef handler(request):\n"
        "    return {'order': request['path_params']['id'], 'v': rtlib.VERSION}\n"
    ),
    "api/asgi_raw.py": (
        "import json\n\nfrom rtlib.fmt import shout\n\n\n"
        "async def app(scope, receive, send):\n"
        "    assert scope['type'] == 'http'\n"
        "    await receive()\n"
        "    body = json.dumps({'path': scope['path'], 'text': shout('asgi')}).encode()\n"
        "    await send({'type': 'http.response.start', 'status': 201,\n"
        "                'headers': [(b'content-type', b'application/json')]})\n"
        "    await send({'type': 'http.response.body', 'body': body})\n"
    ),
    "api/wsgi_raw.py": (
        "from rtlib.fmt import shout\n\n\n"
        "def app(environ, start_response):\n"
        "    start_response('202 Accepted', [('Content-Type', 'text/plain')])\n"
        "    return [shout(environ['PATH_INFO']).encode()]\n"
    ),
    "api/star.py": (
        "from starlette.applications import Starlette\n"
        "from starlette.responses import JSONResponse\n"
        "from starlette.routing import Route\n\n"
        "import rtlib\n\n\n"
        "async def show(request):\n"
        "    return JSONResponse({'framework': 'starlette', 'v': rtlib.VERSION})\n\n\n"
        "app = Starlette(routes=[Route('/api/star', show)])\n"
    ),
    "api/flaskapp.py": (
        "from flask import Flask, jsonify\n\n"
        "from rtlib.fmt import shout\n\n"
        "app = Flask(__name__)\n\n\n"
        "@app.get('/api/flaskapp')\n"
        "def show():\n"
        "    return jsonify(framework='flask', text=shout('flask'))\n"
    ),
}

CLOSURES = {
    "/api/hello": ["api.hello", "rtlib", "rtlib.fmt", "rtlib.version", "rtplugins.greet"],
    "/api/orders/{id}": ["api.orders.[id]", "rtlib", "rtlib.version"],
    "/api/asgi_raw": ["api.asgi_raw", "rtlib", "rtlib.fmt", "rtlib.version"],
    "/api/wsgi_raw": ["api.wsgi_raw", "rtlib", "rtlib.fmt", "rtlib.version"],
    "/api/star": ["api.star", "rtlib", "rtlib.version"],
    "/api/flaskapp": ["api.flaskapp", "rtlib", "rtlib.fmt", "rtlib.version"],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("runtime") / "proj"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    result = build(root)
    return root, result.routes


def bundle_bytes(built, pattern: str) -> bytes:
    root, routes = built
    return ObjectStore(root / ".vega").get(routes[pattern])


@contextmanager
def imported(data: bytes, module: str, tmp_path: Path) -> Iterator[ModuleType]:
    """Import ``module`` from the bundle ``data``, then forget everything it loaded."""
    zpath = str(tmp_path / "bundle.zip")
    Path(zpath).write_bytes(data)
    before = set(sys.modules)
    sys.path.insert(0, zpath)
    importlib.invalidate_caches()
    try:
        mod = importlib.import_module(module)
        assert type(mod.__loader__).__name__ == "zipimporter"
        assert mod.__file__.startswith(zpath)
        yield mod
    finally:
        sys.path.remove(zpath)
        sys.path_importer_cache.pop(zpath, None)
        # Decide first, delete after: a namespace package's __path__ looks its
        # parent up in sys.modules.
        loaded = []
        for name in set(sys.modules) - before:
            mod_file = getattr(sys.modules[name], "__file__", None) or ""
            mod_path = list(getattr(sys.modules[name], "__path__", []) or [])
            if mod_file.startswith(zpath) or any(str(p).startswith(zpath) for p in mod_path):
                loaded.append(name)
        for name in loaded:
            del sys.modules[name]
        importlib.invalidate_caches()


def http_scope(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }


def call_asgi(app, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict] = []
    requested = False

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(http_scope(path), receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start.get("headers", [])), body


def call_wsgi(app, path: str) -> tuple[str, dict[str, str], bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO(b"")}
    setup_testing_defaults(environ)
    started: list = []

    def start_response(status, headers, exc_info=None):
        started.append((status, headers))

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    status, headers = started[0]
    return status, dict(headers), body


# -- contents -------------------------------------------------------------------


def test_bundle_holds_route_json_and_exactly_the_closure(built):
    root, routes = built
    state = load_state(root / ".vega/state/build.msgpack")
    assert state.closures == CLOSURES
    assert sorted(routes) == sorted(CLOSURES)
    for pattern, closure in CLOSURES.items():
        data = bundle_bytes(built, pattern)
        files = _core.read_archive(data)
        members = {}
        for name in closure:
            path = state.modules[name].path
            members[archive_name(Module(name, path, path.endswith("/__init__.py")))] = path
        assert set(files) == {"__vega__/route.json", *members}, pattern
        route_module = closure[0]
        assert json.loads(files["__vega__/route.json"]) == {
            "entry": "handler" if pattern in ("/api/hello", "/api/orders/{id}") else "app",
            "file": state.modules[route_module].path,
            "format": BUNDLE_FORMAT,
            "module": route_module,
            "pattern": pattern,
        }
        for name, path in members.items():
            assert files[name] == compile_source((root / path).read_bytes(), path), name
    names = sorted(_core.read_archive(bundle_bytes(built, "/api/hello")))
    assert names == [
        "__vega__/route.json",
        "api/hello.pyc",
        "rtlib/__init__.pyc",
        "rtlib/fmt.pyc",
        "rtlib/version.pyc",
        "rtplugins/greet.pyc",
    ]
    # Directory entries let zipimport find the namespace packages.
    dirs = {e.name for e in _core.list_archive(bundle_bytes(built, "/api/hello")) if e.is_dir}
    assert {"api/", "rtplugins/", "rtlib/"} <= dirs


# -- running --------------------------------------------------------------------


def test_handler_route(built, tmp_path):
    with imported(bundle_bytes(built, "/api/hello"), "api.hello", tmp_path) as mod:
        assert mod.handler({"name": "ada"}) == {"text": "HELLO ADA! v2.5"}
        assert sys.modules["rtlib.fmt"].__file__.startswith(str(tmp_path))
        assert "rtlib.unused" not in sys.modules
    assert "api.hello" not in sys.modules and "rtlib" not in sys.modules


def test_dynamic_segment_route(built, tmp_path):
    with imported(bundle_bytes(built, "/api/orders/{id}"), "api.orders.[id]", tmp_path) as mod:
        assert mod.handler({"path_params": {"id": "1001"}}) == {"order": "1001", "v": "2.5"}


def test_bundle_misses_modules_outside_the_closure(built, tmp_path):
    data = bundle_bytes(built, "/api/orders/{id}")
    with imported(data, "api.orders.[id]", tmp_path), pytest.raises(ModuleNotFoundError):
        importlib.import_module("rtlib.fmt")


def test_raw_asgi_app(built, tmp_path):
    with imported(bundle_bytes(built, "/api/asgi_raw"), "api.asgi_raw", tmp_path) as mod:
        status, headers, body = call_asgi(mod.app, "/api/asgi_raw")
    assert status == 201
    assert headers == {b"content-type": b"application/json"}
    assert json.loads(body) == {"path": "/api/asgi_raw", "text": "ASGI! v2.5"}


def test_raw_wsgi_app(built, tmp_path):
    with imported(bundle_bytes(built, "/api/wsgi_raw"), "api.wsgi_raw", tmp_path) as mod:
        status, headers, body = call_wsgi(mod.app, "/api/wsgi_raw")
    assert status == "202 Accepted"
    assert headers == {"Content-Type": "text/plain"}
    assert body == b"/API/WSGI_RAW! v2.5"


def test_starlette_app(built, tmp_path):
    pytest.importorskip("starlette")
    with imported(bundle_bytes(built, "/api/star"), "api.star", tmp_path) as mod:
        status, headers, body = call_asgi(mod.app, "/api/star")
        missing, _, _ = call_asgi(mod.app, "/api/elsewhere")
    assert status == 200
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"framework": "starlette", "v": "2.5"}
    assert missing == 404


def test_flask_app(built, tmp_path):
    pytest.importorskip("flask")
    with imported(bundle_bytes(built, "/api/flaskapp"), "api.flaskapp", tmp_path) as mod:
        status, headers, body = call_wsgi(mod.app, "/api/flaskapp")
        missing, _, _ = call_wsgi(mod.app, "/nope")
    assert status == "200 OK"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"framework": "flask", "text": "FLASK! v2.5"}
    assert missing.startswith("404")
