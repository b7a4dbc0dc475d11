"""A frozen clock.

The example serves deterministic data, so "now" is a fixed instant rather
than the wall clock. Everything that needs a timestamp goes through here.
"""

from __future__ import annotations

import datetime as _dt

UTC = _dt.timezone.utc
EPOCH = _dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def now() -> _dt.datetime:
    """Return the shop's idea of the current time."""
    return EPOCH


def days_ago(days: int, hours: int = 0) -> _dt.datetime:
    return EPOCH - _dt.timedelta(days=days, hours=hours)


def isoformat(ts: _dt.datetime) -> str:
    """ISO-8601 in UTC with a trailing ``Z``, second precision."""
    return ts.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def day_key(ts: _dt.datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d")
