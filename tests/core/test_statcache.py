"""Change detection against the stat cache, and its file format's round trip."""

from __future__ import annotations

import os
from pathlib import Path

from vega_dag import _core
from vega_dag.scan import StatCache, load_stat_cache, refresh, save_stat_cache
from vega_dag.scan.statcache import EMPTY


def age(root: Path, seconds: int = 60) -> None:
    """Backdate every file so the cache does not consider them racy."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_unchanged_files_are_not_read(tree):
    root = tree({"a.py": "a", "lib/b.py": "b"})
    age(root)
    changes, cache = refresh(root, EMPTY)
    assert changes.hashed == 2
    assert changes.changed == ["a.py", "lib/b.py"]
    assert cache.entries()["a.py"][4] == _core.hash_bytes(b"a")

    again, cache2 = refresh(root, cache)
    assert again.hashed == 0
    assert again.changed == [] and again.removed == []
    assert cache2.entries() == cache.entries()


def test_edit_add_remove(tree):
    root = tree({"a.py": "a", "b.py": "b"})
    age(root)
    _, cache = refresh(root, EMPTY)
    (root / "a.py").write_text("a2")
    (root / "b.py").unlink()
    (root / "c.py").write_text("c")
    changes, _ = refresh(root, cache)
    assert changes.changed == ["a.py", "c.py"]
    assert changes.removed == ["b.py"]
    assert changes.hashed == 2


def test_touch_without_edit_is_not_a_change(tree):
    root = tree({"a.py": "a"})
    age(root)
    _, cache = refresh(root, EMPTY)
    os.utime(root / "a.py")
    changes, _ = refresh(root, cache)
    assert changes.hashed == 1
    assert changes.changed == []


def test_racy_entries_are_rehashed(tree):
    # Files modified moments before the cache was taken are re-read next time,
    # so a same-tick edit cannot hide behind an unchanged stat.
    root = tree({"a.py": "a"})
    _, cache = refresh(root, EMPTY)
    changes, _ = refresh(root, cache)
    assert changes.hashed == 1


def test_file_round_trip(tree, tmp_path: Path):
    root = tree({"a.py": "a", "b.py": "bb", "pkg/é.py": "c"})
    _, cache = refresh(root, EMPTY)
    path = tmp_path / "cache" / "stat.cache"
    save_stat_cache(path, cache)
    loaded = load_stat_cache(path)
    assert isinstance(loaded, StatCache)
    assert loaded == cache
    assert loaded.taken_ns == cache.taken_ns > 0
    assert loaded.entries() == cache.entries() and len(loaded) == 3
    # The bytes depend on the entries only, not on hash-map order.
    assert _core.StatTable.decode(path.read_bytes()).encode() == path.read_bytes()


def test_damaged_cache_is_empty(tree, tmp_path: Path):
    _, cache = refresh(tree({"a.py": "a", "b.py": "bb"}), EMPTY)
    good = cache.encode()
    path = tmp_path / "stat.cache"
    for content in [b"", b"\x00garbage", b"\x93\x01", good[:-1], good + b"\x00", good[:20]]:
        path.write_bytes(content)
        assert load_stat_cache(path) == EMPTY, content


def test_deleted_file_leaves_the_cache(tree):
    # The race (listed by the scan, gone before it is hashed) is covered by the
    # Rust unit test statcache::vanished_file_is_an_error_naming_it.
    root = tree({"a.py": "a", "gone.py": "g"})
    _, cache = refresh(root, EMPTY)
    (root / "gone.py").unlink()
    changes, new = refresh(root, cache)
    assert changes.removed == ["gone.py"]
    assert "gone.py" not in new.entries()
