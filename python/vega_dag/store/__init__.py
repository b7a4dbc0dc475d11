"""Stage 4, store: content-addressed objects and the action cache."""

from vega_dag.store.actions import ActionCache
from vega_dag.store.objects import CorruptObjectError, MissingObjectError, ObjectStore

__all__ = ["ActionCache", "CorruptObjectError", "MissingObjectError", "ObjectStore"]
