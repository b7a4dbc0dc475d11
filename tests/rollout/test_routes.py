"""Catch-all routes, mounted applications and rewrites, served by real regions from bundles.

The Flask and Starlette applications are unchanged ones: they route on their
own paths ("/users/<id>") and build their URLs with ``url_for``; the region
mounts them at the path before the catch-all.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.rollout.helpers import get, stop_fleet, vega_json, write_project

FLASK_APP = """\
from flask import Flask, jsonify, redirect, request, url_for

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(where="index", path=request.path, root=request.script_root)


@app.get("/users/<int:user_id>")
def user(user_id):
    return jsonify(
        user=user_id, path=request.path, root=request.script_root,
        url=url_for("user", user_id=user_id),
    )


@app.get("/old")
def old():
    return redirect(url_for("index"))
"""

STARLETTE_APP = """\
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def index(request):
    return JSONResponse({"where": "index", "root": request.scope["root_path"]})


async def item(request):
    return JSONResponse({
        "item": request.path_params["item_id"],
        "params": request.path_params,
        "path": request.url.path,
        "url": str(request.url_for("item", item_id=request.path_params["item_id"])),
    })


app = Starlette(routes=[Route("/", index), Route("/items/{item_id}", item, name="item")])
"""

FILES = {
    "api/docs/[...slug].py": (
        "def handler(request):\n"
        "    return {'slug': request.path_params['slug'], 'path': request.path}\n"
    ),
    "api/docs/intro.py": "def handler(request):\n    return 'intro'\n",
    "api/shop/[[...path]].py": (
        "def handler(request):\n    return {'path': request.path_params['path']}\n"
    ),
    "api/flask/[[...rest]].py": FLASK_APP,
    "api/star/[...rest].py": STARLETTE_APP,
}

REWRITES = """rewrites = [
  { source = "/users/{id}", destination = "/api/flask/users/{id}" },
  { source = "/docs/{rest:path}", destination = "/api/docs/{rest}" },
]
"""


@pytest.fixture
def routed(tmp_path):
    root = write_project(tmp_path / "proj", extra=FILES)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace("[tool.vega]\n", "[tool.vega]\n" + REWRITES, 1))
    yield root
    stop_fleet(root)


def get_json(url: str, path: str) -> tuple[int, dict]:
    status, _, body = get(url, path)
    return status, json.loads(body)


def test_catch_alls_mounts_and_rewrites_through_regions(routed):
    out = vega_json("deploy", str(routed))
    assert out["status"] == "live", out["problems"]
    for name in ("api", "lib"):  # served from the verified bundles alone
        shutil.rmtree(routed / name)
    url = out["regions"][0]["url"]

    # [...slug]: one or more segments, the parameter is the rest of the path;
    # a static route at the same place wins.
    assert get_json(url, "/api/docs/guide/install/linux") == (
        200,
        {"slug": "guide/install/linux", "path": "/api/docs/guide/install/linux"},
    )
    assert get(url, "/api/docs/intro")[2] == b"intro"
    assert get(url, "/api/docs")[0] == 404
    # [[...path]]: zero or more.
    assert get_json(url, "/api/shop") == (200, {"path": ""})
    assert get_json(url, "/api/shop/mugs/blue") == (200, {"path": "mugs/blue"})

    # An unchanged Flask app, mounted at /api/flask (WSGI SCRIPT_NAME/PATH_INFO);
    # [[...rest]] reaches its root too, where Flask redirects to the slash.
    assert get_json(url, "/api/flask/users/7") == (
        200,
        {"user": 7, "path": "/users/7", "root": "/api/flask", "url": "/api/flask/users/7"},
    )
    assert get_json(url, "/api/flask/") == (
        200,
        {"where": "index", "path": "/", "root": "/api/flask"},
    )
    status, headers, _ = get(url, "/api/flask/old")
    assert status == 302 and headers["location"] == "/api/flask/"
    status, headers, _ = get(url, "/api/flask")
    assert status == 308 and headers["location"].endswith("/api/flask/")
    assert get(url, "/api/flask/nothing")[0] == 404  # Flask's own 404

    # An unchanged Starlette app, mounted at /api/star (ASGI root_path).
    status, body = get_json(url, "/api/star/items/9")
    assert status == 200
    assert body["item"] == "9" and body["params"] == {"item_id": "9"}
    assert body["path"] == "/api/star/items/9"
    assert body["url"].endswith("/api/star/items/9")
    status, headers, _ = get(url, "/api/star/nothing")
    assert status == 404 and headers["content-type"].startswith("text/plain")  # Starlette's
    assert get(url, "/api/star/")[0] == 404  # [...rest] is one or more segments: no root

    # Rewrites, before routing: served as their destination.
    assert get_json(url, "/users/3")[1]["url"] == "/api/flask/users/3"
    assert get_json(url, "/docs/a/b") == (200, {"slug": "a/b", "path": "/api/docs/a/b"})
    assert get(url, "/nowhere")[0] == 404

    # The gate probed every route, the catch-alls with their parameters as `1`.
    probed = {r["route"] for g in out["gates"] for r in g["routes"]}
    assert {"/api/docs/{slug:path}", "/api/shop/{path:path?}", "/api/star/{rest:path}"} <= probed
