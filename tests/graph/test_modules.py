"""File → module name and route file → URL pattern (graph/modules.py)."""

from __future__ import annotations

import pytest

from vega_dag.graph.modules import (
    Module,
    RouteConflictError,
    layout_problems,
    module_parents,
    module_table,
    route_pattern,
    route_table,
    top_level_packages,
)


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("api/users.py", "/api/users"),
        ("api/index.py", "/api"),
        ("api/orders/[id].py", "/api/orders/{id}"),
        ("api/orders/index.py", "/api/orders"),
        ("api/docs/[...slug].py", "/api/docs/{slug:path}"),
        ("api/users/[user_id]/orders.py", "/api/users/{user_id}/orders"),
        ("api/inventory/[warehouse]/[sku].py", "/api/inventory/{warehouse}/{sku}"),
        ("api/[id]/index.py", "/api/{id}"),
        ("api/_private.py", None),
        ("api/__init__.py", None),
        ("api/orders/__init__.py", None),
        ("api/_helpers/format.py", None),
        ("api/v1/_util.py", None),
        ("api/users.txt", None),
        ("lib/users.py", None),
        ("apiary/x.py", None),
    ],
)
def test_route_pattern(path, pattern):
    assert route_pattern(path, "api") == pattern


def test_underscore_rule_applies_below_the_routes_dir_only():
    # (Only whether it is a route is pinned here: the URL prefix of a nested
    # routes directory is not specified.)
    assert route_pattern("app/_web/routes/items.py", "app/_web/routes") is not None
    assert route_pattern("app/_web/routes/_items.py", "app/_web/routes") is None
    assert route_pattern("app/_web/routes/_x/items.py", "app/_web/routes") is None


FILES = [
    "api/__init__.py",
    "api/index.py",
    "api/users.py",
    "api/orders/[id].py",
    "api/docs/[...slug].py",
    "api/_private.py",
    "lib/__init__.py",
    "lib/db.py",
    "lib/sub/__init__.py",
    "lib/sub/deep.py",
    "ns/plugin.py",
    "ns/inner/thing.py",
    "setup.py",
    "__init__.py",
    "my-script.py",
    "lib/not-a-module.py",
    "lib/[id].py",
    "README.md",
    "pyproject.toml",
]


def test_module_names_with_root_dot():
    table = module_table(FILES, ["."], "api")
    assert table == {
        "api": Module("api", "api/__init__.py", True),
        "api.index": Module("api.index", "api/index.py", False),
        "api.users": Module("api.users", "api/users.py", False),
        "api.orders.[id]": Module("api.orders.[id]", "api/orders/[id].py", False),
        "api.docs.[...slug]": Module("api.docs.[...slug]", "api/docs/[...slug].py", False),
        "api._private": Module("api._private", "api/_private.py", False),
        "lib": Module("lib", "lib/__init__.py", True),
        "lib.db": Module("lib.db", "lib/db.py", False),
        "lib.sub": Module("lib.sub", "lib/sub/__init__.py", True),
        "lib.sub.deep": Module("lib.sub.deep", "lib/sub/deep.py", False),
        "ns.plugin": Module("ns.plugin", "ns/plugin.py", False),
        "ns.inner.thing": Module("ns.inner.thing", "ns/inner/thing.py", False),
        "setup": Module("setup", "setup.py", False),
    }
    # Relative imports start from the package: the package itself for an
    # __init__, the parent for a plain module; namespace packages count.
    assert table["lib"].package == "lib"
    assert table["lib.db"].package == "lib"
    assert table["lib.sub.deep"].package == "lib.sub"
    assert table["ns.inner.thing"].package == "ns.inner"
    assert table["setup"].package == ""


def test_route_table_from_modules():
    table = module_table(FILES, ["."], "api")
    routes = route_table(table, "api")
    assert list(routes) == ["/api", "/api/docs/{slug:path}", "/api/orders/{id}", "/api/users"]
    assert {p: r.module.name for p, r in routes.items()} == {
        "/api": "api.index",
        "/api/docs/{slug:path}": "api.docs.[...slug]",
        "/api/orders/{id}": "api.orders.[id]",
        "/api/users": "api.users",
    }


def test_top_level_packages_include_namespace_dirs():
    files = [*FILES, "plugins/extra/x.py", "bad-dir/x.py"]
    table = module_table(files, ["."], "api")
    assert top_level_packages(table, files, ["."]) == {"api", "lib", "ns", "plugins", "setup"}


def test_source_root_other_than_dot():
    files = [
        "src/app/__init__.py",
        "src/app/core.py",
        "src/helpers.py",
        "api/users.py",
        "tools/x.py",
    ]
    table = module_table(files, ["src"], "api")
    assert table == {
        "app": Module("app", "src/app/__init__.py", True),
        "app.core": Module("app.core", "src/app/core.py", False),
        "helpers": Module("helpers", "src/helpers.py", False),
    }


