"""A FastAPI application whose framework comes from the registry, through the layer.

``notes`` is laid out as FastAPI's "bigger applications" guide lays one out:
``notes/main.py`` making the app (found without configuration: a package's
``main.py`` defining ``app``), routers in ``notes/routers/``, dependencies in
``notes/deps.py`` (a store and a token header), Jinja templates and static
files in the package. FastAPI, Starlette, Pydantic (with its compiled
``pydantic_core``), Jinja and their dependencies are pinned by the project's
``pylock.toml`` (PEP 751, as ``pip lock`` writes it) and so installed into the
deployment's layer from the registry's wheels, not taken from the
environment vega-dag runs in; the region's answers say which files served.

Through a region, on kept-alive connections: a redirect, dependencies that
answer 401 and 422, a template, a static file, GZipMiddleware's compressed
page, and a server-sent-events feed whose events arrive one by one: the
third is only made after the client, having read the first two, posts a note
on another connection.
"""

from __future__ import annotations

import gzip
import http.client
import json
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.apps.projects import ROLLOUT, write
from tests.rollout.helpers import stop_fleet, vega_json

PINS = {
    "annotated-doc": "0.0.7",
    "annotated-types": "0.8.0",
    "anyio": "4.16.0",
    "fastapi": "0.165.0",
    "idna": "3.20",
    "jinja2": "3.1.6",
    "markupsafe": "3.0.4",
    "opentelemetry-api": "1.45.2",
    "pydantic": "2.14.4",
    "pydantic-core": "2.50.5",
    "starlette": "1.10.0",
    # The region's runtime imports typing_extensions itself before any
    # deployment: a module in sys.modules cannot be replaced by the layer's,
    # so the lock pins the runtime's own version (regions/worker.py
    # layer_conflicts fails the load on any other).
    "typing-extensions": version("typing-extensions"),
    "typing-inspection": "0.4.5",
}

PYLOCK = 'lock-version = "1.0"\ncreated-by = "pip"\nrequires-python = ">=3.11"\n\n' + "\n".join(
    f'[[packages]]\nname = "{name}"\nversion = "{pin}"\n' for name, pin in PINS.items()
)

