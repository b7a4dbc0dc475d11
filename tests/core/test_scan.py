"""The tree scan: ignore rules, order, and symlinks that are reported, not followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vega_dag import _core
from vega_dag.errors import ScanError


def names(result: _core.ScanResult) -> list[str]:
    return [f[0] for f in result.files]


def test_sorted_bytewise_posix_and_ignored(tree):
    root = tree(
        {
            "b/z.py": "",
            "a.py": "a",
            "B.py": "",
            "é.py": "",
            "build/out.py": "",
            "node.log": "",
            ".gitignore": "build/\n*.log\n",
            ".vegaignore": "secret.py\n",
            "secret.py": "",
            ".hidden/x.py": "",
            "__pycache__/a.cpython-311.pyc": "",
            ".vega/objects/ab": "",
        }
    )
    result = _core.scan_tree(root)
    assert names(result) == ["B.py", "a.py", "b/z.py", "é.py"]
    assert names(result) == sorted(names(result), key=lambda s: s.encode())
    _path, size, mtime_ns, mode, inode, ctime_ns = result.files[1]
    st = os.stat(root / "a.py")
    assert (size, mtime_ns, inode, ctime_ns) == (1, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    assert mode == st.st_mode


def test_symlink_out_of_root_is_reported_not_followed(tree, tmp_path: Path):
    outside = tree({"secret.py": "TOKEN = 1\n", "pkg/mod.py": ""}, root=tmp_path / "outside")
    root = tree({"real.py": "x = 1\n"})
    (root / "leak.py").symlink_to(outside / "secret.py")
    (root / "leakdir").symlink_to(outside / "pkg")
    (root / "alias.py").symlink_to(root / "real.py")
    (root / "dangling.py").symlink_to(root / "nope.py")
    result = _core.scan_tree(root)
    assert names(result) == ["alias.py", "real.py"]
    assert sorted((p, r) for p, _t, r in result.skipped) == [
        ("dangling.py", "broken-symlink"),
        ("leak.py", "symlink-outside-root"),
        ("leakdir", "symlink-outside-root"),
    ]
    targets = {p: t for p, t, _r in result.skipped}
    assert targets["leak.py"] == str(outside / "secret.py")


def test_non_utf8_name_is_reported(tmp_path: Path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "ok.py").write_text("")
    os.close(os.open(os.fsencode(root) + b"/bad\xff.py", os.O_CREAT | os.O_WRONLY))
    result = _core.scan_tree(root)
    assert names(result) == ["ok.py"]
    assert [r for _p, _t, r in result.skipped] == ["non-utf8-name"]


def test_missing_root(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        _core.scan_tree(tmp_path / "nope")


def test_root_must_be_a_directory(tmp_path: Path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(ScanError) as info:
        _core.scan_tree(f)
    assert info.value.path == str(f)
