"""Exact incremental counts: what a change recompiles and which bundles it rebuilds.

The project: three shared modules and five routes with known closures

    shared_a                      /api/r1 → r1, shared_a
    shared_b → shared_a           /api/r2 → r2, shared_b, shared_a
    shared_c                      /api/r3 → r3, shared_c
                                  /api/r4 → r4, shared_b, shared_a, shared_c
                                  /api/r5 → r5 (imports nothing first-party)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vega_dag.cli import main
from vega_dag.pipeline import BuildError, build
from vega_dag.store.state import load_state

FILES = {
    "shared_a.py": "VALUE = 1  # the base value\n\n\ndef a():\n    return VALUE\n",
    "shared_b.py": (
        "import shared_a\n\nSCALE = 2  # a trailing comment\n\n\n"
        "def b():\n    return shared_a.a() * SCALE\n"
    ),
    "shared_c.py": "def c():\n    return 'c'\n",
    "api/r1.py": "from shared_a import a\n\n\ndef handler(request):\n    return a()\n",
    "api/r2.py": "import shared_b\n\n\ndef handler(request):\n    return shared_b.b()\n",
    "api/r3.py": (
        "import json\n\nimport shared_c\n\n\ndef handler(request):\n    return shared_c.c()\n"
    ),
    "api/r4.py": (
        "import shared_b\nimport shared_c\n\n\n"
        "def handler(request):\n    return shared_b.b(), shared_c.c()\n"
    ),
    "api/r5.py": "import os\n\n\ndef handler(request):\n    return os.sep\n",
}
ROUTES = ["/api/r1", "/api/r2", "/api/r3", "/api/r4", "/api/r5"]
MODULES = len(FILES)
#: shared module → the routes whose closure holds it
DEPENDENTS = {
    "shared_a.py": {"/api/r1", "/api/r2", "/api/r4"},
    "shared_b.py": {"/api/r2", "/api/r4"},
    "shared_c.py": {"/api/r3", "/api/r4"},
}
JSON_KEYS = {
    "manifest",
    "modules_compiled",
    "modules_cached",
    "bundles_built",
    "bundles_cached",
    "seconds",
}


@pytest.fixture
def project(tree) -> Path:
    return tree(FILES)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))


def changed_routes(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert set(before) <= set(after)
    return {p for p in before if before[p] != after[p]}


def test_first_build_then_noop(project):
    first = build(project)
    assert (first.modules_compiled, first.modules_cached) == (MODULES, 0)
    assert (first.bundles_built, first.bundles_cached) == (5, 0)
    assert sorted(first.routes) == ROUTES
    assert first.compiled == sorted(FILES)
    assert len(set(first.routes.values())) == 5

    again = build(project)
    assert (again.modules_compiled, again.modules_cached) == (0, MODULES)
    assert (again.bundles_built, again.bundles_cached) == (0, 5)
    assert again.manifest == first.manifest
    assert again.routes == first.routes
    assert again.compiled == []


@pytest.mark.parametrize("module", sorted(DEPENDENTS))
def test_code_change_rebuilds_exactly_the_dependent_routes(project, module):
    first = build(project)
    path = project / module
    path.write_text(path.read_text() + "\n\ndef extra():\n    return 42\n")

    result = build(project)
    assert result.modules_compiled == 1
    assert result.modules_cached == MODULES - 1
    assert result.compiled == [module]
    assert result.bundles_built == len(DEPENDENTS[module])
    assert result.bundles_cached == 5 - len(DEPENDENTS[module])
    assert changed_routes(first.routes, result.routes) == DEPENDENTS[module]
    assert result.manifest != first.manifest


def test_route_change_rebuilds_only_that_route(project):
    first = build(project)
    edit(project / "api/r3.py", "return shared_c.c()", "return shared_c.c() * 2")
    result = build(project)
    assert (result.modules_compiled, result.modules_cached) == (1, MODULES - 1)
    assert (result.bundles_built, result.bundles_cached) == (1, 4)
    assert changed_routes(first.routes, result.routes) == {"/api/r3"}


def test_comment_only_change_is_cut_off_early(project):
    first = build(project)
    edit(project / "shared_b.py", "# a trailing comment", "# another comment text, longer")
    result = build(project)
    assert result.modules_compiled == 1
    assert result.modules_cached == MODULES - 1
    assert result.compiled == ["shared_b.py"]
    assert result.bundles_built == 0
    assert result.bundles_cached == 5
    assert result.routes == first.routes
    # The source digest is part of the manifest, so it does change.
    assert result.manifest != first.manifest


def test_revert_is_served_from_the_cache(project):
    first = build(project)
    path = project / "shared_a.py"
    original = path.read_text()
    edit(path, "VALUE = 1", "VALUE = 3")
    changed = build(project)
    assert changed.modules_compiled == 1
    path.write_text(original)
    reverted = build(project)
    assert (reverted.modules_compiled, reverted.bundles_built) == (0, 0)
    assert reverted.routes == first.routes
    assert reverted.manifest == first.manifest


def test_new_import_edge_rebuilds_the_importer_only(project):
    first = build(project)
    edit(project / "api/r5.py", "import os\n", "import os\n\nimport shared_c\n")
    result = build(project)
    assert (result.modules_compiled, result.bundles_built) == (1, 1)
    assert changed_routes(first.routes, result.routes) == {"/api/r5"}
    # The new edge is in the closure: a change to shared_c now reaches r5.
    edit(project / "shared_c.py", "return 'c'", "return 'C'")
    after = build(project)
    assert changed_routes(result.routes, after.routes) == {"/api/r3", "/api/r4", "/api/r5"}


def test_adding_a_route(project):
    first = build(project)
    (project / "api/orders").mkdir()
    (project / "api/orders/[id].py").write_text(
        "import shared_c\n\n\ndef handler(request):\n    return shared_c.c()\n"
    )
    result = build(project)
    assert (result.modules_compiled, result.modules_cached) == (1, MODULES)
    assert result.compiled == ["api/orders/[id].py"]
    assert (result.bundles_built, result.bundles_cached) == (1, 5)
    assert sorted(result.routes) == sorted([*ROUTES, "/api/orders/{id}"])
    assert {p: result.routes[p] for p in ROUTES} == first.routes


def test_removing_a_route(project):
    first = build(project)
    (project / "api/r5.py").unlink()
    result = build(project)
    assert (result.modules_compiled, result.modules_cached) == (0, MODULES - 1)
    assert (result.bundles_built, result.bundles_cached) == (0, 4)
    assert result.routes == {p: d for p, d in first.routes.items() if p != "/api/r5"}
    assert result.manifest != first.manifest


def test_deleting_an_imported_module_names_each_importer(tree):
    root = tree(
        {
            "lib/__init__.py": "",
            "lib/db.py": "def get():\n    return 1\n",
            "lib/cache.py": "import os\n\nfrom lib.db import get\n",
            "api/a.py": "import lib.db\n\n\ndef handler(request):\n    return lib.db.get()\n",
            "api/b.py": "import json\n\nfrom lib import cache\n\n\ndef handler(request):\n    return 1\n",  # noqa: E501
        }
    )
    first = build(root)
    (root / "lib/db.py").unlink()
    with pytest.raises(BuildError) as info:
        build(root)
    assert info.value.problems == [
        "api/a.py:1: imports 'lib.db', which is not a module of this project",
        "lib/cache.py:3: imports 'lib.db', which is not a module of this project",
    ]
    # Nothing was recorded: restoring the file gives back the first build.
    (root / "lib/db.py").write_text("def get():\n    return 1\n")
    again = build(root)
    assert (again.modules_compiled, again.bundles_built) == (0, 0)
    assert again.manifest == first.manifest


def test_deleting_an_imported_top_level_module_is_an_error(project):
    # Caught against the last build's module table (a name importable from
    # nowhere that was first-party); an unknown top-level name in a fresh
    # project is still presumed third-party.
    build(project)
    (project / "shared_c.py").unlink()
    with pytest.raises(BuildError) as info:
        build(project)
    assert info.value.problems == [
        "api/r3.py:3: imports 'shared_c', which is not a module of this project",
        "api/r4.py:2: imports 'shared_c', which is not a module of this project",
    ]


def test_explain_names_the_changed_file(project):
    runner = CliRunner()
    assert runner.invoke(main, ["build", str(project), "-q"]).exit_code == 0
    edit(project / "shared_c.py", "return 'c'", "return 'cc'")
    result = runner.invoke(main, ["build", str(project), "--explain"])
    assert result.exit_code == 0, result.output
    why = [
        line.strip()
        for line in result.output.splitlines()
        # The import check's own lines (routes it did not import) are not misses.
        if line.strip().startswith("why:") and not line.rstrip().endswith("not imported again")
    ]
    assert len(why) == 3, result.output
    assert why[0].startswith("why: shared_c.py: source changed (")
    assert sorted(why[1:]) == [
        "why: route /api/r3: compiled output changed: shared_c.pyc",
        "why: route /api/r4: compiled output changed: shared_c.pyc",
    ]
    assert "(1 modules compiled, 7 from cache; 2 bundles built, 3 from cache)" in result.output

    noop = runner.invoke(main, ["build", str(project), "--explain"])
    assert "why: nothing was rebuilt: every output came from the cache" in noop.output


def test_cli_json_keys_and_counts(project):
    runner = CliRunner()
    first = runner.invoke(main, ["build", str(project), "--json"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert set(data) >= JSON_KEYS
    assert (data["modules_compiled"], data["modules_cached"]) == (MODULES, 0)
    assert (data["bundles_built"], data["bundles_cached"]) == (5, 0)
    assert isinstance(data["seconds"], float) and data["seconds"] >= 0
    assert sorted(data["routes"]) == ROUTES

    edit(project / "shared_a.py", "VALUE = 1", "VALUE = 5")
    proc = subprocess.run(
        ["vega-dag", "build", str(project), "--json"], capture_output=True, text=True, check=True
    )
    second = json.loads(proc.stdout)
    assert set(second) >= JSON_KEYS
    assert (second["modules_compiled"], second["modules_cached"]) == (1, MODULES - 1)
    assert (second["bundles_built"], second["bundles_cached"]) == (3, 2)
    assert changed_routes(data["routes"], second["routes"]) == DEPENDENTS["shared_a.py"]
    assert second["manifest"] != data["manifest"]
    assert second["compiled"] == ["shared_a.py"]


def test_cli_json_error(project):
    (project / "api/r1.py").write_text("from shared_a import not_a_module\nimport shared_a.zzz\n")
    result = CliRunner().invoke(main, ["build", str(project), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "error": ["api/r1.py:2: imports 'shared_a.zzz', which is not a module of this project"]
    }


def test_generated_project_touches(tmp_path):
    """On 217 generated modules: comment edits rebuild nothing, code edits exactly their routes."""
    benches = str(Path(__file__).resolve().parents[2] / "benches")
    sys.path.insert(0, benches)
    try:
        from generate_project import generate as generate_project
        from generate_project import touch_comment, touch_modules
    finally:
        sys.path.remove(benches)

    project = generate_project(tmp_path / "gen", 217, seed=11)
    first = build(project.root)
    assert (first.modules_compiled, first.bundles_built) == (217, len(project.routes))

    commented = touch_comment(project, 5, seed=1)
    result = build(project.root)
    assert result.compiled == sorted(p.relative_to(project.root).as_posix() for p in commented)
    assert (result.modules_compiled, result.modules_cached) == (5, 212)
    assert (result.bundles_built, result.routes) == (0, first.routes)

    touched = touch_modules(project, 3, seed=2)
    names = {
        name
        for name, rec in load_state(project.root / ".vega/state/build.msgpack").modules.items()
        if project.root / rec.path in touched
    }
    closures = load_state(project.root / ".vega/state/build.msgpack").closures
    expected = {pattern for pattern, closure in closures.items() if names & set(closure)}
    assert expected
    after = build(project.root)
    assert (after.modules_compiled, after.modules_cached) == (3, 214)
    assert after.bundles_built == len(expected)
    assert changed_routes(result.routes, after.routes) == expected
