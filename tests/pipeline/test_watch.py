"""The build daemon's file watcher: a build stats only files that had events,
and walks the tree whenever an event is not a plain edit of a listed file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline.two_routes import FILES
from vega_dag.config import load_config
from vega_dag.daemon import warm
from vega_dag.pipeline import BuildError, build
from vega_dag.scan import watch as watch_mod
from vega_dag.scan.project import scan_skip_dirs


@pytest.fixture
def resident(monkeypatch):
    """This test process behaves as the daemon does (warm caches, a watcher)."""
    monkeypatch.setattr(warm, "_enabled", True)
    monkeypatch.setattr(warm, "_files", {})
    monkeypatch.setattr(warm, "_derived", {})
    monkeypatch.setattr(watch_mod, "_watchers", {})
    yield
    for w in watch_mod._watchers.values():
        w.close()


def watched(root: Path, modules: int = len(FILES)) -> watch_mod.TreeWatcher:
    config = load_config(root)
    w = watch_mod.watch(config.root, scan_skip_dirs(config))
    assert w is not None
    first = build(root)
    assert first.modules_compiled == modules and w.scans == 1
    return w


def fresh(root: Path, tmp_path: Path) -> str:
    """The manifest a one-shot build of a copy of the tree gives (no watcher)."""
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".vega"))
    out = subprocess.run(
        [sys.executable, "-m", "vega_dag", "build", "--json", str(copy)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)["manifest"]


def test_an_edit_is_built_without_walking_the_tree(tree, resident, tmp_path):
    root = tree(FILES)
    w = watched(root)
    assert build(root).noop and w.scans == 1
    (root / "lib/util.py").write_text("def twice(x):\n    return x + x\n")
    result = build(root)
    assert result.compiled == ["lib/util.py"] and result.bundles_built == 1
    assert w.scans == 1 and not w.dirty
    # An editor's save by rename over the old name is an edit too.
    tmp = root / "lib/.names.py.swp"
    tmp.write_text("NAME = 'm'\n")
    os.replace(tmp, root / "lib/names.py")
    result = build(root)
    assert result.compiled == ["lib/names.py"] and w.scans == 1
    assert result.manifest == fresh(root, tmp_path)


@pytest.mark.parametrize("change", ["new", "deleted", "ignored", "new-dir"])
def test_other_events_walk_the_tree(tree, resident, tmp_path, change):
    root = tree(FILES)
    w = watched(root)
    if change == "new":
        (root / "lib/extra.py").write_text("E = 1\n")
    elif change == "deleted":
        (root / "api/names.py").unlink()
    elif change == "ignored":
        (root / ".vegaignore").write_text("api/names.py\n")
    else:
        (root / "lib/sub").mkdir()
        (root / "lib/sub/deep.py").write_text("D = 1\n")
    result = build(root)
    assert w.scans == 2, w.last_reason
    routes = set(result.routes)
    assert routes == ({"/api"} if change in ("deleted", "ignored") else {"/api", "/api/names"})
    assert result.manifest == fresh(root, tmp_path)
    # Then edits are plain again, new directory included.
    target = root / ("lib/sub/deep.py" if change == "new-dir" else "lib/util.py")
    target.write_text(target.read_text() + "\nLATER = 2\n")
    again = build(root)
    assert again.modules_compiled == 1 and w.scans == 2, w.last_reason


def test_a_failed_build_keeps_the_events_for_the_next(tree, resident, tmp_path):
    root = tree(FILES)
    w = watched(root)
    (root / "lib/util.py").write_text("def twice(x):\n    return x * 2\n")
    (root / "lib/names.py").write_text("NAME = (\n")
    with pytest.raises(BuildError):
        build(root)
    (root / "lib/names.py").write_text("NAME = 'fixed'\n")
    result = build(root)
    assert result.compiled == ["lib/names.py", "lib/util.py"] and w.scans == 1
    assert result.manifest == fresh(root, tmp_path)


def test_a_build_by_another_process_is_noticed(tree, resident, tmp_path):
    root = tree(FILES)
    w = watched(root)
    (root / "lib/util.py").write_text("def twice(x):\n    return 2 * x  # other\n")
    subprocess.run(
        [sys.executable, "-m", "vega_dag", "build", "-q", str(root)], check=True, env=os.environ
    )
    (root / "lib/names.py").write_text("NAME = 'later'\n")
    result = build(root)
    # The stat cache is another process's now: the tree is walked.
    assert result.compiled == ["lib/names.py"] and w.scans == 2
    assert "another build" in w.last_reason
    assert result.manifest == fresh(root, tmp_path)


def test_a_tree_with_symlinks_is_always_walked(tree, resident):
    root = tree(FILES)
    (root / "lib/alias.py").symlink_to(root / "lib/names.py")
    w = watched(root, modules=len(FILES) + 1)
    (root / "lib/names.py").write_text("NAME = 'through the link'\n")
    result = build(root)
    assert sorted(result.compiled) == ["lib/alias.py", "lib/names.py"]
    assert w.scans == 2


def test_a_symlink_made_later_stops_trusting_events(tree, resident, tmp_path):
    root = tree(FILES)
    w = watched(root)
    (root / "lib/alias.py").symlink_to(root / "lib/names.py")
    assert build(root).compiled == ["lib/alias.py"] and w.scans == 2
    # Editing the target has no event under the link's name: the tree is walked.
    (root / "lib/names.py").write_text("NAME = 'seen through the link'\n")
    result = build(root)
    assert result.compiled == ["lib/alias.py", "lib/names.py"] and w.scans == 3
    assert result.manifest == fresh(root, tmp_path)


def test_resident_builds_match_one_shot_builds(tree, resident, tmp_path):
    """Round after round of edits in one process: each manifest is the one a
    fresh one-shot build of the same tree gives, and the counts are exact."""
    root = tree(FILES)
    w = watched(root)
    rounds = [
        # (file, new text, modules compiled, bundles rebuilt)
        ("lib/util.py", "def twice(x):\n    return 2 * x  # a comment\n", 1, 0),
        ("lib/util.py", "def twice(x):\n    return 3 * x\n", 1, 1),
        ("lib/names.py", "from lib.util import twice\nNAME = twice('n')\n", 1, 1),  # new edge
        ("api/index.py", "def handler(request):\n    return {'n': 0}\n", 1, 1),  # edge gone
        ("lib/new.py", "NEW = 1\n", 1, 0),  # a new module (the tree is walked)
        ("lib/util.py", "def twice(x):\n    return 4 * x\n", 1, 1),
    ]
    for i, (path, text, compiled, rebuilt) in enumerate(rounds):
        (root / path).write_text(text)
        result = build(root)
        assert (result.modules_compiled, result.bundles_built) == (compiled, rebuilt), i
        assert result.manifest == fresh(root, tmp_path / str(i)), i
    assert w.scans == 2  # the first build and the new module's


def test_a_daemon_reads_back_only_the_members_it_has_not_verified(
    tree, tmp_path: Path, resident, monkeypatch
) -> None:
    """A hub's change rebuilds many bundles; their unchanged members were read back
    once already, and are only looked up again. The outputs are a one-shot build's."""
    from vega_dag.bundle import bundles

    monkeypatch.setattr(bundles, "_verified", set())
    monkeypatch.setattr(warm, "_remembered", {})
    read: list[str] = []
    real = bundles.member_bytes

    def counting(ctx, m, d):
        read.append(m.path)
        return real(ctx, m, d)

    monkeypatch.setattr(bundles, "member_bytes", counting)
    root = tree(FILES)
    build(root)
    assert sorted(set(read)) == sorted(p for p in FILES if p.startswith(("lib/", "api/")))
    read.clear()
    (root / "lib/util.py").write_text("def twice(x):\n    return x + x\n")
    again = build(root)
    assert again.modules_compiled == 1 and again.bundles_built == 1
    assert read == ["lib/util.py"]  # lib/__init__.py and api/index.py: verified before
    assert again.manifest == fresh(root, tmp_path)
    # With --verify, the rebuilt bundle's members are all read back again.
    read.clear()
    (root / "lib/util.py").write_text("def twice(x):\n    return x * 2\n")
    build(root, verify=True)
    assert "api/index.py" in read