NOTES = {
    "pyproject.toml": (
        '[project]\nname = "notes"\nversion = "0.4.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["fastapi>=0.115", "jinja2>=3.1"]\n\n[tool.vega]\n'
        + ROLLOUT
        + '\n[tool.vega.health.probes]\n"/notes/{note_id}" = ["/notes/1"]\n'
        # The feed waits for new notes: its probe asks for the two there are
        # (probed as is, it would time out the gate).
        + '"/notes/feed" = ["/notes/feed?limit=2"]\n'
    ),
    "pylock.toml": PYLOCK,
    "notes/__init__.py": "",
    "notes/main.py": (
        "from pathlib import Path\n\n"
        "from fastapi import FastAPI\n"
        "from fastapi.middleware.gzip import GZipMiddleware\n"
        "from fastapi.responses import RedirectResponse\n"
        "from fastapi.staticfiles import StaticFiles\n\n"
        "from notes.routers import meta, notes\n\n"
        'app = FastAPI(title="Notes", version="0.4.0")\n'
        "app.add_middleware(GZipMiddleware, minimum_size=500)\n"
        'app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), '
        'name="static")\n'
        "app.include_router(notes.router)\n"
        "app.include_router(meta.router)\n\n\n"
        '@app.get("/", include_in_schema=False)\n'
        "async def home() -> RedirectResponse:\n"
        '    return RedirectResponse(app.url_path_for("list_notes"))\n'
    ),
    "notes/deps.py": (
        "import asyncio\nfrom typing import Annotated\n\n"
        "from fastapi import Depends, Header, HTTPException\n\n\n"
        "class Store:\n"
        "    def __init__(self) -> None:\n"
        '        self.notes = [{"id": 1, "text": "buy <milk>"}, {"id": 2, "text": "call Ada"}]\n'
        "        self.changed = asyncio.Condition()\n\n"
        "    async def add(self, text: str) -> dict:\n"
        "        async with self.changed:\n"
        '            note = {"id": len(self.notes) + 1, "text": text}\n'
        "            self.notes.append(note)\n"
        "            self.changed.notify_all()\n"
        "        return note\n\n\n"
        "_store = Store()\n\n\n"
        "def get_store() -> Store:\n"
        "    return _store\n\n\n"
        "def current_user(x_token: Annotated[str | None, Header()] = None) -> str:\n"
        '    if x_token != "s3cret":\n'
        '        raise HTTPException(status_code=401, detail="bad token")\n'
        '    return "ada"\n\n\n'
        "StoreDep = Annotated[Store, Depends(get_store)]\n"
        "UserDep = Annotated[str, Depends(current_user)]\n"
    ),
    "notes/routers/__init__.py": "",
    "notes/routers/notes.py": (
        "import json\nfrom pathlib import Path\n\n"
        "from fastapi import APIRouter, HTTPException, Request\n"
        "from fastapi.responses import HTMLResponse, StreamingResponse\n"
        "from fastapi.templating import Jinja2Templates\n"
        "from pydantic import BaseModel, Field\n\n"
        "from notes.deps import StoreDep, UserDep\n\n"
        'router = APIRouter(prefix="/notes", tags=["notes"])\n'
        'templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")\n\n\n'
        "class NoteIn(BaseModel):\n"
        "    text: str = Field(min_length=1, max_length=200)\n\n\n"
        '@router.get("/", response_class=HTMLResponse)\n'
        "async def list_notes(request: Request, store: StoreDep):\n"
        "    return templates.TemplateResponse(\n"
        '        request, "notes.html", {"notes": store.notes},\n'
        '        headers={"X-Notes": str(len(store.notes))},\n'
        "    )\n\n\n"
        '@router.get("/feed")\n'
        "async def feed(store: StoreDep, limit: int = 10) -> StreamingResponse:\n"
        "    async def events():\n"
        "        sent = 0\n"
        "        while sent < limit:\n"
        "            async with store.changed:\n"
        "                await store.changed.wait_for(lambda: len(store.notes) > sent)\n"
        "                fresh = store.notes[sent:limit]\n"
        "            for note in fresh:\n"
        '                yield f"data: {json.dumps(note)}\\n\\n"\n'
        "            sent += len(fresh)\n\n"
        '    return StreamingResponse(events(), media_type="text/event-stream")\n\n\n'
        '@router.get("/{note_id}")\n'
        "async def get_note(note_id: int, store: StoreDep) -> dict:\n"
        "    for note in store.notes:\n"
        '        if note["id"] == note_id:\n'
        "            return note\n"
        '    raise HTTPException(status_code=404, detail=f"no note {note_id}")\n\n\n'
        '@router.post("/", status_code=201)\n'
        "async def add_note(note: NoteIn, store: StoreDep, user: UserDep) -> dict:\n"
        '    return {**(await store.add(note.text)), "by": user}\n'
    ),
    "notes/routers/meta.py": (
        "import sys\nfrom importlib.metadata import version\n\n"
        "from fastapi import APIRouter\n\n"
        "router = APIRouter()\n\n\n"
        '@router.get("/healthz")\n'
        "async def healthz() -> dict:\n"
        '    return {"ok": True}\n\n\n'
        '@router.get("/versions")\n'
        "async def versions() -> dict:\n"
        "    return {\n"
        "        name: [sys.modules[module].__file__, version(name)]\n"
        "        for name, module in [\n"
        '            ("fastapi", "fastapi"),\n'
        '            ("starlette", "starlette"),\n'
        '            ("pydantic-core", "pydantic_core._pydantic_core"),\n'
        "        ]\n"
        "    }\n"
    ),
    "notes/templates/base.html": (
        "<!doctype html>\n<html>\n<head>\n  <title>{% block title %}Notes{% endblock %}</title>\n"
        "  <link rel=\"stylesheet\" href=\"{{ url_for('static', path='notes.css') }}\">\n"
        "</head>\n<body>\n  <h1>Notes</h1>\n  {% block content %}{% endblock %}\n"
        # Long enough for GZipMiddleware's minimum_size.
        "  <footer>"
        + "Notes keeps what you would otherwise forget, in order. " * 8
        + "</footer>\n</body>\n</html>\n"
    ),
    "notes/templates/notes.html": (
        '{% extends "base.html" %}\n'
        "{% block content %}<ol>\n"
        "{% for note in notes %}<li>{{ note.text }}</li>\n{% endfor %}"
        "</ol>{% endblock %}\n"
    ),
    "notes/static/notes.css": (
        "body { font: 16px/1.5 system-ui, sans-serif; }\nol { padding: 0; }\n"
    ),
}


