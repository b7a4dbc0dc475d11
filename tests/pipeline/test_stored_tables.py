"""The tables derived from the file list, stored beside the state (``graph.tables``).

A one-shot build whose files were only edited reads them instead of deriving
them again; whatever happens to the file list or to the stored file, a build
is the build a fresh copy of the project gets (same manifest), and nothing
stored is ever an error.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import msgspec
import pytest

from vega_dag import _core
from vega_dag.config import load_config
from vega_dag.graph.tables import (
    TABLES_FILE,
    _TablesFile,
    derive_tables,
    load_tables,
    project_tables,
    scanned_files,
)
from vega_dag.pipeline import build
from vega_dag.scan.project import scan_skip_dirs
from vega_dag.store.state import state_paths

FILES = {
    "lib/__init__.py": "",
    "lib/db.py": "def query():\n    return 1\n",
    "lib/render.py": "from lib.db import query\n\n\ndef page():\n    return query()\n",
    "lib/templates/page.html": "<h1>v1</h1>\n",
    "ns/tool.py": "X = 1\n",
    "api/page.py": "from lib.render import page\n\n\ndef handler(request):\n    return page()\n",
    "api/tool.py": "import ns.tool\n\n\ndef handler(request):\n    return 'tool'\n",
    "api/orders/[id].py": "import lib.db\n\n\ndef handler(request):\n    return 'order'\n",
}


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def tables_path(root: Path) -> Path:
    return state_paths(load_config(root))[1].with_name(TABLES_FILE)


def fresh_manifest(root: Path, tmp_path: Path) -> str:
    """The manifest a copy of the project without any state builds."""
    copy = tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".vega"))
    return build(copy, import_check=False).manifest


def current_key(root: Path) -> tuple:
    """The tables' key for the project as it is now, from a scan as a build's."""
    config = load_config(root)
    changes = _core.detect_changes(
        config.root, _core.StatTable(), time.time_ns(), skip_dirs=scan_skip_dirs(config)
    )
    return scanned_files(changes, config.vega, None)[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = write(tmp_path / "proj", FILES)
    build(root, import_check=False)
    return root


def same_tables(root: Path) -> None:
    """What is stored is exactly what deriving the tables gives now."""
    vega = load_config(root).vega
    key = current_key(root)
    stored = load_tables(tables_path(root), key)
    assert stored is not None
    derived = derive_tables(vega, key)
    assert list(stored.modules.items()) == list(derived.modules.items())
    assert list(stored.routes.items()) == list(derived.routes.items())
    assert stored.module_set == derived.module_set
    assert stored.packages() == derived.packages()
    assert stored.top_level() == derived.top_level()
    assert stored.data() == derived.data()
    assert stored.archive_names() == derived.archive_names()


def edit(root: Path) -> None:
    """Only an edit: the stored tables stand."""
    text = (root / "lib/render.py").read_text()
    (root / "lib/render.py").write_text(text.replace("return query()", "return query() + 1"))


def add_module(root: Path) -> None:
    write(root, {"lib/cache.py": "Z = 1\n"})


def remove_module(root: Path) -> None:
    (root / "ns/tool.py").unlink()
    write(root, {"api/tool.py": "def handler(request):\n    return 'tool'\n"})


def rename_module(root: Path) -> None:
    (root / "lib/db.py").rename(root / "lib/store.py")
    write(
        root,
        {
            "lib/render.py": "from lib.store import query\n\n\ndef page():\n    return query()\n",
            "api/orders/[id].py": "import lib.store\n\n\ndef handler(request):\n    return 1\n",
        },
    )


def add_package(root: Path) -> None:
    write(
        root,
        {
            "extra/__init__.py": "",
            "extra/more.py": "W = 3\n",
            "api/extra.py": "import extra.more\n\n\ndef handler(request):\n    return 'x'\n",
        },
    )


def add_data(root: Path) -> None:
    write(root, {"lib/templates/other.html": "<p/>\n"})


def remove_data(root: Path) -> None:
    (root / "lib/templates/page.html").unlink()


def add_route(root: Path) -> None:
    write(root, {"api/users/index.py": "def handler(request):\n    return 'u'\n"})


def rename_route(root: Path) -> None:
    (root / "api/orders/[id].py").rename(root / "api/orders/[order_id].py")


@pytest.mark.parametrize(
    "change",
    [
        add_module,
        remove_module,
        rename_module,
        add_package,
        add_data,
        remove_data,
        add_route,
        rename_route,
    ],
)
def test_a_build_after_the_file_list_changed_is_a_fresh_build(project, tmp_path, change):
    edit(project)
    assert build(project, import_check=False).manifest == fresh_manifest(project, tmp_path)
    same_tables(project)  # the edit kept them; now the list changes
    before = tables_path(project).read_bytes()
    change(project)
    result = build(project, import_check=False)
    assert result.manifest == fresh_manifest(project, tmp_path)
    assert tables_path(project).read_bytes() != before
    same_tables(project)
    # and an edit after it reads what that build stored
    (project / "lib/db.py").write_text("def query():\n    return 3\n")
    assert build(project, import_check=False).manifest == fresh_manifest(project, tmp_path)


def test_an_edit_reads_the_stored_tables(project, tmp_path, monkeypatch):
    from vega_dag.graph import tables

    derived: list[tuple] = []
    real = tables.derive_tables
    monkeypatch.setattr(
        tables, "derive_tables", lambda vega, key: derived.append(key) or real(vega, key)
    )
    edit(project)  # the fixture's build stored them
    manifest = build(project, import_check=False).manifest
    assert derived == []
    assert manifest == fresh_manifest(project, tmp_path)
    derived.clear()  # the fresh copy's
    (project / "ns/tool.py").write_text("X = 5\n")
    build(project, import_check=False)
    assert derived == []


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"not msgpack at all"), id="garbage"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:100]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
        pytest.param(
            lambda p: p.write_bytes(
                msgspec.msgpack.encode(
                    msgspec.structs.replace(
                        (f := msgspec.msgpack.decode(p.read_bytes(), type=_TablesFile)),
                        payload=f.payload[:-1] + bytes([f.payload[-1] ^ 1]),
                    )
                )
            ),
            id="payload-flipped",
        ),
        pytest.param(
            lambda p: p.write_bytes(
                msgspec.msgpack.encode(
                    msgspec.structs.replace(
                        msgspec.msgpack.decode(p.read_bytes(), type=_TablesFile), version=999
                    )
                )
            ),
            id="other-version",
        ),
        pytest.param(lambda p: p.unlink(), id="missing"),
        pytest.param(lambda p: (p.unlink(), p.mkdir()), id="a-directory"),
    ],
)
def test_a_damaged_tables_file_is_derived_again(project, tmp_path, damage):
    damage(tables_path(project))
    edit(project)
    result = build(project, import_check=False)
    assert result.manifest == fresh_manifest(project, tmp_path)
    if tables_path(project).is_file():
        same_tables(project)


def test_another_projects_tables_are_not_used(project, tmp_path):
    """A tables file copied from another project (another file list) is ignored."""
    other = write(tmp_path / "other", {**FILES, "lib/only_there.py": "Q = 1\n"})
    build(other, import_check=False)
    shutil.copyfile(tables_path(other), tables_path(project))
    edit(project)
    assert build(project, import_check=False).manifest == fresh_manifest(project, tmp_path)
    vega = load_config(project).vega
    assert load_tables(tables_path(project), current_key(project)) is not None
    assert "lib.only_there" not in project_tables(vega, current_key(project)).modules


def test_layout_problems_are_reported_with_stored_tables(project):
    """A file list with a problem is never stored: every build reports it."""
    from vega_dag.pipeline import BuildError

    write(project, {"api/docs/[...slug]/page.py": "def handler(request):\n    return 1\n"})
    for _ in range(2):
        with pytest.raises(BuildError, match="catch-all must be the route's file name"):
            build(project, import_check=False)