def test_nested_roots_name_each_file_once():
    files = ["src/app/__init__.py", "src/app/core.py", "api/users.py", "lib/db.py"]
    for roots in (["src", "."], [".", "src"]):
        table = module_table(files, roots, "api")
        assert {name: m.path for name, m in table.items()} == {
            "app": "src/app/__init__.py",
            "app.core": "src/app/core.py",
            "api.users": "api/users.py",
            "lib.db": "lib/db.py",
        }, roots


def test_first_root_wins_a_name_clash():
    files = ["src/lib/db.py", "lib/db.py"]
    assert module_table(files, ["src", "."], "api")["lib.db"].path == "src/lib/db.py"
    assert module_table(files, [".", "src"], "api")["lib.db"].path == "lib/db.py"


def test_routes_under_a_source_root():
    files = ["src/api/items/[id].py", "src/api/index.py", "src/lib.py"]
    table = module_table(files, ["src"], "src/api")
    assert sorted(table) == ["api.index", "api.items.[id]", "lib"]
    routes = route_table(table, "src/api")
    assert sorted(r.module.name for r in routes.values()) == ["api.index", "api.items.[id]"]


# -- catch-all routes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("api/docs/[[...slug]].py", "/api/docs/{slug:path?}"),
        ("api/[...path].py", "/api/{path:path}"),
        ("api/[[...path]].py", "/api/{path:path?}"),
        ("api/t/[tenant]/[...rest].py", "/api/t/{tenant}/{rest:path}"),
    ],
)
def test_catch_all_patterns(path, pattern):
    assert route_pattern(path, "api") == pattern


def test_a_catch_all_module_is_named_by_its_file_and_its_package_is_its_directory():
    files = ["api/docs/[...slug].py", "api/docs/[[...page]].py", "api/docs/_helpers.py"]
    table = module_table(files, ["."], "api")
    assert table["api.docs.[...slug]"] == Module(
        "api.docs.[...slug]", "api/docs/[...slug].py", False
    )
    # Relative imports start from the directory, not from a dot inside the name.
    assert table["api.docs.[...slug]"].package == "api.docs"
    assert table["api.docs.[[...page]]"].package == "api.docs"
    assert module_parents(table["api.docs.[...slug]"]) == ["api", "api.docs"]


def test_a_catch_all_directory_holds_no_modules():
    # Its modules would have a dot inside a package's name, which Python cannot import.
    files = ["api/docs/[...slug]/index.py", "api/docs/[...slug]/_x.py", "api/ok.py"]
    assert sorted(module_table(files, ["."], "api")) == ["api.ok"]
    assert layout_problems(files, module_table(files, ["."], "api"), "api") == [
        "api/docs/[...slug]/index.py: a catch-all must be the route's file name "
        "(api/docs/[...slug].py), not a directory",
        "api/docs/[...slug]/_x.py: a catch-all must be the route's file name "
        "(api/docs/[...slug].py), not a directory",
    ]


def test_a_static_route_wins_over_a_catch_all_at_the_same_place():
    files = ["api/docs/[...slug].py", "api/docs/intro.py", "api/docs/[page].py"]
    routes = route_table(module_table(files, ["."], "api"), "api")
    assert list(routes) == ["/api/docs/intro", "/api/docs/{page}", "/api/docs/{slug:path}"]


# -- one file per route ----------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        (
            ["api/users.py", "api/users/index.py"],
            "api/users.py, api/users/index.py: both claim the route /api/users "
            "(one file per route: remove or rename one)",
        ),
        (
            ["api/orders/[id].py", "api/orders/[order_id].py"],
            "api/orders/[id].py, api/orders/[order_id].py: both claim the paths of "
            "/api/orders/{id} and /api/orders/{order_id} "
            "(one file per route: remove or rename one)",
        ),
        (
            ["api/docs/[...slug].py", "api/docs/[[...slug]].py"],
            "api/docs/[...slug].py, api/docs/[[...slug]].py: both claim the paths of "
            "/api/docs/{slug:path} and /api/docs/{slug:path?} "
            "(one file per route: remove or rename one)",
        ),
        (
            ["api/docs.py", "api/docs/[[...slug]].py"],
            "api/docs.py, api/docs/[[...slug]].py: both claim the path /api/docs "
            "(/api/docs/{slug:path?} matches its parent too; one file per route: "
            "remove or rename one)",
        ),
    ],
)
def test_a_route_claimed_by_two_files_is_an_error_naming_both(files, problem):
    with pytest.raises(RouteConflictError) as err:
        route_table(module_table([*files, "api/other.py"], ["."], "api"), "api")
    assert err.value.problems == [problem]


def test_a_module_beside_a_package_directory_of_its_name_is_a_problem():
    files = [
        "api/users.py",
        "api/users/[id].py",
        "lib/db.py",
        "lib/db/__init__.py",
        "lib/fine.py",
        "lib/fine_too/x.py",
    ]
    assert layout_problems(files, module_table(files, ["."], "api"), "api") == [
        "api/users.py, api/users/[id].py: module api.users is both this file and a package "
        "directory, and Python can import only one (move it to api/users/index.py, the same route)",
        "lib/db.py, lib/db/__init__.py: module lib.db is both this file and a package "
        "directory, and Python can import only one (rename one)",
    ]
