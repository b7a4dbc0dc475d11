"""``vega-dag graph``: DOT output with every module and edge, and ``--why``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from vega_dag.cli import main

HANDLER = "\n\ndef handler(request):\n    return 'ok'\n"
FILES = {
    "lib/__init__.py": "",
    "lib/db.py": "from lib import config\n",
    "lib/config.py": "",
    "lib/cache.py": "import lib.db\n",
    "lib/loop_a.py": "from lib import loop_b\n",
    "lib/loop_b.py": "from lib import loop_a\n",
    "api/users.py": "from lib import db\n" + HANDLER,
    "api/orders/[id].py": "import lib.cache\n" + HANDLER,
    "api/index.py": "import lib.config\n" + HANDLER,
    "api/loop.py": "import lib.loop_a\n" + HANDLER,
    "api/plain.py": "import os\n" + HANDLER,
}
MODULES = [
    "api.index", "api.loop", "api.orders.[id]", "api.plain", "api.users",
    "lib", "lib.cache", "lib.config", "lib.db", "lib.loop_a", "lib.loop_b",
]  # fmt: skip
EDGES = {
    ("api.index", "lib"), ("api.index", "lib.config"),
    ("api.loop", "lib"), ("api.loop", "lib.loop_a"),
    ("api.orders.[id]", "lib"), ("api.orders.[id]", "lib.cache"),
    ("api.users", "lib"), ("api.users", "lib.db"),
    ("lib.cache", "lib"), ("lib.cache", "lib.db"),
    ("lib.config", "lib"),  # a module's own package runs first, whoever imports it
    ("lib.db", "lib"), ("lib.db", "lib.config"),
    ("lib.loop_a", "lib"), ("lib.loop_a", "lib.loop_b"),
    ("lib.loop_b", "lib"), ("lib.loop_b", "lib.loop_a"),
}  # fmt: skip
ROUTE_LABELS = {
    "api.index": "/api",
    "api.loop": "/api/loop",
    "api.orders.[id]": "/api/orders/{id}",
    "api.plain": "/api/plain",
    "api.users": "/api/users",
}


@pytest.fixture
def project(tree) -> Path:
    return tree(FILES)


def graph(*args: str):
    return CliRunner().invoke(main, ["graph", *args])


def parse_dot(dot: str) -> tuple[dict[str, str | None], set[tuple[str, str]]]:
    """(node → route label or None, edges) of vega-dag's DOT."""
    assert dot.startswith("digraph imports {\n")
    assert dot.endswith("}\n")
    nodes: dict[str, str | None] = {}
    edges: set[tuple[str, str]] = set()
    for line in dot.splitlines()[1:-1]:
        line = line.strip()
        if m := re.fullmatch(r'"([^"]+)" -> "([^"]+)";', line):
            edges.add((m.group(1), m.group(2)))
        elif m := re.fullmatch(r'"([^"]+)" \[shape=box, label="([^"\\]+)\\n([^"]+)"\];', line):
            assert m.group(3) == m.group(1)
            nodes[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r'"([^"]+)";', line):
            nodes[m.group(1)] = None
    return nodes, edges


def test_dot_has_every_module_and_edge(project):
    result = graph(str(project))
    assert result.exit_code == 0, result.output
    nodes, edges = parse_dot(result.stdout)
    assert sorted(nodes) == MODULES
    assert {n: label for n, label in nodes.items() if label} == ROUTE_LABELS
    assert edges == EDGES
    # Sorted, hence stable.
    assert result.stdout == graph(str(project)).stdout


def test_output_file(project, tmp_path):
    out = tmp_path / "out.dot"
    result = graph(str(project), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    nodes, edges = parse_dot(out.read_text())
    assert sorted(nodes) == MODULES
    assert edges == EDGES
    assert out.read_text() == graph(str(project)).stdout
    # The cycle is reported on stderr.
    assert "1 import cycle(s)" in result.stderr
    assert "lib.loop_a" in result.stderr and "lib.loop_b" in result.stderr


@pytest.mark.parametrize("spelling", ["lib.db", "lib/db.py", "./lib/db.py"])
def test_why_lists_the_routes_whose_closure_holds_it(project, spelling):
    result = graph(str(project), "--why", spelling)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "/api/orders/{id}\tapi/orders/[id].py",
        "/api/users\tapi/users.py",
    ]


def test_why_of_other_modules(project):
    assert graph(str(project), "--why", "lib.loop_b").stdout.splitlines() == [
        "/api/loop\tapi/loop.py"
    ]
    assert graph(str(project), "--why", "lib").stdout.splitlines() == [
        "/api\tapi/index.py",
        "/api/loop\tapi/loop.py",
        "/api/orders/{id}\tapi/orders/[id].py",
        "/api/users\tapi/users.py",
    ]
    assert graph(str(project), "--why", "lib/config.py").stdout.splitlines() == [
        "/api\tapi/index.py",
        "/api/orders/{id}\tapi/orders/[id].py",
        "/api/users\tapi/users.py",
    ]
    # A route is in its own closure.
    assert graph(str(project), "--why", "api/plain.py").stdout.splitlines() == [
        "/api/plain\tapi/plain.py"
    ]


def test_why_of_a_module_no_route_imports(project):
    (project / "lib/orphan.py").write_text("import lib.db\n")
    result = graph(str(project), "--why", "lib.orphan")
    assert result.exit_code == 0
    assert result.stdout == "lib.orphan: no route imports it; a change rebuilds no bundle\n"


@pytest.mark.parametrize("unknown", ["lib.nope", "lib/nope.py", "os"])
def test_why_of_an_unknown_module_is_an_error(project, unknown):
    result = graph(str(project), "--why", unknown)
    assert result.exit_code == 2
    assert f"{unknown!r} is not a module of this project" in result.output
    assert "--why" in result.output


def test_graph_of_a_broken_project_reports_the_build_error(project):
    (project / "lib/db.py").write_text("import lib.missing\n")
    result = graph(str(project))
    assert result.exit_code == 1
    assert (
        "lib/db.py:1: imports 'lib.missing', which is not a module of this project" in result.output
    )
