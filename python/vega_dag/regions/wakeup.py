"""A region's wake-up when its pointer may have moved: inotify on the store's ``-moved`` file.

Every pointer write of the pointer store (``PointerStore.swap``) touches
``pointers.sqlite-moved`` once its transaction has committed. A region
watches the store's directory for that name and re-reads its pointer on the
event, so a switch starts as soon as the write lands instead of at the
region's next poll.

Why a file touched after the commit rather than a watch on the database or
its WAL: SQLite writes a transaction's last WAL frame before it publishes the
new snapshot in the shared-memory index, so a reader woken by that write can
still read the old pointer, and no later event would come. The touch comes
after ``COMMIT`` returns: whoever is woken by it reads the new pointer.

A wake-up is only ever a shortcut. The region still polls (``data_version``
first, so a poll that finds nothing new reads no table), which catches a
write whose touch never came (a writer killed between its commit and the
touch, another tool writing the store) and anything inotify dropped (a queue
overflow: the kernel then says so and the region re-reads at once). Where
inotify is missing (not Linux, inotify_simple absent, no watches left) the
region just polls.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any


def moved_path(db_path: Path) -> Path:
    """The file a pointer write touches once committed."""
    return db_path.with_name(db_path.name + "-moved")


def signal_moved(db_path: Path) -> None:
    """Wake every region watching ``db_path``'s pointers (best effort: they also poll)."""
    path = moved_path(db_path)
    try:
        os.utime(path)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            path.touch()
    except OSError:
        pass


class PointerWakeup:
    """inotify on the pointer store's directory, for its ``-moved`` file.

    ``fileno()`` is readable when an event is queued; ``drain()`` reads every
    queued event and says whether one of them may mean the pointer moved.
    """

    def __init__(self, db_path: Path) -> None:
        from inotify_simple import INotify, flags

        self.name = moved_path(db_path).name
        self.overflow = int(flags.Q_OVERFLOW)
        self.inotify: Any = INotify(nonblocking=True)
        try:
            # The directory, not the file: the file may not exist yet, or be
            # replaced, and a watch on a directory outlives both.
            self.inotify.add_watch(
                str(db_path.parent),
                flags.ATTRIB | flags.CLOSE_WRITE | flags.CREATE | flags.MOVED_TO,
            )
        except BaseException:
            self.inotify.close()
            raise

    def fileno(self) -> int:
        return int(self.inotify.fileno())

    def drain(self) -> bool:
        """Read the queued events; whether one was the ``-moved`` file (or events were lost)."""
        woken = False
        while True:
            try:
                events = self.inotify.read(timeout=0)
            except BlockingIOError:
                return woken
            except OSError:
                return True
            if not events:
                return woken
            for event in events:
                if event.name == self.name or event.mask & self.overflow:
                    woken = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.inotify.close()


def open_wakeup(db_path: Path) -> PointerWakeup | None:
    """A wake-up for ``db_path``'s pointers, or None where inotify is not available."""
    try:
        return PointerWakeup(db_path)
    except (ImportError, OSError):
        return None
