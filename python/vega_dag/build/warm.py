"""What a long-lived build process (the daemon) keeps between builds.

A one-shot ``vega-dag build`` reads its caches and state from ``.vega/state``
and derives the module table from the file list every time; a resident
process can keep all of that in memory. Nothing here is trusted blindly:

- a file read through ``load`` is reused only while its (inode, size, mtime)
  is the one it had when it was read or written by this process (state files
  are replaced by rename, so another writer — a build without the daemon, a
  deploy, a bisection — always changes the inode);
- a derived value is keyed by exactly the inputs it is computed from.

Off unless ``enable()`` was called: a test process running hundreds of
builds keeps nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_enabled = False
#: path -> ((inode, size, mtime_ns), object)
_files: dict[str, tuple[tuple[int, int, int], Any]] = {}
#: name -> (key, value)
_derived: dict[str, tuple[Hashable, Any]] = {}


def enable() -> None:
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def load(path: Path, read: Callable[[Path], T]) -> T:
    """``read(path)``, or the object this process last read or wrote there if unchanged."""
    if not _enabled:
        return read(path)
    sig = _signature(path)
    hit = _files.get(str(path))
    if sig is not None and hit is not None and hit[0] == sig:
        return hit[1]
    value = read(path)
    if sig is not None:
        _files[str(path)] = (sig, value)
    return value


def wrote(path: Path, value: object) -> None:
    """``value`` is what ``path`` now holds (just written by this process)."""
    if _enabled:
        sig = _signature(path)
        if sig is not None:
            _files[str(path)] = (sig, value)


def derived(name: str, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, reused while ``key`` is equal to the last one for ``name``."""
    if not _enabled:
        return compute()
    hit = _derived.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    value = compute()
    _derived[name] = (key, value)
    return value
