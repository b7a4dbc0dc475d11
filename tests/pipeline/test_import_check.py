"""The build's import check: each changed route imported from its bundle alone.

What the graph cannot see (an import by a computed name, a file read at
import time) fails the build when the bundle lacks it and the source tree
has it, naming the importer and the missing module or file; ``include``
fixes it; a hang fails the build after the time limit; nothing changed,
nothing imported.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vega_dag.bundle import importcheck
from vega_dag.pipeline import BuildError, build

FILES = {
    "lib/__init__.py": "",
    "lib/plugins/__init__.py": "",
    "lib/plugins/extra.py": "NAME = 'extra'\n",
    "lib/registry.py": (
        "import importlib\n\n"
        "ENABLED = ['extra']\n"
        "PLUGINS = [importlib.import_module('lib.plugins.' + n) for n in ENABLED]\n"
    ),
    "conf/settings.toml": "debug = false\n",
    "lib/settings.py": "SETTINGS = open('conf/settings.toml').read()\n",
    "api/plugins.py": "from lib import registry\n\n\ndef handler(request):\n    return 1\n",
    "api/settings.py": "from lib import settings\n\n\ndef handler(request):\n    return 1\n",
    "api/plain.py": "def handler(request):\n    return 1\n",
}
INCLUDES = (
    '[tool.vega.per_route."/api/plugins"]\ninclude = ["lib/plugins/extra.py"]\n'
    '[tool.vega.per_route."/api/settings"]\ninclude = ["conf/settings.toml"]\n'
)


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write(tmp_path / "proj", FILES)


@pytest.fixture
def imported(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The modules the check imports (first round), as it runs."""
    seen: list[str] = []
    real = importcheck.run_driver

    def spy(requests: list[dict], *args: object, **kwargs: object) -> dict:
        # The first round imports from bundles (laid out in a temporary directory).
        seen.extend(r["module"] for r in requests if "vega-import-check-" in r["cwd"])
        return real(requests, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importcheck, "run_driver", spy)
    return seen


def test_what_the_bundle_lacks_fails_the_build_naming_it(project):
    with pytest.raises(BuildError) as err:
        build(project)
    problems = err.value.problems
    assert problems == [
        "route /api/plugins (api/plugins.py): importing it from its bundle alone failed: "
        "lib/registry.py:4 imports lib.plugins, which is not in the bundle; add it: "
        '[tool.vega.per_route."/api/plugins"] include = ["lib/plugins/"] '
        "(or [tool.vega] include, for every route)",
        "route /api/settings (api/settings.py): importing it from its bundle alone failed: "
        "lib/settings.py:1 reads conf/settings.toml, which is not in the bundle; add it: "
        '[tool.vega.per_route."/api/settings"] include = ["conf/settings.toml"] '
        "(a path from the project root; or [tool.vega] include, for every route)",
    ]
    # Nothing was recorded: the next build starts from nothing too.
    assert not (project / ".vega" / "state" / "head.msgpack").exists()
    # The check imported from the source tree without writing into it.
    assert not list(project.rglob("__pycache__"))


def test_include_fixes_it(project, imported):
    (project / "pyproject.toml").write_text(INCLUDES)
    result = build(project)
    assert sorted(imported) == ["api.plain", "api.plugins", "api.settings"]
    assert result.bundles_built == 3


def test_only_changed_routes_are_imported(project, imported):
    (project / "pyproject.toml").write_text(INCLUDES)
    build(project)
    imported.clear()
    assert build(project).noop and imported == []
    # A comment: same bytecode, no bundle rebuilt, nothing imported.
    (project / "lib/registry.py").write_text(FILES["lib/registry.py"] + "# note\n")
    assert build(project).bundles_built == 0 and imported == []
    (project / "lib/registry.py").write_text(FILES["lib/registry.py"] + "X = 2\n")
    assert build(project).bundles_built == 1
    assert imported == ["api.plugins"]


def test_a_hang_fails_the_build_naming_the_route(project):
    (project / "pyproject.toml").write_text(INCLUDES + "[tool.vega.import_check]\ntimeout_s = 1\n")
    (project / "api/slow.py").write_text(
        "while True:\n    pass\n\n\ndef handler(r):\n    return 1\n"
    )
    with pytest.raises(BuildError) as err:
        build(project)
    assert err.value.problems == [
        "route /api/slow (api/slow.py): importing it from its bundle did not finish within 1 s "
        "([tool.vega.import_check] timeout_s)"
    ]


def test_a_failure_from_the_source_tree_too_is_left_to_the_deploy(project):
    (project / "pyproject.toml").write_text(INCLUDES)
    (project / "api/broken.py").write_text(
        "raise RuntimeError('no database')\n\n\ndef handler(r):\n    return 1\n"
    )
    (project / "api/exits.py").write_text(
        "import os\nos._exit(3)\n\n\ndef handler(r):\n    return 1\n"
    )
    result = build(project, explain=True)
    assert "/api/broken" in result.routes
    assert (
        "route /api/broken: its import fails from the source tree too "
        "(RuntimeError: no database): left to the deploy's load check"
    ) in result.explain
    assert (
        "route /api/exits: its import fails from the source tree too "
        "(the interpreter exited with status 3): left to the deploy's load check"
    ) in result.explain


def test_the_check_can_be_turned_off(project, imported):
    (project / "pyproject.toml").write_text("[tool.vega.import_check]\nenabled = false\n")
    build(project)
    assert imported == []


def test_a_catch_all_is_imported_from_its_bundle_too(project, imported):
    (project / "pyproject.toml").write_text(INCLUDES)
    (project / "api/docs").mkdir()
    (project / "api/docs/[...slug].py").write_text(
        "from lib import settings\n\n\ndef handler(r):\n    return 1\n"
    )
    with pytest.raises(BuildError) as err:
        build(project)
    # Its name is not importable by dots: the check ran its file, and saw what it lacks.
    assert err.value.problems == [
        "route /api/docs/{slug:path} (api/docs/[...slug].py): importing it from its bundle "
        "alone failed: lib/settings.py:1 reads conf/settings.toml, which is not in the bundle; "
        'add it: [tool.vega.per_route."/api/docs/{slug:path}"] include = ["conf/settings.toml"] '
        "(a path from the project root; or [tool.vega] include, for every route)"
    ]
    (project / "pyproject.toml").write_text(
        INCLUDES
        + '[tool.vega.per_route."/api/docs/{slug:path}"]\ninclude = ["conf/settings.toml"]\n'
    )
    imported.clear()
    build(project)
    assert "api.docs.[...slug]" in imported
