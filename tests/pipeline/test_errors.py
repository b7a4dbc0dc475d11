"""Bad input gets a clear error naming the file (and line), and loses nothing.

A failed build records nothing as a success: the state, action cache and
store index stay as the last good build left them, and the next build after
the fix succeeds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from vega_dag import _core
from vega_dag.bundle.routes import RouteExportError
from vega_dag.cli import main
from vega_dag.compile.bytecode import compile_source
from vega_dag.compile.toolchain import current_toolchain
from vega_dag.config import ConfigError
from vega_dag.pipeline import BuildError, Reporter, build
from vega_dag.store.actions import ActionCache, action_key
from vega_dag.store.objects import CorruptObjectError, ObjectStore
from vega_dag.store.state import load_state

HANDLER = "\n\ndef handler(request):\n    return 'ok'\n"
FILES = {
    "lib/__init__.py": "",
    "lib/db.py": "ROWS = [1, 2, 3]\n\n\ndef count():\n    return len(ROWS)\n",
    "lib/unused.py": "X = 1\n",
    "api/items.py": "from lib import db\n\n\ndef handler(request):\n    return db.count()\n",
    "api/health.py": "import os\n" + HANDLER,
}


@pytest.fixture
def project(tree) -> Path:
    return tree(FILES)


def state_files(root: Path) -> dict[str, bytes]:
    """Every file under .vega that records what a build did."""
    vega = root / ".vega"
    return {
        p.relative_to(vega).as_posix(): p.read_bytes()
        for p in sorted(vega.rglob("*"))
        if p.is_file() and p.name != "lock" and not p.name.startswith("stat.")
    }


def cli(root: Path, *args: str):
    return CliRunner().invoke(main, ["build", str(root), *args])


def compile_key(root: Path, path: str) -> str:
    digest = _core.hash_file(root / path)
    return action_key("compile", digest, path, current_toolchain().key)


def test_syntax_error_names_file_and_line_and_records_nothing(project):
    first = build(project)
    recorded = state_files(project)
    (project / "lib/db.py").write_text("ROWS = [1, 2, 3]\n\n\ndef count()\n    return len(ROWS)\n")
    (project / "lib/unused.py").write_text("X = 2\n")  # compiles fine, in the same failed build

    result = cli(project)
    assert result.exit_code == 1
    assert "✗ Build failed" in result.output
    assert "lib/db.py:4: SyntaxError: expected ':'" in result.output
    # Nothing of the failed build was recorded, not even the module that compiled.
    assert state_files(project) == recorded
    actions = ActionCache(project / ".vega/state/actions.msgpack")
    assert actions.get(compile_key(project, "lib/db.py")) is None
    assert actions.get(compile_key(project, "lib/unused.py")) is None
    assert load_state(project / ".vega/state/build.msgpack").manifest == first.manifest

    (project / "lib/db.py").write_text(FILES["lib/db.py"].replace("[1, 2, 3]", "[1, 2]"))
    fixed = build(project)
    assert fixed.compiled == ["lib/db.py", "lib/unused.py"]
    assert fixed.bundles_built == 1
    assert ActionCache(project / ".vega/state/actions.msgpack").get(
        compile_key(project, "lib/db.py")
    )


def test_syntax_error_on_a_cold_build_records_nothing(project):
    (project / "api/items.py").write_text("def handler(request):\n    return 1 +\n")
    with pytest.raises(BuildError) as info:
        build(project)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("api/items.py:2: SyntaxError: invalid syntax")
    assert not (project / ".vega/state/build.msgpack").exists()
    assert not (project / ".vega/state/actions.msgpack").exists()
    assert not list((project / ".vega").glob("packs/*.pack"))

    (project / "api/items.py").write_text(FILES["api/items.py"])
    result = build(project)
    assert result.modules_compiled == len(FILES)
    assert result.bundles_built == 2


def test_missing_first_party_module_names_importer_and_line(project):
    (project / "api/items.py").write_text(
        "import json\nfrom lib import db\nfrom lib.dbx import count\n" + HANDLER
    )
    result = cli(project)
    assert result.exit_code == 1
    assert (
        "api/items.py:3: imports 'lib.dbx', which is not a module of this project" in result.output
    )


def test_route_without_entry_point(project):
    (project / "api/items.py").write_text(
        "from lib import db\n\n\ndef serve(request):\n    return 1\n"
    )
    with pytest.raises(BuildError) as info:
        build(project)
    assert info.value.problems == [str(RouteExportError("api/items.py", "/api/items"))]
    assert "api/items.py: route /api/items exports nothing runnable" in info.value.problems[0]
    # A name bound only in a function or under TYPE_CHECKING does not count.
    (project / "api/items.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from lib.db import count as handler\n"
        "def make():\n    app = 1\n    return app\n"
    )
    result = cli(project)
    assert result.exit_code == 1
    assert "api/items.py: route /api/items exports nothing runnable" in result.output


def test_non_utf8_source_without_cookie(project):
    (project / "lib/db.py").write_bytes(
        b'ROWS = []\nNAME = "caf\xe9"\n\ndef count():\n    return 0\n'
    )
    result = cli(project)
    assert result.exit_code == 1
    assert "lib/db.py:2: source is not valid UTF-8" in result.output
    # With a coding declaration the same bytes are fine.
    (project / "lib/db.py").write_bytes(
        b'# -*- coding: latin-1 -*-\nROWS = []\nNAME = "caf\xe9"\n\ndef count():\n    return 0\n'
    )
    assert cli(project).exit_code == 0


def test_symlink_leaving_the_project(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("TOKEN = 'x'\n")
    (project / "lib/secret.py").symlink_to(outside / "secret.py")
    result = cli(project)
    assert result.exit_code == 1
    assert f"lib/secret.py: symlink to {outside / 'secret.py'} leaves the project" in result.output
    (project / "lib/secret.py").unlink()
    assert cli(project).exit_code == 0


def test_bad_tool_vega_key(project):
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.vega]\nroute = "api"\n')
    with pytest.raises(ConfigError) as info:
        build(project)
    assert info.value.path == project.resolve() / "pyproject.toml"
    assert "route" in str(info.value)
    result = cli(project)
    assert result.exit_code == 1
    assert f"{project.resolve() / 'pyproject.toml'}: [tool.vega]" in result.output
    assert "`route`" in result.output

    (project / "pyproject.toml").write_text("[tool.vega]\noptimize = 3\n")
    result = cli(project)
    assert result.exit_code == 1
    assert "pyproject.toml: optimize must be 0, 1 or 2, not 3" in result.output


@pytest.mark.parametrize("key", ["routes", "store", "lock"])
def test_config_paths_must_stay_inside_the_project(project, key):
    # A lock outside the project is outside the scan: a no-op build would not
    # notice it change and would serve a stale layer.
    (project / "pyproject.toml").write_text(f'[tool.vega]\n{key} = "../elsewhere"\n')
    result = cli(project)
    assert result.exit_code == 1
    where = project.resolve() / "pyproject.toml"
    assert f"{where}: '../elsewhere' must be a path inside the project" in result.output


def test_file_changed_mid_build(project):
    target = project / "lib/db.py"

    def change(count: int) -> None:
        target.write_text(FILES["lib/db.py"].replace("[1, 2, 3]", "[4, 5, 6, 7]"))

    with pytest.raises(BuildError) as info:
        build(project, reporter=Reporter(on_compile_start=change))
    assert info.value.problems == ["lib/db.py: changed during the build; run the build again"]
    assert not (project / ".vega/state/build.msgpack").exists()

    rerun = build(project)
    assert rerun.modules_compiled == len(FILES)
    state = load_state(project / ".vega/state/build.msgpack")
    assert state.modules["lib.db"].source == _core.hash_file(target)
    assert ObjectStore(project / ".vega").get(state.modules["lib.db"].pyc) == compile_source(
        target.read_bytes(), "lib/db.py"
    )


def test_file_vanished_mid_build(project):
    first = build(project)
    (project / "lib/unused.py").write_text("X = 2\n")

    def vanish(count: int) -> None:
        (project / "lib/unused.py").unlink()

    with pytest.raises(BuildError) as info:
        build(project, reporter=Reporter(on_compile_start=vanish))
    assert info.value.problems == ["lib/unused.py: vanished during the build; run the build again"]

    rerun = build(project)
    assert (rerun.modules_compiled, rerun.modules_cached) == (0, len(FILES) - 1)
    assert rerun.routes == first.routes


class _CoreBetweenScanAndParse:
    """``_core`` as the pipeline sees it, running ``act`` right before the parse step."""

    def __init__(self, act) -> None:
        self.act = act

    def __getattr__(self, name: str):
        return getattr(_core, name)

    def scan_imports_files(self, root, paths):
        self.act()
        return _core.scan_imports_files(root, paths)


@pytest.mark.parametrize(
    ("act", "message"),
    [
        ("delete", "lib/unused.py: vanished during the build; run the build again"),
        ("edit", "lib/unused.py: changed during the build; run the build again"),
    ],
)
def test_file_vanished_or_changed_between_scan_and_parse(project, monkeypatch, act, message):
    from vega_dag.graph import parse

    target = project / "lib/unused.py"

    def disturb() -> None:
        if act == "delete":
            target.unlink()
        else:
            target.write_text("X = 'changed'\n")

    monkeypatch.setattr(parse, "_core", _CoreBetweenScanAndParse(disturb))
    with pytest.raises(BuildError) as info:
        build(project)
    assert info.value.problems == [message]
    monkeypatch.undo()
    rerun = build(project)
    expected = len(FILES) - 1 if act == "delete" else len(FILES)
    assert rerun.modules_compiled == expected


def _pack_location(root: Path, digest: str) -> tuple[Path, int, int]:
    store = ObjectStore(root / ".vega")
    loc = store.index.objects[digest]
    return root / ".vega" / "packs" / loc.pack, loc.offset, loc.length


def _damage(root: Path, digest: str) -> None:
    pack, offset, length = _pack_location(root, digest)
    data = bytearray(pack.read_bytes())
    middle = offset + length // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    pack.write_bytes(bytes(data))


def fresh_manifest(root: Path, tmp_path: Path) -> str:
    copy = tmp_path / "fresh-copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".vega"))
    return build(copy).manifest


def test_damaged_module_object_is_detected_and_rebuilt(project, tmp_path):
    build(project)
    state = load_state(project / ".vega/state/build.msgpack")
    pyc = state.modules["lib.db"].pyc
    _damage(project, pyc)
    with pytest.raises(CorruptObjectError) as info:
        ObjectStore(project / ".vega").get(pyc)
    assert info.value.digest == pyc

    # A change that rebundles /api/items reads the damaged lib/db.pyc.
    (project / "api/items.py").write_text(
        FILES["api/items.py"].replace("db.count()", "db.count() + 1")
    )
    result = build(project)
    assert result.compiled == ["api/items.py"]
    assert result.bundles_built == 1
    store = ObjectStore(project / ".vega")
    good = compile_source((project / "lib/db.py").read_bytes(), "lib/db.py")
    assert store.get(pyc) == good
    assert _core.read_archive(store.get(result.routes["/api/items"]))["lib/db.pyc"] == good
    assert result.manifest == fresh_manifest(project, tmp_path)


def test_damaged_bundle_is_never_served(project, tmp_path):
    first = build(project)
    bundle = first.routes["/api/items"]
    _damage(project, bundle)
    with pytest.raises(CorruptObjectError):
        ObjectStore(project / ".vega").get(bundle)
    again = build(project)
    assert again.manifest == first.manifest == fresh_manifest(project, tmp_path)


@pytest.mark.parametrize("damaged", ["bundle", "module"])
def test_verify_rebuilds_damaged_outputs(project, tmp_path, damaged):
    first = build(project)
    state = load_state(project / ".vega/state/build.msgpack")
    digest = first.routes["/api/items"] if damaged == "bundle" else state.modules["lib.db"].pyc
    _damage(project, digest)

    result = cli(project, "--verify", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    if damaged == "bundle":
        assert (data["modules_compiled"], data["bundles_built"]) == (0, 1)
    else:
        assert (data["compiled"], data["bundles_built"]) == (["lib/db.py"], 0)
    assert data["routes"] == first.routes
    assert data["manifest"] == first.manifest == fresh_manifest(project, tmp_path)
    store = ObjectStore(project / ".vega")
    store.check(digest)  # the repaired output reads back, verified against its digest
    for bundle in data["routes"].values():
        store.get(bundle)


def test_damaged_manifest_is_rebuilt(project, tmp_path):
    first = build(project)
    _damage(project, first.manifest)
    with pytest.raises(CorruptObjectError):
        ObjectStore(project / ".vega").get(first.manifest)
    again = build(project)
    assert again.manifest == first.manifest == fresh_manifest(project, tmp_path)
    assert ObjectStore(project / ".vega").get(again.manifest)


def test_damaged_pack_index_rebuilds_everything(project, tmp_path):
    first = build(project)
    (project / ".vega/packs/index.msgpack").write_bytes(b"\x00garbage")
    (project / "lib/unused.py").write_text("X = 5\n")
    result = build(project)
    assert result.modules_compiled == len(FILES)
    assert result.bundles_built == 2
    assert result.routes == first.routes
    assert result.manifest == fresh_manifest(project, tmp_path)
