"""The stat cache: path → (size, mtime_ns, inode, ctime_ns, digest).

It lets a build skip reading every file whose stat is unchanged (the Rust core
does the comparison and hashes the rest in parallel). It is a cache, not a
record: a missing, stale or unreadable one only costs re-hashing, so it is
replaced atomically but not fsynced.

The table lives on the Rust side (``_core.StatTable``) and is read and written
there too: a 20,000-file cache never becomes 20,000 Python tuples, and a
resident build process keeps it in memory between builds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from vega_dag import _core
from vega_dag.daemon import warm

if TYPE_CHECKING:
    from vega_dag.scan.watch import TreeWatcher

StatCache = _core.StatTable
EMPTY = _core.StatTable()


def load_stat_cache(path: Path) -> StatCache:
    """The cache at ``path``, or an empty one if it is missing, damaged or old."""
    return warm.load(path, _read_stat_cache)


def _read_stat_cache(path: Path) -> StatCache:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return EMPTY
    try:
        return _core.StatTable.decode(data)
    except ValueError:
        return EMPTY


def save_stat_cache(path: Path, cache: StatCache) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(cache.encode())
    os.replace(tmp, path)
    warm.wrote(path, cache)


def _watcher(root: Path) -> TreeWatcher | None:
    """The daemon's watcher of ``root``; None elsewhere (without importing it)."""
    if not warm.enabled():
        return None
    from vega_dag.scan.watch import watcher_for

    return watcher_for(root)


def refresh(
    root: Path, cache: StatCache, *, skip_dirs: list[str] | None = None
) -> tuple[_core.Changes, StatCache]:
    """Scan ``root`` against ``cache``; return what changed and the new cache.

    In the build daemon, a file watcher (``scan.watch``) says which files
    may have changed, and only those are looked at.
    """
    taken_ns = time.time_ns()
    watcher = _watcher(root)
    if watcher is not None:
        changes = watcher.refresh(cache, taken_ns)
        if changes is not None:
            return changes, changes.table
    changes = _core.detect_changes(root, cache, taken_ns, skip_dirs=skip_dirs)
    if watcher is not None:
        watcher.scanned(changes)
    return changes, changes.table


def settled(root: Path, table: StatCache, produced: StatCache) -> None:
    """The next build of ``root`` starts from ``table`` (see ``scan.watch``)."""
    watcher = _watcher(root)
    if watcher is not None:
        watcher.settled(table, produced)