class Client:
    """One kept-alive connection to a region."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)

    def send(self, method: str, path: str, body: object = None, headers: dict | None = None):
        data = None if body is None else json.dumps(body)
        headers = {**({"Content-Type": "application/json"} if data else {}), **(headers or {})}
        self.conn.request(method, path, body=data, headers=headers)
        return self.conn.getresponse()

    def get(self, path: str, headers: dict[str, str] | None = None):
        resp = self.send("GET", path, headers=headers)
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


@pytest.fixture
def notes(tmp_path, offline_wheels):
    root = write(tmp_path / "notes", NOTES)
    offline_wheels(root / "pylock.toml")
    yield root
    stop_fleet(root)


def test_fastapi_app_from_the_registry_served_through_a_region(notes):
    out = vega_json("deploy", str(notes))
    assert out["status"] == "live", out["problems"]
    assert {
        "GET,POST /notes/ (notes.routers.notes)",
        "GET /notes/feed (notes.routers.notes)",
        "GET /healthz (notes.routers.meta)",
        "GET /openapi.json (fastapi.applications)",
    } <= set(out["changed_app_routes"])
    # The feed was probed by its configured probe, and ended.
    (gate,) = out["gates"]
    feed = next(r for r in gate["routes"] if r["route"] == "/notes/feed")
    assert feed["statuses"] == {"200": feed["samples"]}
    url = out["regions"][0]["url"]
    client = Client(url)

    # FastAPI, Starlette and pydantic_core's extension module ran from the layer.
    status, _, body = client.get("/versions")
    assert status == 200, body
    got = json.loads(body)
    layers = (notes / ".vega").resolve()
    for name in ["fastapi", "starlette", "pydantic-core"]:
        where, have = got[name]
        assert have == PINS[name]
        assert "/layers/" in where and Path(where).resolve().is_relative_to(layers), where
    assert got["pydantic-core"][0].endswith(".so")

    status, headers, _ = client.get("/")
    assert (status, headers["location"]) == (307, "/notes/")
    status, headers, page = client.get("/notes/")
    assert status == 200, page
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["x-notes"] == "2"
    assert b"<li>buy &lt;milk&gt;</li>" in page  # Jinja2Templates autoescapes
    assert b'href="http://' in page and b'/static/notes.css"' in page
    status, headers, css = client.get("/static/notes.css")
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert css == NOTES["notes/static/notes.css"].encode()
    assert client.get("/static/notes.css", {"If-None-Match": headers["etag"]})[0] == 304

    status, _, body = client.get("/notes/9")
    assert (status, json.loads(body)) == (404, {"detail": "no note 9"})
    status, _, body = client.get("/notes/x")
    assert status == 422 and json.loads(body)["detail"][0]["loc"] == ["path", "note_id"]

    # GZipMiddleware: compressed when asked for, and it decodes to the same page.
    status, headers, squeezed = client.get("/notes/", {"Accept-Encoding": "gzip"})
    assert (status, headers["content-encoding"]) == (200, "gzip")
    assert "accept-encoding" in headers["vary"].lower()
    assert gzip.decompress(squeezed) == page
    assert len(squeezed) < len(page)

    # The feed streams: two events, then the third only once the client,
    # having read them, posts a note on another connection. A buffered
    # response would hold the first two back and this read would time out.
    feed = Client(url).send("GET", "/notes/feed?limit=3")
    assert feed.status == 200 and feed.getheader("transfer-encoding") == "chunked"
    assert feed.getheader("content-type").startswith("text/event-stream")
    assert feed.getheader("content-encoding") is None  # GZipMiddleware leaves SSE alone
    first = [feed.read1(65536), feed.read1(65536)]
    assert first == [
        b'data: {"id": 1, "text": "buy <milk>"}\n\n',
        b'data: {"id": 2, "text": "call Ada"}\n\n',
    ]
    denied = client.send("POST", "/notes/", {"text": "no token"})
    assert (denied.status, json.loads(denied.read())) == (401, {"detail": "bad token"})
    invalid = client.send("POST", "/notes/", {"text": ""}, {"X-Token": "s3cret"})
    assert invalid.status == 422
    invalid.read()
    posted = client.send("POST", "/notes/", {"text": "ship it"}, {"X-Token": "s3cret"})
    assert (posted.status, json.loads(posted.read())) == (
        201,
        {"id": 3, "text": "ship it", "by": "ada"},
    )
    assert feed.read() == b'data: {"id": 3, "text": "ship it"}\n\n'
