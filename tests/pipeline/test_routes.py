"""Route forms a real application uses: catch-alls, one file per route, rewrites.

Built here and imported from the bundles as a region does
(``regions.runtime.import_route``); served through real regions in
tests/rollout/test_routes.py.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from vega_dag.cli import main
from vega_dag.config import ConfigError, load_config
from vega_dag.manifest import decode_manifest
from vega_dag.pipeline import BuildError, build
from vega_dag.regions.runtime import import_route
from vega_dag.store.objects import ObjectStore

FILES = {
    "lib/__init__.py": "",
    "lib/pages.py": "def page(slug):\n    return 'page:' + slug\n",
    "api/docs/_render.py": "def render(slug):\n    return '<' + slug + '>'\n",
    "api/docs/[...slug].py": (
        "from lib.pages import page\n"
        "from ._render import render\n"
        "from .. import _shared\n\n\n"
        "def handler(request):\n"
        "    slug = request.path_params['slug']\n"
        "    return {'slug': slug, 'page': page(slug), 'html': render(slug),\n"
        "            'shared': _shared.NAME, 'module': __name__, 'package': __package__}\n"
    ),
    "api/_shared.py": "NAME = 'shared'\n",
    "api/shop/[[...path]].py": (
        "def handler(request):\n    return {'path': request.path_params['path']}\n"
    ),
    "api/docs/intro.py": "def handler(request):\n    return 'intro'\n",
}


def manifest_of(root: Path, digest: str):
    return decode_manifest(ObjectStore(root / ".vega").get(digest))


def bundle_names(root: Path, digest: str) -> list[str]:
    data = ObjectStore(root / ".vega").get(digest)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sorted(zf.namelist())


def test_catch_all_routes_build_and_bundle_under_their_file_names(tree):
    root = tree(FILES)
    result = build(root)
    assert sorted(result.routes) == [
        "/api/docs/intro",
        "/api/docs/{slug:path}",
        "/api/shop/{path:path?}",
    ]
    names = bundle_names(root, result.routes["/api/docs/{slug:path}"])
    assert "api/docs/[...slug].pyc" in names
    assert "api/docs/_render.pyc" in names and "api/_shared.pyc" in names
    assert "api/shop/[[...path]].pyc" in bundle_names(root, result.routes["/api/shop/{path:path?}"])
    routes = {r.pattern: r for r in manifest_of(root, result.manifest).routes}
    assert routes["/api/docs/{slug:path}"].module == "api.docs.[...slug]"
    assert routes["/api/docs/{slug:path}"].file == "api/docs/[...slug].py"


def test_a_catch_all_module_imports_from_its_bundle_alone(tree, tmp_path):
    root = tree(FILES)
    result = build(root)
    entry = next(
        r for r in manifest_of(root, result.manifest).routes if r.pattern.startswith("/api/docs/{")
    )
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(ObjectStore(root / ".vega").get(entry.bundle))
    before = set(sys.modules)
    sys.path.insert(0, str(archive))
    try:
        module = import_route(entry.module, entry.file)

        assert module.handler(SimpleNamespace(path_params={"slug": "a/b"})) == {
            "slug": "a/b",
            "page": "page:a/b",
            "html": "<a/b>",
            "shared": "shared",
            "module": "api.docs.[...slug]",
            "package": "api.docs",
        }
        assert module.__file__ == f"{archive}/api/docs/[...slug].pyc"
        assert sys.modules["api.docs.[...slug]"] is module
        assert import_route(entry.module, entry.file) is module  # imported once
    finally:
        sys.path.remove(str(archive))
        for name in set(sys.modules) - before:
            del sys.modules[name]


def test_a_route_claimed_by_two_files_fails_the_build_naming_both(tree):
    root = tree({**FILES, "api/users.py": "def handler(r):\n    return 1\n"})
    first = build(root)
    (root / "api/users/index.py").parent.mkdir()
    (root / "api/users/index.py").write_text("def handler(r):\n    return 2\n")
    result = CliRunner().invoke(main, ["build", str(root)])
    assert result.exit_code == 1
    assert "✗ Build failed" in result.output
    assert (
        "api/users.py, api/users/index.py: both claim the route /api/users "
        "(one file per route: remove or rename one)"
    ) in result.output
    assert "Traceback" not in result.output
    # Nothing recorded: the next build after the fix is the first one's.
    (root / "api/users/index.py").unlink()
    (root / "api/users").rmdir()
    assert build(root).manifest == first.manifest


def test_a_catch_all_directory_fails_the_build_naming_the_file(tree):
    root = tree({**FILES, "api/wiki/[...page]/index.py": "def handler(r):\n    return 1\n"})
    with pytest.raises(BuildError) as err:
        build(root)
    assert err.value.problems == [
        "api/wiki/[...page]/index.py: a catch-all must be the route's file name "
        "(api/wiki/[...page].py), not a directory"
    ]


REWRITES = """
[tool.vega]
rewrites = [
  { source = "/old/{x}", destination = "/api/docs/{x}" },
  { source = "/blog/{year}/{rest:path}", destination = "/api/shop/{year}/{rest}" },
]
"""


def test_rewrites_are_part_of_the_deployment(tree):
    root = tree({**FILES, "pyproject.toml": REWRITES})
    manifest = manifest_of(root, build(root).manifest)
    assert [(r.source, r.destination) for r in manifest.rewrites] == [
        ("/old/{x}", "/api/docs/{x}"),
        ("/blog/{year}/{rest:path}", "/api/shop/{year}/{rest}"),
    ]


def test_no_rewrites_leave_the_manifest_as_it_was(tree):
    # A key at its default is neither in the manifest nor in the config
    # digest: a project that does not use it keeps its digests.
    root = tree(FILES)
    data = ObjectStore(root / ".vega").get(build(root).manifest)
    assert "rewrites" not in json.loads(data)


@pytest.mark.parametrize(
    ("rewrite", "message"),
    [
        (
            '{ source = "old/{x}", destination = "/api/docs/{x}" }',
            "rewrites[0]: source 'old/{x}' must start with '/'",
        ),
        (
            '{ source = "/old/{x}", destination = "/api/docs/{y}" }',
            "rewrites[0]: destination '/api/docs/{y}' uses {y}, which the source does not define",
        ),
        (
            '{ source = "/old/{x:path}/edit", destination = "/api/docs/{x}" }',
            "rewrites[0]: source '/old/{x:path}/edit': "
            "a {x:path} parameter must be the last segment",
        ),
        (
            '{ source = "/old", destination = "/api/docs/{x}" }',
            "rewrites[0]: destination '/api/docs/{x}' uses {x}, which the source does not define",
        ),
        (
            '{ source = "/old", target = "/api/docs" }',
            "Object contains unknown field `target` - at `$.rewrites[0]`",
        ),
    ],
)
def test_bad_rewrites_name_the_file_and_entry(tree, rewrite, message):
    root = tree({**FILES, "pyproject.toml": f"[tool.vega]\nrewrites = [{rewrite}]\n"})
    with pytest.raises(ConfigError) as err:
        load_config(root)
    assert str(err.value) == f"{root / 'pyproject.toml'}: [tool.vega] {message}"


def test_a_rewrite_to_no_route_fails_the_build(tree):
    text = '[tool.vega]\nrewrites = [{ source = "/old/{x}", destination = "/nowhere/{x}" }]\n'
    root = tree({**FILES, "pyproject.toml": text})
    with pytest.raises(BuildError) as err:
        build(root)
    assert err.value.problems == [
        f"{root / 'pyproject.toml'}: [tool.vega] rewrites[0]: destination '/nowhere/{{x}}' "
        "is no route of this project"
    ]


def test_a_route_file_beside_its_directory_fails_the_build(tree):
    # api.docs would be both the module api/docs.py and the package of api/docs/…
    root = tree({**FILES, "api/docs.py": "def handler(r):\n    return 1\n"})
    with pytest.raises(BuildError) as err:
        build(root)
    assert err.value.problems == [
        "api/docs.py, api/docs/[...slug].py: module api.docs is both this file and a package "
        "directory, and Python can import only one (move it to api/docs/index.py, the same route)"
    ]
