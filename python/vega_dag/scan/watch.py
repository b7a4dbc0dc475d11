"""What changed since the last build, told by inotify (the build daemon's scan).

A one-shot build walks the tree and stats every file (~0.1 s for 20,000
files here). The daemon keeps an inotify watch on every directory the scan
enters instead, as Turborepo's daemon and Bazel's ``--watchfs`` do, so a
build stats and hashes only the files that had events.

Reading the inotify queue at the start of a build is exact, not a race: the
kernel queues an event before the write that caused it returns. The watcher
answers only for the simple, common case, and says "scan" otherwise:

- only events on files the last scan listed (an edit, an attribute change,
  an editor's rename of a new version over the old name);
- anything else (a new or deleted file, a directory event, an ignore file,
  a queue overflow, a watch that went away, a symlink anywhere in the tree)
  makes the next build walk the tree as a one-shot build does, after every
  directory is watched again.

What it has seen is dropped only once a build has recorded a stat cache that
includes it (``settled``): a build that fails leaves the events for the next.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vega_dag import _core

#: Files whose change alters what a scan lists (scan.rs honours them).
IGNORE_FILES = frozenset({".gitignore", ".ignore", ".vegaignore"})


@dataclass
class _Pending:
    """A stat table this process produced, and the events it accounts for."""

    table: _core.StatTable
    seen: set[str]
    full: bool


@dataclass
class TreeWatcher:
    root: Path
    skip_dirs: list[str]
    #: The stat table the next build will start from, with no event since
    #: but ``dirty``.
    baseline: _core.StatTable | None = None
    dirty: set[str] = field(default_factory=set)
    rescan: bool = True
    pending: _Pending | None = None
    #: Why the last build scanned the tree, and how many scans there were.
    last_reason: str = "first build"
    scans: int = 0

    def __post_init__(self) -> None:
        from inotify_simple import INotify, flags

        self._flags = flags
        self._inotify = INotify(nonblocking=True)
        self._dirs: dict[int, str] = {}
        self._mask = (
            flags.MODIFY
            | flags.ATTRIB
            | flags.CLOSE_WRITE
            | flags.CREATE
            | flags.DELETE
            | flags.MOVED_FROM
            | flags.MOVED_TO
            | flags.DELETE_SELF
            | flags.MOVE_SELF
        )
        self._watch_tree()

    @property
    def directories(self) -> int:
        """How many directories are watched."""
        return len(self._dirs)

    def close(self) -> None:
        self._inotify.close()

    def _watch_tree(self) -> None:
        """Watch every directory the scan enters (again: adding a watch twice is a no-op).

        Events are not trusted (every build scans) while the tree holds a
        symlink — an edit of its target has no event under the link's name —
        or when a directory could not be watched.
        """
        self._untrusted = False
        skip = set(self.skip_dirs)
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/")
            try:
                wd = self._inotify.add_watch(dirpath, self._mask)
            except OSError:
                # Out of watches (fs.inotify.max_user_watches), or raced
                # with a deletion: scanning stays correct, only slower.
                self.rescan = True
                self._untrusted = True
                return
            self._dirs[wd] = rel
            kept = []
            for name in dirnames:
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    self._untrusted = True
                elif name not in skip and not name.startswith("."):
                    kept.append(name)
            dirnames[:] = kept
            if not self._untrusted and any(
                os.path.islink(os.path.join(dirpath, n)) for n in filenames
            ):
                self._untrusted = True

    def _drain(self) -> None:
        f = self._flags
        for event in self._inotify.read(timeout=0):
            if event.mask & (f.Q_OVERFLOW | f.IGNORED | f.DELETE_SELF | f.MOVE_SELF):
                self._need_scan("the watch queue overflowed or a directory went away")
                continue
            base = self._dirs.get(event.wd)
            if base is None:
                continue  # a watch removed since: its IGNORED event says so
            name = event.name
            if event.mask & f.ISDIR:
                if not name.startswith("."):
                    self._need_scan(f"directory event on {os.path.join(base, name)}")
                continue
            if name in IGNORE_FILES:
                self._need_scan(f"{os.path.join(base, name)} changed")
                continue
            if name.startswith("."):
                continue  # hidden files are never scanned (editors' swap files)
            path = f"{base}/{name}" if base else name
            if self.baseline is None or path not in self.baseline:
                self._need_scan(f"{path} is new or not listed by the last scan")
            elif event.mask & (f.DELETE | f.MOVED_FROM):
                self._need_scan(f"{path} was deleted or moved")
            else:
                self.dirty.add(path)

    def _need_scan(self, reason: str) -> None:
        if not self.rescan:
            self.last_reason = reason
        self.rescan = True

    def refresh(self, cache: _core.StatTable, taken_ns: int) -> _core.Changes | None:
        """The changes since ``cache``, or None: then scan the tree (and call ``scanned``)."""
        self._drain()
        if self.rescan or self._untrusted or cache is not self.baseline:
            if cache is not self.baseline and not self.rescan:
                self.last_reason = "the stat cache was written by another build"
            if self.rescan:
                # Watch first, then scan: an event in a new directory is
                # either queued or seen by the scan, and a new symlink is
                # found (the scan lists it as a file).
                self._watch_tree()
            self.pending = None
            return None
        seen = set(self.dirty)
        changes = _core.refresh_paths(self.root, cache, taken_ns, sorted(seen))
        if changes is None:
            self._need_scan("a changed file is no longer a regular file")
            self.pending = None
            return None
        self.pending = _Pending(changes.table, seen, full=False)
        return changes

    def scanned(self, changes: _core.Changes) -> None:
        """The tree was scanned into ``changes.table`` (after ``refresh`` said so)."""
        self.scans += 1
        usable = not changes.skipped and not self._untrusted
        self.pending = _Pending(changes.table, set(self.dirty), full=True) if usable else None

    def settled(self, table: _core.StatTable, produced: _core.StatTable) -> None:
        """The next build starts from ``table``, the recorded form of ``produced``
        (the table this build's refresh returned; the same object unless an
        unchanged scan was not recorded)."""
        pending = self.pending
        self.pending = None
        if pending is None or pending.table is not produced:
            return
        self.baseline = table
        self.dirty -= pending.seen
        if pending.full:
            self.rescan = False


_watchers: dict[str, TreeWatcher] = {}


def watch(root: Path, skip_dirs: list[str]) -> TreeWatcher | None:
    """Start watching ``root`` (the daemon does); None where inotify is unavailable."""
    try:
        watcher = TreeWatcher(root.resolve(), skip_dirs)
    except (ImportError, OSError):
        return None
    _watchers[str(root.resolve())] = watcher
    return watcher


def watcher_for(root: Path) -> TreeWatcher | None:
    if not _watchers:
        return None
    return _watchers.get(str(root))
