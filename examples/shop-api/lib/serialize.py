"""JSON encoding that understands the shop's value types.

Uses orjson when it happens to be installed, the standard library otherwise.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
from typing import Any

try:
    import orjson as _fast_json  # optional speed-up, not a declared dependency
except ImportError:
    _fast_json = None

import json as _json

from . import clock


def to_jsonable(value: Any) -> Any:
    """Recursively convert models, money, enums and datetimes to plain JSON."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _dt.datetime):
        return clock.isoformat(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v) for v in items]
    return value


def dumps(value: Any) -> bytes:
    plain = to_jsonable(value)
    if _fast_json is not None:
        return _fast_json.dumps(plain, option=_fast_json.OPT_SORT_KEYS)
    return _json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()


def loads(data: bytes | str) -> Any:
    if _fast_json is not None:
        return _fast_json.loads(data)
    return _json.loads(data)


def backend() -> str:
    return "orjson" if _fast_json is not None else "json"
