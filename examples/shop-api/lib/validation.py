"""Input validation for JSON request bodies."""

from __future__ import annotations

import re
from typing import Any

from lib.http import HTTPError

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
COUNTRIES = frozenset({"DE", "FR", "NL", "US", "GB"})


def require_fields(payload: dict[str, Any], *names: str) -> None:
    missing = [name for name in names if payload.get(name) in (None, "")]
    if missing:
        raise HTTPError(422, "missing required fields", missing=missing)


def email(value: Any) -> str:
    if not isinstance(value, str) or not _EMAIL_RE.match(value):
        raise HTTPError(422, "invalid email address")
    return value.lower()


def quantity(value: Any, *, maximum: int = 99) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise HTTPError(422, f"quantity must be an integer between 1 and {maximum}")
    return value


def country(value: Any) -> str:
    code = str(value or "").upper()
    if code not in COUNTRIES:
        raise HTTPError(422, "unsupported country", supported=sorted(COUNTRIES))
    return code
