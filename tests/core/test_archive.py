"""The deterministic archive writer and its reader."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import run_python
from vega_dag import _core
from vega_dag.errors import ArchiveEntryError, ArchiveFormatError

ENTRIES = {
    "pkg/__init__.py": b"",
    "pkg/mod.py": b"VALUE = 42\n" * 50,
    "pkg/sub/deep.py": b"from pkg.mod import VALUE\nDOUBLE = VALUE * 2\n",
    "data/\xc3\xa9t\xc3\xa9.txt".encode().decode("utf-8"): b"\x00\x01binary",
}

WRITE_SCRIPT = """
import json, os, sys
from pathlib import Path
from vega_dag import _core
spec = json.loads(sys.argv[1] if len(sys.argv) > 1 else os.environ["SPEC"])
src = Path("src")
entries = []
for name in spec["order"]:
    p = src / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(bytes.fromhex(spec["entries"][name]))
    entries.append((name, p))
_core.write_archive("out.zip", entries)
"""


def write_in(cwd: Path, order: list[str], env: dict[str, str], umask: int) -> bytes:
    cwd.mkdir(parents=True)
    spec = {"order": order, "entries": {k: v.hex() for k, v in ENTRIES.items()}}
    run_python(WRITE_SCRIPT, cwd=cwd, env={**env, "SPEC": json.dumps(spec)}, umask=umask)
    return (cwd / "out.zip").read_bytes()


def test_bytes_identical_across_order_tz_umask_and_directory(tmp_path: Path):
    names = sorted(ENTRIES)
    a = write_in(tmp_path / "one", names, {"TZ": "UTC", "LC_ALL": "C"}, 0o022)
    b = write_in(
        tmp_path / "two" / "deeper dir",
        list(reversed(names)),
        {"TZ": "Pacific/Kiritimati", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "123"},
        0o077,
    )
    assert a == b
    assert _core.hash_bytes(a) == _core.build_archive(list(ENTRIES.items()))[1]


def test_python_can_read_and_zipimport(tmp_path: Path):
    path = tmp_path / "bundle.zip"
    digest = _core.write_archive(path, list(ENTRIES.items()))
    assert digest == _core.hash_file(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        files = [i for i in zf.infolist() if not i.is_dir()]
        dirs = [i.filename for i in zf.infolist() if i.is_dir()]
        assert sorted(i.filename for i in files) == sorted(ENTRIES)
        # Every parent directory has its entry: zipimport needs them to find
        # namespace packages (pkg/sub has no __init__.py).
        assert dirs == ["data/", "pkg/", "pkg/sub/"]
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.extra == b""
            assert info.external_attr >> 16 == (0o40755 if info.is_dir() else 0o100644)
        for info in files:
            assert zf.read(info) == ENTRIES[info.filename]
    sys.path.insert(0, str(path))
    try:
        import pkg.sub.deep  # type: ignore[import-not-found]

        assert pkg.sub.deep.DOUBLE == 84
        assert pkg.sub.deep.__file__.startswith(str(path))
    finally:
        sys.path.remove(str(path))
        for mod in [m for m in sys.modules if m == "pkg" or m.startswith("pkg.")]:
            del sys.modules[mod]


def test_source_date_epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "951827696")  # 2000-02-29T12:34:56Z
    data, _ = _core.build_archive([("a", b"x")])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.infolist()[0].date_time == (2000, 2, 29, 12, 34, 56)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")  # before 1980: clamped
    data, _ = _core.build_archive([("a", b"x")])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.infolist()[0].date_time == (1980, 1, 1, 0, 0, 0)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ValueError, match="SOURCE_DATE_EPOCH"):
        _core.build_archive([("a", b"x")])


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/passwd", "absolute"),
        ("a/../../b", "'..'"),
        ("..", "'..'"),
        ("./a", "'.'"),
        ("a//b", "empty component"),
        ("dir/", "empty component"),
        ("", "empty"),
        ("a\\b", "backslash"),
        ("nul\x00", "NUL"),
        ("bad\udcff.py", "UTF-8"),
        (b"bad\xff.py", "UTF-8"),
    ],
)
def test_refused_names(name, reason):
    with pytest.raises(ArchiveEntryError, match=reason) as info:
        _core.build_archive([("ok.py", b""), (name, b"x")])
    assert info.value.reason
    assert "bad" in info.value.entry or name in (info.value.entry, "")


def test_duplicate_names_refused():
    with pytest.raises(ArchiveEntryError, match="duplicate") as info:
        _core.build_archive([("a.py", b"1"), ("b.py", b""), ("a.py", b"2")])
    assert info.value.entry == "a.py"


def test_missing_entry_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError) as info:
        _core.build_archive([("a.py", tmp_path / "missing.py")])
    assert info.value.filename == str(tmp_path / "missing.py")


def test_failed_write_leaves_old_archive(tmp_path: Path):
    path = tmp_path / "a.zip"
    _core.write_archive(path, [("a", b"1")])
    before = path.read_bytes()
    with pytest.raises(ArchiveEntryError):
        _core.write_archive(path, [("/abs", b"2")])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]


def test_corrupt_archives(tmp_path: Path):
    data, _ = _core.build_archive([("a.py", b"print('hello')\n" * 20)])
    with pytest.raises(ArchiveFormatError, match="end-of-central-directory"):
        _core.list_archive(data[:-30])
    flipped = bytearray(data)
    flipped[45] ^= 0xFF
    with pytest.raises(ArchiveFormatError, match=r"a\.py"):
        _core.read_archive(bytes(flipped))
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all, clearly" * 3)
    with pytest.raises(ArchiveFormatError) as info:
        _core.list_archive(bad)
    assert info.value.path == str(bad)


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
paths = st.lists(names, min_size=1, max_size=4).map("/".join)


def no_file_is_a_directory(entries: dict[str, bytes]) -> bool:
    parents = {name.rsplit("/", 1)[0] for name in entries if "/" in name}
    dirs = {p.rsplit("/", i)[0] for p in parents for i in range(p.count("/") + 1)}
    return not dirs & entries.keys()


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(paths, st.binary(max_size=2000), max_size=20).filter(no_file_is_a_directory),
    st.randoms(),
)
def test_round_trip_property(entries: dict[str, bytes], rnd):
    items = list(entries.items())
    data, digest = _core.build_archive(items)
    rnd.shuffle(items)
    assert _core.build_archive(items) == (data, digest)
    assert _core.read_archive(data) == entries
    listed = _core.list_archive(data)
    assert [e.name for e in listed if not e.is_dir] == sorted(entries)
    assert all(e.size == len(entries[e.name]) for e in listed if not e.is_dir)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()} == entries


def test_file_that_is_also_a_directory_is_refused():
    with pytest.raises(ArchiveEntryError, match="both a file and a directory") as info:
        _core.build_archive([("pkg", b""), ("pkg/mod.py", b"")])
    assert info.value.entry == "pkg"
