"""One-app projects through real regions: a FastAPI app with routers, a Flask
app with blueprints mounted at /v1, a small Django project.

Each is built and deployed by the CLI, served from its bundle alone (the
source tree is removed), and changed once: the deploy names the discovered
routes whose handler's import closure holds the changed module, and the gate
probes those of them it can (GET routes without parameters, and configured
probes).
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.apps.projects import DJANGO, FASTAPI, FLASK, write
from tests.rollout.helpers import get, stop_fleet, vega, vega_json


@pytest.fixture
def app_project(tmp_path, request):
    root = write(tmp_path / "proj", request.param)
    yield root
    stop_fleet(root)


def probed(out: dict) -> set[str]:
    return {r["route"] for g in out["gates"] for r in g["routes"]}


@pytest.mark.parametrize("app_project", [FASTAPI], indirect=True)
def test_fastapi_app_routes_traced_and_probed(app_project):
    out = vega_json("deploy", str(app_project))
    assert out["status"] == "live", out["problems"]
    assert out["changed_routes"] == sorted(out["changed_routes"])
    assert "GET /users/me (shop.routers.users)" in out["changed_app_routes"]
    url = out["regions"][0]["url"]
    shutil.copytree(app_project / "shop", app_project.parent / "shop-src")
    shutil.rmtree(app_project / "shop")  # served from the bundle alone
    status, _, body = get(url, "/items/1")
    assert (status, json.loads(body)) == (200, {"id": 1, "name": "pen"})
    assert json.loads(get(url, "/users/me")[2]) == {"user": "me", "root": ""}
    assert get(url, "/nowhere")[0] == 404  # FastAPI's own 404
    shutil.copytree(app_project.parent / "shop-src", app_project / "shop")

    # One router module changed: its routes (and those of modules importing
    # it: the app's own /health, FastAPI's /openapi.json) changed; /users/me did not.
    items = app_project / "shop" / "routers" / "items.py"
    items.write_text(items.read_text().replace("return db.ITEMS\n", "return db.ITEMS[:1]\n"))
    explained = vega("build", str(app_project), "--explain")
    assert explained.returncode == 0, explained.stderr
    assert (
        "why: route GET /items/{item_id} (shop.routers.items): changed module shop.routers.items"
        in explained.stdout
    )
    assert "/users/me" not in explained.stdout
    plan = vega_json("plan", str(app_project))
    assert "GET /items/{item_id} (shop.routers.items)" in plan["changed_app_routes"]
    assert not any("/users/me" in line for line in plan["changed_app_routes"])

    second = vega_json("deploy", str(app_project))
    assert second["status"] == "live", second["problems"]
    changed = second["changed_app_routes"]
    assert "GET,POST /items/ (shop.routers.items)" in changed
    assert "GET /items/{item_id} (shop.routers.items)" in changed
    assert "GET /health (shop.main)" in changed
    assert not any("/users/me" in line for line in changed)
    # GET without parameters, or configured: /items/{item_id} through its probe.
    assert {"/items/", "/items/{item_id}", "/health"} <= probed(second)
    assert "/users/me" not in probed(second)
    assert json.loads(get(url, "/items/")[2]) == ["mug"]

    human = vega("deploy", str(app_project))
    assert "no pointer moved" in human.stdout


@pytest.mark.parametrize("app_project", [FLASK], indirect=True)
def test_flask_app_detected_and_mounted(app_project):
    out = vega_json("deploy", str(app_project))
    assert out["status"] == "live", out["problems"]
    assert {
        "GET,POST /v1/authors (blog.authors)",
        "GET /v1/posts/ (blog.posts)",
        "GET /v1/posts/{post_id} (blog.posts)",
    } <= set(out["changed_app_routes"])
    url = out["regions"][0]["url"]
    status, _, body = get(url, "/v1/posts/")
    assert status == 200
    assert json.loads(body) == {"posts": [1, 2], "url": "/v1/posts/1", "root": "/v1"}
    assert json.loads(get(url, "/v1/posts/3")[2]) == {"post": 3}
    assert get(url, "/posts/")[0] == 404  # only under the mount

    authors = app_project / "blog" / "authors.py"
    authors.write_text(authors.read_text().replace('"ada"', '"grace"'))
    proc = vega("deploy", str(app_project))
    assert proc.returncode == 0, proc.stderr
    # Flask's static route runs on the whole app: changed too, but it has a parameter.
    assert "(2 changed routes, 1 probed)" in proc.stdout
    assert "  route GET,POST /v1/authors (blog.authors)\n" in proc.stdout
    assert "  route GET /v1/static/{filename:path} (flask.app)\n" in proc.stdout
    assert json.loads(get(url, "/v1/authors")[2]) == {"authors": ["grace"]}


@pytest.mark.parametrize("app_project", [DJANGO], indirect=True)
def test_django_project_detected_from_its_asgi_module(app_project):
    out = vega_json("deploy", str(app_project))
    assert out["status"] == "live", out["problems"]
    assert set(out["changed_app_routes"]) == {
        "* / (mysite.views)",
        "* /polls/ (polls.views)",
        "* /polls/{question_id}/ (polls.views)",
    }
    url = out["regions"][0]["url"]
    assert json.loads(get(url, "/polls/4/")[2]) == {"question": 4}

    views = app_project / "polls" / "views.py"
    views.write_text(views.read_text().replace('"polls": [1]', '"polls": [1, 2]'))
    second = vega_json("deploy", str(app_project))
    assert set(second["changed_app_routes"]) == {
        "* /polls/ (polls.views)",
        "* /polls/{question_id}/ (polls.views)",
    }
    assert probed(second) == {"/polls/"}
    assert json.loads(get(url, "/polls/")[2]) == {"polls": [1, 2]}
