"""Files read at run time: package data, include/exclude globs, constant dynamic imports.

Non-Python files inside first-party packages are members of the bundles
whose closure holds the package (entry name: the path below the source
root; digest: the content's), so a change to one rebuilds exactly those
bundles, and a change that leaves every member's bytes alone rebuilds
nothing.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from vega_dag.pipeline import BuildError, build
from vega_dag.store.objects import ObjectStore
from vega_dag.store.state import load_state

FILES = {
    "lib/__init__.py": "",
    "lib/render.py": (
        "import importlib.resources\n\n\n"
        "def page():\n"
        "    return (importlib.resources.files('lib') / 'templates/page.html').read_text()\n"
    ),
    "lib/templates/page.html": "<h1>v1</h1>\n",
    "lib/queries/orders.sql": "select 1;\n",
    "lib/locale/de/LC_MESSAGES/messages.mo": b"\xde\x12\x04\x95\x00\x00\x00\x00",
    "lib/stale.pyc": b"not bundled",
    "lib/sub/__init__.py": "",
    "lib/sub/schema.json": '{"v": 1}\n',
    "ns/tool.py": "X = 1\n",
    "ns/notes.txt": "namespace data\n",
    "ns/deep/mod.py": "Y = 2\n",
    "data/rates.csv": "eur,1\n",
    "README.md": "not in any package\n",
    "api/page.py": "from lib.render import page\n\n\ndef handler(request):\n    return page()\n",
    "api/sub.py": "import lib.sub\n\n\ndef handler(request):\n    return 'sub'\n",
    "api/tool.py": "import ns.tool\n\n\ndef handler(request):\n    return 'tool'\n",
    "api/deep.py": "import ns.deep.mod\n\n\ndef handler(request):\n    return 'deep'\n",
    "api/plain.py": "def handler(request):\n    return 'plain'\n",
}
LIB_DATA = [
    "lib/locale/de/LC_MESSAGES/messages.mo",
    "lib/queries/orders.sql",
    "lib/templates/page.html",
]


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def names(root: Path, digest: str) -> list[str]:
    data = ObjectStore(root / ".vega").get(digest)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [n for n in zf.namelist() if not n.endswith("/") and not n.startswith("__vega__")]


def data_of(root: Path, digest: str) -> list[str]:
    return [n for n in names(root, digest) if not n.endswith(".pyc")]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write(tmp_path / "proj", FILES)


def test_package_data_is_in_the_bundles_whose_closure_holds_the_package(project):
    routes = build(project).routes
    assert data_of(project, routes["/api/page"]) == LIB_DATA
    # lib.sub holds its own data; importing lib.sub imports lib too.
    with_sub = [*LIB_DATA[:2], "lib/sub/schema.json", LIB_DATA[2]]
    assert data_of(project, routes["/api/sub"]) == with_sub
    # A namespace package's data goes with the modules directly inside it.
    assert data_of(project, routes["/api/tool"]) == ["ns/notes.txt"]
    assert data_of(project, routes["/api/deep"]) == []
    assert data_of(project, routes["/api/plain"]) == []
    with zipfile.ZipFile(io.BytesIO(ObjectStore(project / ".vega").get(routes["/api/page"]))) as zf:
        assert zf.read("lib/templates/page.html") == b"<h1>v1</h1>\n"


def test_a_data_change_rebuilds_exactly_the_bundles_holding_it(project):
    first = build(project)
    (project / "lib/templates/page.html").write_text("<h1>v2</h1>\n")
    second = build(project, explain=True)
    assert second.modules_compiled == 0
    rebuilt = {p for p in first.routes if first.routes[p] != second.routes[p]}
    assert rebuilt == {"/api/page", "/api/sub"}
    assert "route /api/page: file changed: lib/templates/page.html" in second.explain
    assert second.manifest != first.manifest
    # Back to the first bytes: the first build's bundles, from the cache.
    (project / "lib/templates/page.html").write_text("<h1>v1</h1>\n")
    third = build(project)
    assert third.routes == first.routes and third.manifest == first.manifest
    assert third.bundles_built == 0


def test_early_cutoff_holds_with_package_data(project):
    first = build(project)
    # A comment compiles to the same bytes: nothing is rebuilt.
    (project / "lib/render.py").write_text(FILES["lib/render.py"] + "# a comment\n")
    second = build(project)
    assert second.bundles_built == 0 and second.routes == first.routes
    # A file no bundle holds changes nothing either.
    (project / "README.md").write_text("edited\n")
    assert build(project).bundles_built == 0


def test_a_new_data_file_joins_its_package_bundles(project):
    first = build(project)
    (project / "lib/templates/new.html").write_text("new\n")
    second = build(project)
    assert {p for p in first.routes if first.routes[p] != second.routes[p]} == {
        "/api/page",
        "/api/sub",
    }
    assert "lib/templates/new.html" in data_of(project, second.routes["/api/page"])
    (project / "lib/templates/new.html").unlink()
    assert build(project).routes == first.routes


def test_include_and_exclude_per_project_and_per_route(project):
    (project / "pyproject.toml").write_text(
        "[tool.vega]\n"
        'include = ["data/*.csv"]\n'
        'exclude = ["*.mo", "lib/queries/"]\n'
        '[tool.vega.per_route."/api/plain"]\n'
        'include = ["README.md"]\n'
        'exclude = ["!*.mo"]\n'
    )
    routes = build(project).routes
    assert data_of(project, routes["/api/page"]) == ["data/rates.csv", "lib/templates/page.html"]
    assert data_of(project, routes["/api/deep"]) == ["data/rates.csv"]
    assert data_of(project, routes["/api/plain"]) == ["README.md", "data/rates.csv"]
    state = load_state(project / ".vega/state/build.msgpack")
    assert [e for e, _ in state.route_files["/api/plain"]] == ["README.md", "data/rates.csv"]


def test_including_a_module_adds_it_and_its_imports(project):
    (project / "plugins").mkdir()
    (project / "plugins/__init__.py").write_text("")
    (project / "plugins/extra.py").write_text("import lib.sub\n")
    (project / "pyproject.toml").write_text(
        '[tool.vega.per_route."/api/plain"]\ninclude = ["plugins/extra.py"]\n'
    )
    result = build(project)
    got = names(project, result.routes["/api/plain"])
    assert "plugins/extra.pyc" in got and "lib/sub/__init__.pyc" in got
    assert "lib/sub/schema.json" in got  # the package it brings holds its data
    state = load_state(project / ".vega/state/build.msgpack")
    assert "plugins.extra" in state.closures["/api/plain"]
    assert "plugins.extra" not in state.closures["/api/deep"]
    # Dropping the include drops the module again.
    (project / "pyproject.toml").unlink()
    again = build(project)
    assert "plugins/extra.pyc" not in names(project, again.routes["/api/plain"])


def test_files_outside_the_source_roots_keep_their_project_path(tmp_path):
    root = write(
        tmp_path / "proj",
        {
            "src/pkg/__init__.py": "",
            "src/pkg/data.json": "{}\n",
            "src/api/r.py": "import pkg\n\n\ndef handler(request):\n    return 1\n",
            "conf/app.toml": "x = 1\n",
            "pyproject.toml": (
                '[tool.vega]\nroutes = "src/api"\nsource_roots = ["src"]\n'
                'include = ["conf/*.toml"]\n'
            ),
        },
    )
    routes = build(root).routes
    assert data_of(root, routes["/src/api/r"]) == ["conf/app.toml", "pkg/data.json"]


def test_bad_file_settings_name_the_setting(project):
    (project / "pyproject.toml").write_text('[tool.vega.per_route."/api/nope"]\ninclude = ["x"]\n')
    with pytest.raises(BuildError) as err:
        build(project)
    assert '[tool.vega.per_route."/api/nope"]: no route has this pattern' in str(err.value)
    (project / "pyproject.toml").write_text('[tool.vega]\ninclude = ["\\\\"]\n')
    with pytest.raises(BuildError) as err:
        build(project)
    assert "[tool.vega] include:" in str(err.value)


def test_two_files_with_one_entry_name_are_an_error(tmp_path):
    root = write(
        tmp_path / "proj",
        {
            "lib/__init__.py": "",
            "lib/a.txt": "root\n",
            "src/lib2/__init__.py": "",
            "src/lib/a.txt": "src\n",
            "api/r.py": "import lib\n\n\ndef handler(request):\n    return 1\n",
            "pyproject.toml": (
                '[tool.vega]\nsource_roots = ["src", "."]\ninclude = ["src/lib/a.txt"]\n'
            ),
        },
    )
    with pytest.raises(BuildError) as err:
        build(root)
    assert "lib/a.txt and src/lib/a.txt would both be 'lib/a.txt'" in str(err.value)


def test_a_constant_dynamic_import_is_an_edge(tmp_path):
    root = write(
        tmp_path / "proj",
        {
            "lib/__init__.py": "",
            "lib/registry.py": (
                "import importlib\nfrom importlib import import_module\n\n\n"
                "def plugins():\n"
                "    return [importlib.import_module('lib.plug'),\n"
                "            import_module('.other', __package__),\n"
                "            __import__('lib.third')]\n"
            ),
            "lib/plug.py": "NAME = 'plug'\n",
            "lib/other.py": "NAME = 'other'\n",
            "lib/third.py": "NAME = 'third'\n",
            "api/r.py": "from lib import registry\n\n\ndef handler(request):\n    return 1\n",
        },
    )
    build(root)
    state = load_state(root / ".vega/state/build.msgpack")
    assert state.modules["lib.registry"].deps == ["lib", "lib.other", "lib.plug", "lib.third"]
    assert {"lib.plug", "lib.other", "lib.third"} <= set(state.closures["/api/r"])
