"""Parsing of identifiers that arrive as path parameters."""

from __future__ import annotations

import re

_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SKU_RE = re.compile(r"^[A-Z]{2,4}-\d{3,5}$")


def parse_int(value: str | None) -> int | None:
    """``"42"`` -> 42; anything that is not a positive decimal -> None."""
    if value is None or not value.isdigit() or len(value) > 12:
        return None
    number = int(value)
    return number if number > 0 else None


def is_slug(value: str) -> bool:
    return bool(_SLUG_RE.match(value))


def normalize_sku(value: str) -> str | None:
    candidate = value.strip().upper()
    return candidate if _SKU_RE.match(candidate) else None


def slugify(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)