def test_a_hubs_change_reads_only_unverified_members_of_the_bundles_holding_it(
    tree, tmp_path: Path, resident, monkeypatch
) -> None:
    """Every route holds the hub, so its bundles' closures add up to more than the
    project's modules: the daemon looks every module up instead of making their
    union, and reads back only what it has not verified, where a rebuilt bundle
    holds it. The outputs are a one-shot build's."""
    from vega_dag.bundle import bundles

    monkeypatch.setattr(bundles, "_verified", set())
    monkeypatch.setattr(warm, "_remembered", {})
    files = {"lib/__init__.py": "", "lib/hub.py": "def f(x):\n    return x\n"}
    files.update(
        {
            f"api/r{i}.py": f"from lib.hub import f\n\n\ndef handler(request):\n    return f({i})\n"
            for i in range(6)
        }
    )
    files["lib/alone.py"] = "A = 1\n"  # in no bundle
    root = tree(files)
    build(root)
    read: list[str] = []
    real = bundles.member_bytes

    def counting(ctx, m, d):
        read.append(m.path)
        return real(ctx, m, d)

    monkeypatch.setattr(bundles, "member_bytes", counting)
    (root / "lib/hub.py").write_text("def f(x):\n    return x + 1\n")
    again = build(root)
    assert (again.modules_compiled, again.bundles_built) == (1, 6)
    assert read == ["lib/hub.py"]
    assert again.manifest == fresh(root, tmp_path / "a")
    # Nothing verified yet (a daemon's first build): every member of the
    # rebuilt bundles is read back once, and the module no bundle holds is not.
    monkeypatch.setattr(bundles, "_verified", set())
    read.clear()
    (root / "lib/hub.py").write_text("def f(x):\n    return x + 2\n")
    third = build(root)
    assert sorted(read) == sorted(p for p in files if p != "lib/alone.py")
    assert third.manifest == fresh(root, tmp_path / "b")
