"""The stat cache: path → (size, mtime_ns, inode, ctime_ns, digest).

It lets a build skip reading every file whose stat is unchanged (the Rust core
does the comparison and hashes the rest in parallel). It is a cache, not a
record: a missing, stale or unreadable one only costs re-hashing, so it is
replaced atomically but not fsynced.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec

from vega_dag import _core
from vega_dag.build import warm

#: Bumped whenever the entry layout or its meaning changes.
STAT_CACHE_VERSION = 1


class StatCache(msgspec.Struct, frozen=True):
    version: int
    #: When the scan that produced the entries started (ns since the epoch).
    taken_ns: int
    entries: dict[str, tuple[int, int, int, int, str]]


EMPTY = StatCache(version=STAT_CACHE_VERSION, taken_ns=0, entries={})
_decoder = msgspec.msgpack.Decoder(StatCache)
_encoder = msgspec.msgpack.Encoder()


def load_stat_cache(path: Path) -> StatCache:
    """The cache at ``path``, or an empty one if it is missing, damaged or old."""
    return warm.load(path, _read_stat_cache)


def _read_stat_cache(path: Path) -> StatCache:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return EMPTY
    try:
        cache = _decoder.decode(data)
    except msgspec.DecodeError:
        return EMPTY
    return cache if cache.version == STAT_CACHE_VERSION else EMPTY


def save_stat_cache(path: Path, cache: StatCache) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(_encoder.encode(cache))
    os.replace(tmp, path)
    warm.wrote(path, cache)


def refresh(
    root: Path, cache: StatCache, *, skip_dirs: list[str] | None = None
) -> tuple[_core.Changes, StatCache]:
    """Scan ``root`` against ``cache``; return what changed and the new cache."""
    taken_ns = time.time_ns()
    changes = _core.detect_changes(root, cache.entries, cache.taken_ns, skip_dirs=skip_dirs)
    return changes, StatCache(
        version=STAT_CACHE_VERSION, taken_ns=taken_ns, entries=changes.entries
    )
