"""Whether any installed distribution may declare a vega-dag plugin: pluggy not imported.

Apart from ``manager`` so that a command which only needs the answer (the
console script's fast ``status``) does not import pluggy to get it.
"""

from __future__ import annotations

from time import time_ns

#: The entry-point group plugins register under (``[project.entry-points.vega_dag]``).
ENTRY_POINT_GROUP = "vega_dag"


def may_declare_plugins() -> bool:
    """Whether an installed distribution's metadata names the ``vega_dag`` group.

    A prefilter for pluggy's loading, which imports importlib.metadata (and
    email, zipfile, …): more start-up than the rest of `vega-dag status`.
    Reading the ``entry_points.txt`` files where importlib.metadata's path
    finder looks is a few milliseconds; a distribution only a custom finder
    knows of is found by asking importlib.metadata when one is installed.
    """
    import os
    import sys
    from importlib.machinery import PathFinder

    if any(f is not PathFinder and hasattr(f, "find_distributions") for f in sys.meta_path):
        return True
    # A resident process (the daemon, for each rollback) asks again and again:
    # the answer is kept while no directory on sys.path changed (installing or
    # removing a distribution adds or removes its metadata directory there).
    global _answered
    key: list[tuple[str, int | None]] = []
    for entry in sys.path:
        try:
            key.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            key.append((entry, None))
    if _answered is not None and _answered[0] == key:
        return _answered[1]
    answer = _scan(sys.path)
    # Not kept while a directory changed within the last second: another change
    # within its timestamp's tick would not show (git's "racy" entries).
    settled = time_ns() - 1_000_000_000
    if all(mtime is None or mtime < settled for _, mtime in key):
        _answered = (key, answer)
    return answer


#: (the sys.path directories' (entry, mtime) when asked, the answer)
_answered: tuple[list[tuple[str, int | None]], bool] | None = None


def _scan(path: list[str]) -> bool:
    import os

    marker = f"[{ENTRY_POINT_GROUP}]".encode()
    for entry in path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(entry or ".", name, "entry_points.txt"), "rb") as f:
                    if marker in f.read():
                        return True
            except OSError:
                continue
    return False
