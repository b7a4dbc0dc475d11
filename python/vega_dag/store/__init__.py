"""Stage 4, store: content-addressed objects and the action cache.

``objects`` and ``tree`` (``assembly``, for older stores) hold the outputs,
``actions`` the action cache, ``state`` what a build remembers for the next;
``commit`` writes a build's outputs, then those records.
"""

from vega_dag.store.actions import ActionCache
from vega_dag.store.objects import CorruptObjectError, MissingObjectError, ObjectStore

__all__ = ["ActionCache", "CorruptObjectError", "MissingObjectError", "ObjectStore"]
