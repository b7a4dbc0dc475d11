"""Whether any installed distribution may declare a vega-dag plugin: pluggy not imported.

Apart from ``manager`` so that a command which only needs the answer (the
console script's fast ``status``) does not import pluggy to get it.
"""

from __future__ import annotations

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

    marker = f"[{ENTRY_POINT_GROUP}]".encode()
    if any(f is not PathFinder and hasattr(f, "find_distributions") for f in sys.meta_path):
        return True
    for entry in sys.path:
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
