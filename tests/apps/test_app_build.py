"""One-app projects at build time, without regions: detection, configuration
errors, discovery (its errors and its cache) and the changed-route tracing."""

from __future__ import annotations

import pytest

from tests.apps.projects import DJANGO, FASTAPI, write
from vega_dag.config import ConfigError, load_config
from vega_dag.graph.app import app_route, mount_pattern
from vega_dag.graph.modules import module_table
from vega_dag.manifest import Manifest, RouteEntry, decode_manifest
from vega_dag.manifest.schema import AppRoute, AppRouteEntry
from vega_dag.pipeline import build
from vega_dag.pipeline.result import BuildError
from vega_dag.rollout.deploy import changed_routes
from vega_dag.rollout.health import probed_routes
from vega_dag.store.objects import ObjectStore

ASGI_APP = "async def app(scope, receive, send):\n    pass\n"


def tables(files: list[str]):
    return module_table(files, ["."], "api")


def test_detection_follows_the_platforms_order(tmp_path):
    vega = load_config(tmp_path).vega
    for files, expected in [
        (["main.py", "app.py"], "main"),
        (["app/__init__.py", "app/main.py", "asgi.py"], "app.main"),
        (["app.py", "wsgi.py"], "app"),
        (["wsgi.py", "mysite/__init__.py", "mysite/asgi.py"], "wsgi"),
        (["manage.py", "mysite/__init__.py", "mysite/wsgi.py"], "mysite.wsgi"),
        # Django's startproject writes both: the ASGI one is served.
        (["manage.py", "mysite/__init__.py", "mysite/asgi.py", "mysite/wsgi.py"], "mysite.asgi"),
        # A package's main.py or app.py (FastAPI's and Flask's usual layouts).
        (["shop/__init__.py", "shop/main.py", "shop/routers/__init__.py"], "shop.main"),
        (["blog/__init__.py", "blog/app.py", "blog/views.py", "lib/__init__.py"], "blog.app"),
        (["shop/__init__.py", "shop/main.py", "shop/asgi.py", "shop/app.py"], "shop.main"),
        # The top-level files come first.
        (["app.py", "shop/__init__.py", "shop/main.py"], "app"),
    ]:
        route = app_route(vega, tables(files))
        assert route is not None and not isinstance(route, str)
        assert (route.module.name, route.app, route.pattern) == (expected, "", "/{path:path?}")
    assert app_route(vega, tables(["lib/__init__.py", "lib/db.py"])) is None
    # Not a package: a directory of scripts holds no application.
    assert app_route(vega, tables(["tools/main.py", "lib/__init__.py"])) is None
    assert mount_pattern("/v1") == "/v1/{path:path?}"


def test_two_packages_with_an_app_module_are_an_error_naming_both(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    for rel in ["shop/__init__.py", "admin/__init__.py", "admin/app.py"]:
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text("")
    (tmp_path / "shop" / "main.py").write_text(ASGI_APP)
    with pytest.raises(BuildError) as err:
        build(tmp_path)
    assert err.value.problems == [
        "no [tool.vega] app and no route files, and two modules that could be the "
        "application: admin/app.py and shop/main.py; name the one to serve in "
        '[tool.vega] app = "package.module:attr"'
    ]
    # Named, it builds: the other package is a library of the app's.
    (tmp_path / "pyproject.toml").write_text('[tool.vega]\napp = "shop.main:app"\n')
    assert list(build(tmp_path).routes) == ["/{path:path?}"]


def test_a_project_with_file_routes_is_not_an_app(tmp_path):
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "index.py").write_text("def handler(request):\n    return 'hi'\n")
    (tmp_path / "main.py").write_text(ASGI_APP)
    result = build(tmp_path)
    assert list(result.routes) == ["/api"]
    manifest = decode_manifest(ObjectStore(tmp_path / ".vega").get(result.manifest))
    assert manifest.app_routes == []
    assert b"app_routes" not in manifest.encode()  # file-routed manifests keep their bytes


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('app = "shop.main"', "app 'shop.main' must be \"package.module:attr\""),
        ('app_mount = "/v1/"', "app_mount '/v1/' must be \"/\" or a path of plain segments"),
    ],
)
def test_bad_app_settings_name_the_file_and_key(tmp_path, setting, message):
    (tmp_path / "pyproject.toml").write_text(f"[tool.vega]\n{setting}\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'pyproject.toml'}: [tool.vega] {message}")


def test_app_errors_name_the_app(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.vega]\napp = "shop.api:app"\n')
    (tmp_path / "main.py").write_text(ASGI_APP)
    with pytest.raises(BuildError) as err:
        build(tmp_path)
    assert err.value.problems == [
        "[tool.vega] app 'shop.api:app': the project has no module shop.api (source roots: .)"
    ]

    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "main.py").write_text("def serve():\n    pass\n")
    with pytest.raises(BuildError) as err:
        build(tmp_path)
    assert err.value.problems == [
        "main.py: the project's application main is not defined there: define `app` or "
        "`application` (ASGI or WSGI) at module level; or name the application in "
        '[tool.vega] app = "package.module:attr"'
    ]

    # Discovery imports the app from its bundle: an import that fails there
    # fails the build, naming the app, the file and line, and the error.
    (tmp_path / "main.py").write_text("import settings\n\napp = settings.make()\n")
    (tmp_path / "settings.py").write_text("def make():\n    raise RuntimeError('no DSN')\n")
    with pytest.raises(BuildError) as err:
        build(tmp_path)
    assert err.value.problems == [
        "app main:app: importing it from its bundle (as a region would) to discover its routes "
        "failed at settings.py:2: RuntimeError: no DSN"
    ]


