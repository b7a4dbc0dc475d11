"""What a long-lived build process (the daemon) keeps between builds.

A one-shot ``vega-dag build`` reads its caches and state from ``.vega/state``
and derives the module table from the file list every time; a resident
process can keep all of that in memory. Nothing here is trusted blindly:

- a file read through ``load`` is reused only while its (inode, size, mtime)
  is the one it had when it was read or written by this process (state files
  are replaced by rename, so another writer — a build without the daemon, a
  deploy, a bisection — always changes the inode);
- a derived value is keyed by exactly the inputs it is computed from;
- what a build ``remember``s for the next (its tables, ``LastBuild``) is
  used only while the files that build loads are the very objects it wrote
  (``last_build`` checks);
- work ``defer``red while answering the client (recording the caches) runs
  right after the answer, before the next request.

Off unless ``enable()`` was called: a test process running hundreds of
builds keeps nothing.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from vega_dag import _core
    from vega_dag.store.objects import PackIndex
    from vega_dag.store.state import BuildState

T = TypeVar("T")

_enabled = False
#: path -> ((inode, size, mtime_ns), object)
_files: dict[str, tuple[tuple[int, int, int], Any]] = {}
#: name -> (key, value)
_derived: dict[str, tuple[Hashable, Any]] = {}
#: name -> value (``remember``)
_remembered: dict[str, Any] = {}


def enable() -> None:
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


@contextlib.contextmanager
def bypassed() -> Iterator[None]:
    """Nothing reused or kept meanwhile: every file read afresh (a served rollback)."""
    global _enabled
    was, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = was


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def load(path: Path, read: Callable[[Path], T], *, edited: bool = False) -> T:
    """``read(path)``, or the object this process last read or wrote there if unchanged.

    For a file people edit (``edited``: configuration), a read of a file
    modified within ``RACY_NS`` of the read is not reused: it may change again
    within one timestamp tick without its stat changing (git's "racy" entries).
    """
    if not _enabled:
        return read(path)
    sig = _signature(path)
    hit = _files.get(str(path))
    if sig is not None and hit is not None and hit[0] == sig:
        return hit[1]
    started = time.time_ns()
    value = read(path)
    if sig is not None and (not edited or (sig[2] < started - RACY_NS and _signature(path) == sig)):
        _files[str(path)] = (sig, value)
    return value


#: See ``load(edited=True)``.
RACY_NS = 2_000_000_000


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


def remember(name: str, value: object) -> None:
    """Keep ``value`` for the next build of this process (``recall``)."""
    if _enabled:
        _remembered[name] = value


def recall(name: str) -> Any:
    """What ``remember`` kept under ``name`` (None outside a resident process)."""
    return _remembered.get(name) if _enabled else None


#: Work a resident process may finish after it has answered (``defer``).
_deferred: list[Callable[[], None]] = []
_deferring = False


@contextlib.contextmanager
def deferring() -> Iterator[None]:
    """While active, ``defer`` queues work instead of refusing it (the daemon
    answers the client first, then calls ``run_deferred``)."""
    global _deferring
    _deferring = _enabled
    try:
        yield
    finally:
        _deferring = False


def defer(work: Callable[[], None]) -> bool:
    """Queue ``work`` to run after the reply; False (not queued) outside ``deferring``."""
    if not _deferring:
        return False
    _deferred.append(work)
    return True


def run_deferred() -> None:
    """Run the queued work, in order; a failure is reported on stderr, not raised."""
    import sys
    import traceback

    while _deferred:
        work = _deferred.pop(0)
        try:
            work()
        except Exception:  # the reply is sent: report, keep serving
            traceback.print_exc(file=sys.stderr)


@dataclass
class LastBuild:
    """What a resident build process (the daemon) keeps of its last build.

    Trusted only while the stat cache and state the next build loads are
    these very objects (``load`` rereads a file another process replaced):
    then the scan's changed paths are exactly the modules whose source
    differs from the state, and the rest of these tables stand.
    """

    root: Path
    stat: _core.StatTable
    state: BuildState
    index: PackIndex
    tables_key: tuple
    digests: dict[str, str]
    pyc: dict[str, str]
    deps: dict[str, list[str]]
    #: sorted (path, digest) of every module (the manifest's ``source``)
    source_items: list[tuple[str, str]]


def last_build(
    root: Path, stat: _core.StatTable, state: BuildState, changes: _core.Changes
) -> LastBuild | None:
    """This process's last build of ``root``, if this build starts from what it wrote.

    ``stat`` and ``state`` are what this build loaded; ``changes`` what its
    scan found. None outside a resident process, after another writer, or
    when a file the last build did not list is involved.
    """
    last: LastBuild | None = recall("last-build")
    if (
        last is not None
        and last.root == root
        and last.stat is stat
        and last.state is state
        and not changes.removed
        and all(p in last.digests for p in changes.changed)
    ):
        return last
    return None


def restat_last_build(old: _core.StatTable, new: _core.StatTable) -> None:
    """A build that changed nothing re-read files (same digests): the stat cache is ``new``."""
    last: LastBuild | None = recall("last-build")
    if last is not None and last.stat is old:
        last.stat = new
