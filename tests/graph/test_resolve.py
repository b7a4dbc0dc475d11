"""Import statements → first-party edges, checked through real builds.

Edges are read back from the build state (``.vega/state/build.msgpack``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vega_dag.graph.dag import closures, components, dependents, import_graph
from vega_dag.pipeline import BuildError, build
from vega_dag.store.state import load_state

HANDLER = "\n\ndef handler(request):\n    return 'ok'\n"
STATE = ".vega/state/build.msgpack"


def edges_of(root: Path) -> dict[str, list[str]]:
    build(root)
    state = load_state(root / ".vega" / "state" / "build.msgpack")
    return {name: rec.deps for name, rec in state.modules.items()}


def closures_of(root: Path) -> dict[str, list[str]]:
    return load_state(root / ".vega" / "state" / "build.msgpack").closures


def test_absolute_relative_and_submodule_imports(tree):
    root = tree(
        {
            "lib/__init__.py": "",
            "lib/db.py": "from . import util\nfrom .util import helper\nfrom .sub.deep import X\n",
            "lib/util.py": "def helper():\n    return 1\n",
            "lib/sub/__init__.py": "",
            "lib/sub/deep.py": "from ..util import helper\nfrom .. import db\nX = 1\n",
            "lib/plain.py": "from lib import util, helper_name\n",
            "api/a.py": "import lib.db\n" + HANDLER,
            "api/b.py": "from lib import plain\n" + HANDLER,
        }
    )
    assert edges_of(root) == {
        "api.a": ["lib", "lib.db"],
        "api.b": ["lib", "lib.plain"],
        "lib": [],
        # `from . import util` → the submodule; `from .sub.deep import X` runs
        # lib.sub's __init__ too.
        "lib.db": ["lib", "lib.sub", "lib.sub.deep", "lib.util"],
        "lib.plain": ["lib", "lib.util"],
        # Every module depends on its own packages: their __init__ runs first.
        "lib.sub": ["lib"],
        "lib.sub.deep": ["lib", "lib.db", "lib.sub", "lib.util"],
        "lib.util": ["lib"],
    }


def test_dotted_import_depends_on_every_package(tree):
    root = tree(
        {
            "a/__init__.py": "",
            "a/b/__init__.py": "",
            "a/b/c.py": "",
            "api/r.py": "import a.b.c\n" + HANDLER,
        }
    )
    assert edges_of(root)["api.r"] == ["a", "a.b", "a.b.c"]
    assert closures_of(root) == {"/api/r": ["a", "a.b", "a.b.c", "api.r"]}


def test_function_imports_are_edges_type_checking_ones_are_not(tree):
    root = tree(
        {
            "lib/__init__.py": "",
            "lib/lazy.py": "",
            "lib/typed.py": "",
            "lib/typed_alias.py": "",
            "api/r.py": (
                "from __future__ import annotations\n"
                "import typing\n"
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from lib import typed\n"
                "if typing.TYPE_CHECKING:\n"
                "    import lib.typed_alias\n"
                "def handler(request):\n"
                "    from lib import lazy\n"
                "    return lazy\n"
            ),
        }
    )
    assert edges_of(root)["api.r"] == ["lib", "lib.lazy"]


def test_guarded_missing_imports_are_not_errors(tree):
    root = tree(
        {
            "lib/__init__.py": "",
            "api/r.py": (
                "try:\n"
                "    import lib.optional\n"
                "except ImportError:\n"
                "    pass\n"
                "try:\n"
                "    from lib import speedups\n"
                "except ModuleNotFoundError:\n"
                "    speedups = None\n"
                "try:\n"
                "    import not_installed_anywhere\n"
                "except ImportError:\n"
                "    pass\n"
            )
            + HANDLER,
        }
    )
    assert edges_of(root)["api.r"] == ["lib"]


def test_unguarded_missing_first_party_import_names_file_and_line(tree):
    root = tree(
        {
            "lib/__init__.py": "",
            "api/r.py": "import os\n\nfrom lib import db\nimport lib.missing\n" + HANDLER,
        }
    )
    with pytest.raises(BuildError) as info:
        build(root)
    assert info.value.problems == [
        "api/r.py:4: imports 'lib.missing', which is not a module of this project"
    ]


def test_relative_import_beyond_top_level_is_an_error(tree):
    root = tree(
        {
            "lib/__init__.py": "",
            "ns/thing.py": "from ..lib import x\n",
            "top.py": "from .lib import x\n",
            "api/r.py": "import ns.thing\nimport top\n" + HANDLER,
        }
    )
    with pytest.raises(BuildError) as info:
        build(root)
    assert info.value.problems == [
        "ns/thing.py:1: relative import beyond the top-level package",
        "top.py:1: relative import beyond the top-level package",
    ]


def test_stdlib_and_third_party_are_not_nodes(tree):
    root = tree(
        {
            "lib/__init__.py": "import json\nimport os.path\nfrom collections import OrderedDict\n",
            "api/r.py": "import lib\nimport click\nimport msgspec.json\nfrom email import message\n"
            + HANDLER,
        }
    )
    edges = edges_of(root)
    assert edges == {"api.r": ["lib"], "lib": []}
    assert closures_of(root) == {"/api/r": ["api.r", "lib"]}


def test_namespace_packages(tree):
    root = tree(
        {
            "plugins/alpha.py": "from plugins import beta\n",
            "plugins/beta.py": "",
            "plugins/deep/gamma.py": "from ..alpha import *\nfrom . import delta\n",
            "plugins/deep/delta.py": "",
            "api/r.py": "import plugins.deep.gamma\nfrom plugins.deep import delta\n" + HANDLER,
        }
    )
    edges = edges_of(root)
    # Namespace packages have no module of their own: no node, no edge.
    assert edges == {
        "api.r": ["plugins.deep.delta", "plugins.deep.gamma"],
        "plugins.alpha": ["plugins.beta"],
        "plugins.beta": [],
        "plugins.deep.delta": [],
        "plugins.deep.gamma": ["plugins.alpha", "plugins.deep.delta"],
    }
    assert closures_of(root)["/api/r"] == [
        "api.r", "plugins.alpha", "plugins.beta", "plugins.deep.delta", "plugins.deep.gamma",
    ]  # fmt: skip


def test_source_root_other_than_dot(tree):
    root = tree(
        {
            "pyproject.toml": '[tool.vega]\nsource_roots = ["src", "."]\n',
            "src/app/__init__.py": "X = 1\n",
            "src/app/core.py": "from . import X\n",
            "api/r.py": "from app import core\n" + HANDLER,
        }
    )
    assert edges_of(root) == {"api.r": ["app", "app.core"], "app": [], "app.core": ["app"]}


def test_cycle_builds_and_closes_over_both(tree):
    root = tree(
        {
            "lib/__init__.py": "",
            "lib/a.py": "from lib import b\n\ndef f():\n    return b.g()\n",
            "lib/b.py": "import lib.a\n\ndef g():\n    return 1\n",
            "lib/c.py": "from lib import a\n",
            "api/one.py": "from lib import a\n" + HANDLER,
            "api/two.py": "import lib.b\n" + HANDLER,
            "api/three.py": "import lib\n" + HANDLER,
        }
    )
    edges = edges_of(root)
    assert edges["lib.a"] == ["lib", "lib.b"]
    assert edges["lib.b"] == ["lib", "lib.a"]
    assert closures_of(root) == {
        "/api/one": ["api.one", "lib", "lib.a", "lib.b"],
        "/api/three": ["api.three", "lib"],
        "/api/two": ["api.two", "lib", "lib.a", "lib.b"],
    }
    graph = import_graph(edges)
    assert components(graph) == [["lib.a", "lib.b"]]
    by_module = closures(graph, ["lib.a", "lib.b", "lib.c"])
    assert by_module["lib.a"] == by_module["lib.b"] == ["lib", "lib.a", "lib.b"]
    assert by_module["lib.c"] == ["lib", "lib.a", "lib.b", "lib.c"]
    assert dependents(closures_of(root), "lib.b") == ["/api/one", "/api/two"]


def test_generated_project_edges_match_the_generator(tmp_path):
    """217 modules with every import form: edges equal what the generator wrote."""
    from pathlib import PurePosixPath

    benches = str(Path(__file__).resolve().parents[2] / "benches")
    sys.path.insert(0, benches)
    try:
        from generate_project import generate
    finally:
        sys.path.remove(benches)

    project = generate(tmp_path / "gen", 217, seed=5)
    edges = edges_of(project.root)
    path_of = {name: rec.path for name, rec in load_state(project.root / STATE).modules.items()}
    files = set(path_of.values())
    assert len(files) == 217
    expected: dict[str, set[str]] = {f: set() for f in files}
    for edge in project.edges:
        if edge.kind == "type_checking":
            continue
        expected[edge.source].add(edge.target)
        # Importing a submodule runs every enclosing package's __init__.
        for parent in PurePosixPath(edge.target).parents:
            if (init := f"{parent}/__init__.py") in files:
                expected[edge.source].add(init)
    # A module's own packages run first too, whoever imports it.
    for source in expected:
        for parent in PurePosixPath(source).parents:
            if (init := f"{parent}/__init__.py") in files:
                expected[source].add(init)
        expected[source].discard(source)
    got = {path_of[name]: {path_of[d] for d in deps} for name, deps in edges.items()}
    assert got == expected
    # The generator's cycles count module-level imports only; function
    # imports are edges too here, so each of its cycles lies in one of ours.
    cycles = [{path_of[n] for n in c} for c in components(import_graph(edges))]
    assert project.cycles
    for cycle in project.cycles:
        assert any(set(cycle) <= ours for ours in cycles), cycle