def test_discovery_is_cached_by_the_bundle(tmp_path):
    root = write(tmp_path / "proj", FASTAPI)
    first = build(root, explain=True)
    assert "app shop.main:app: new; 9 routes discovered" in first.explain
    users = root / "shop" / "routers" / "users.py"
    # Same bytecode: the bundle stands, nothing is imported again.
    users.write_text(users.read_text() + "# a comment\n")
    second = build(root, explain=True)
    assert not any("discovered again" in line for line in second.explain)
    assert second.routes == first.routes  # (the manifest's source digest moved)
    users.write_text(users.read_text().replace('"me"', '"you"'))
    third = build(root, explain=True)
    # An edit inside a handler: the app's import and listing would run the
    # same code as when its routes were listed, so neither runs again.
    assert (
        "app shop.main:app: bundle changed, but its import and listing run only code that "
        "has not changed: its routes kept" in third.explain
    )
    assert (
        "route GET /users/me (shop.routers.users): changed module shop.routers.users"
        in third.explain
    )
    assert [line for line in third.explain if line.startswith("route GET /items")] == []
    # A new route is code that runs at import: imported and listed again.
    users.write_text(
        users.read_text() + '\n\n@router.get("/users/all")\ndef everyone() -> list:\n'
        '    return ["me"]\n'
    )
    fourth = build(root, explain=True)
    assert "app shop.main:app: bundle changed; its routes discovered again" in fourth.explain
    manifest = decode_manifest(ObjectStore(root / ".vega").get(fourth.manifest))
    assert "/users/all" in {r.path for r in manifest.app_routes}
    # And the next body edit keeps that listing (the one from the last import).
    users.write_text(users.read_text().replace('return ["me"]', 'return ["me", "you"]'))
    fifth = build(root, explain=True)
    assert any("its routes kept" in line for line in fifth.explain)
    manifest = decode_manifest(ObjectStore(root / ".vega").get(fifth.manifest))
    assert "/users/all" in {r.path for r in manifest.app_routes}


def test_a_django_urlconf_edit_is_listed_again_though_only_the_listing_runs_it(tmp_path):
    # Django imports the URLconfs when its resolver is first asked (here: by
    # the listing, not by importing mysite.asgi): the listing's run is traced too.
    root = write(tmp_path / "site", DJANGO)
    build(root)
    views = root / "polls" / "views.py"
    views.write_text(views.read_text().replace('"polls": [1]', '"polls": [1, 2]'))
    kept = build(root, explain=True)
    assert any("its routes kept" in line for line in kept.explain), kept.explain
    urls = root / "polls" / "urls.py"
    urls.write_text(urls.read_text().replace("]\n", '    path("all/", views.index),\n]\n'))
    again = build(root, explain=True)
    assert any("its routes discovered again" in line for line in again.explain)
    manifest = decode_manifest(ObjectStore(root / ".vega").get(again.manifest))
    assert "/polls/all/" in {r.path for r in manifest.app_routes}


def _manifest(app_routes: list[AppRoute], bundle: str = "b1") -> Manifest:
    return Manifest(
        schema=1,
        toolchain=None,  # type: ignore[arg-type]
        source="s",
        config="c",
        layer=None,
        routes=[RouteEntry("/{path:path?}", "main", "main.py", "app", bundle)],
        env={},
        app_routes=app_routes,
    )


def test_changed_routes_of_an_app_and_what_the_gate_probes(tmp_path):
    health = load_config(tmp_path).vega.health
    old = _manifest(
        [
            AppRoute(["GET"], "/items", "a.items", "c1"),
            AppRoute(["POST"], "/items", "a.items", "c1"),
            AppRoute(["GET"], "/items/{id}", "a.items", "c1"),
            AppRoute(["GET"], "/users", "a.users", "c2"),
        ]
    )
    new = _manifest(
        [
            AppRoute(["GET"], "/items", "a.items", "c3"),
            AppRoute(["POST"], "/items", "a.items", "c3"),
            AppRoute(["GET"], "/items/{id}", "a.items", "c3"),
            AppRoute(["GET"], "/users", "a.users", "c2"),
        ],
        bundle="b2",
    )
    changed = changed_routes(old, new)
    assert [r.describe() for r in changed if isinstance(r, AppRouteEntry)] == [
        "GET,POST /items (a.items)",
        "GET /items/{id} (a.items)",
    ]
    assert [r.pattern for r in probed_routes(changed, health)] == ["/items"]
    assert changed_routes(new, new) == []
    # A first deploy: every route changed.
    assert len(changed_routes(None, new)) == 3
    # Only a POST changed: the app is probed at its mount path instead.
    only_post = _manifest([*new.app_routes[:1], AppRoute(["POST"], "/items", "a.items", "c9")])
    posts = changed_routes(new, _manifest(only_post.app_routes, bundle="b3"))
    assert [r.describe() for r in posts] == ["POST /items (a.items)"]
    assert [r.pattern for r in probed_routes(posts, health)] == ["/"]
    mixed = [AppRouteEntry("/x/{id}", "a.x", "", "app", "b3", methods=["DELETE"])]
    assert [r.pattern for r in probed_routes(mixed, health, "/v1")] == ["/v1"]
