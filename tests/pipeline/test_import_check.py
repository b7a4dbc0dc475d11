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
    # The loop's two lines take turns: either is where it was.
    assert err.value.problems in [
        [
            "route /api/slow (api/slow.py): importing it from its bundle did not finish within "
            f"1 s ([tool.vega.import_check] timeout_s); it was at api/slow.py:{line}"
        ]
        for line in (1, 2)
    ]
    # A hang in a module the route imports names that module.
    (project / "api/slow.py").write_text("import lib.wait\n\n\ndef handler(r):\n    return 1\n")
    (project / "lib/wait.py").write_text("import time\n\nwhile True:\n    time.sleep(0.01)\n")
    with pytest.raises(BuildError) as err:
        build(project)
    assert err.value.problems in [
        [
            "route /api/slow (api/slow.py): importing it from its bundle did not finish within "
            f"1 s ([tool.vega.import_check] timeout_s); it was at lib/wait.py:{line}"
        ]
        for line in (3, 4)
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


def test_a_bundle_checked_before_is_not_imported_again(project, imported):
    (project / "pyproject.toml").write_text(INCLUDES)
    build(project)
    original = FILES["lib/registry.py"]
    (project / "lib/registry.py").write_text(original + "X = 2\n")
    build(project)
    assert imported[-1:] == ["api.plugins"]
    imported.clear()
    # The undo brings back a bundle the first build imported.
    (project / "lib/registry.py").write_text(original)
    assert build(project).bundles_built == 0
    assert imported == []
    # Another environment: every route is imported again, once.
    with_env = '[tool.vega]\nenv = { A = "1" }\n\n' + INCLUDES
    (project / "pyproject.toml").write_text(with_env)
    build(project)
    assert sorted(imported) == ["api.plain", "api.plugins", "api.settings"]
    imported.clear()
    (project / "pyproject.toml").write_text(INCLUDES)
    build(project)
    (project / "pyproject.toml").write_text(with_env)
    build(project)
    assert imported == []  # both environments' verdicts stand


def test_the_driver_stays_and_is_started_again_when_it_died(project):
    (project / "pyproject.toml").write_text(INCLUDES)
    build(project)
    driver = importcheck._driver
    assert driver is not None and driver.alive()
    (project / "lib/registry.py").write_text(FILES["lib/registry.py"] + "X = 2\n")
    build(project)
    assert importcheck._driver is driver  # one interpreter start for many builds
    driver.proc.kill()
    driver.proc.wait()
    (project / "lib/registry.py").write_text(FILES["lib/registry.py"] + "X = 3\n")
    assert build(project).bundles_built == 1
    assert importcheck._driver is not driver and importcheck._driver.alive()


def test_an_edit_the_import_does_not_run_imports_nothing(project, imported):
    registry = FILES["lib/registry.py"]
    files = {
        "lib/plugins/extra.py": (
            "NAME = 'extra'\n\n\ndef helper():\n    return 1\n\n\n"
            "def setup():\n    return 'ready'\n\n\nSTATE = setup()\n"
        ),
        "lib/registry.py": registry + "\n\ndef lookup(name):\n    return PLUGINS[0].NAME\n",
    }
    write(project, files)
    (project / "pyproject.toml").write_text(INCLUDES)
    build(project)
    imported.clear()
    # Inside functions the import never calls: the bundle changes, no import runs.
    write(project, {"lib/registry.py": files["lib/registry.py"].replace("[0]", "[-1]")})
    write(project, {"lib/plugins/extra.py": files["lib/plugins/extra.py"].replace("1\n", "2\n")})
    result = build(project, explain=True)
    assert result.bundles_built == 1 and imported == []
    assert (
        "route /api/plugins: its import runs only code that has not changed since it passed: "
        "not imported again"
    ) in result.explain
    # A function the import calls, or a module's body: imported.
    write(project, {"lib/plugins/extra.py": files["lib/plugins/extra.py"].replace("ready", "set")})
    build(project)
    assert imported == ["api.plugins"]
    imported.clear()
    write(project, {"lib/registry.py": files["lib/registry.py"] + "Y = 1\n"})
    build(project)
    assert imported == ["api.plugins"]


def test_code_that_hides_what_it_runs_is_imported_every_time(project, imported):
    quiet = "import sys\n\nsys.settrace(None)\n\n\ndef handler(request):\n    return {}\n"
    write(project, {"api/quiet.py": quiet})
    (project / "pyproject.toml").write_text(INCLUDES)
    build(project)
    imported.clear()
    write(project, {"api/quiet.py": quiet.replace("{}", "{'a': 1}")})
    build(project)
    assert imported == ["api.quiet"]


def test_a_modules_code_digest_is_computed_once_for_every_route_that_holds_it(monkeypatch):
    """verdicts.code_digest_of remembers by (pyc digest, what ran): same digest, one read."""
    import importlib.util

    from vega_dag import _core
    from vega_dag.bundle import verdicts

    source = "import os\n\ndef f():\n    return 1\n\nX = f()\n"
    pyc = importlib.util.MAGIC_NUMBER + b"\0" * 12
    pyc += __import__("marshal").dumps(compile(source, "lib/m.py", "exec"))
    digest = _core.hash_bytes(pyc)
    ran = frozenset({("<module>", 1), ("f", 3)})
    reads: list[str] = []

    def fetch(d: str) -> bytes:
        reads.append(d)
        return pyc

    monkeypatch.setattr(verdicts, "_code_digests", {})
    first = verdicts.code_digest_of(digest, ran, fetch)
    assert first == verdicts.code_digest(pyc, ran)
    assert verdicts.code_digest_of(digest, ran, fetch) == first
    assert verdicts.code_digest_of(digest, frozenset({("<module>", 1)}), fetch) != first
    assert reads == [digest, digest]  # once per (digest, what ran)
