"""Offset pagination with stable ordering and a ``next`` link."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from .config import get_settings
from .http import Request, query_int

T = TypeVar("T")


def page_params(request: Request) -> tuple[int, int]:
    settings = get_settings()
    page = query_int(request, "page", 1)
    per_page = query_int(request, "per_page", settings.default_page_size, high=settings.max_page_size)
    return page, per_page


def paginate(items: Sequence[T], request: Request) -> dict[str, Any]:
    page, per_page = page_params(request)
    start = (page - 1) * per_page
    window = list(items[start : start + per_page])
    total = len(items)
    result: dict[str, Any] = {
        "items": window,
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": max(1, -(-total // per_page)),
    }
    if start + per_page < total:
        query = dict(request.query)
        query["page"] = str(page + 1)
        result["next"] = f"{request.path}?{urlencode(sorted(query.items()))}"
    return result
