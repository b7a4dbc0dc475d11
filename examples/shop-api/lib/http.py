"""Small helpers around the platform's ``request`` object and responses.

Handlers return ``dict``/``list`` (JSON 200), ``str`` or a ``(body, status)``
or ``(body, status, headers)`` tuple; these helpers build those shapes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, Protocol

from . import serialize

Response = dict[str, Any] | list[Any] | str | tuple[Any, ...]


class Request(Protocol):
    """What the platform passes to ``handler(request)``."""

    method: str
    path: str
    path_params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any: ...


class HTTPError(Exception):
    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def as_response(self) -> tuple[dict[str, Any], int]:
        payload: dict[str, Any] = {"error": self.message, "status": self.status}
        if self.details:
            payload["details"] = self.details
        return payload, self.status


def error(status: int, message: str, **details: Any) -> tuple[dict[str, Any], int]:
    return HTTPError(status, message, **details).as_response()


def created(body: dict[str, Any], location: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    return body, 201, {"location": location}


def require_method(request: Request, *allowed: str) -> None:
    if request.method.upper() not in allowed:
        raise HTTPError(405, f"method {request.method} not allowed", allow=list(allowed))


def query_int(request: Request, name: str, default: int, *, low: int = 1, high: int = 10_000) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(400, f"query parameter {name!r} must be an integer") from None
    return max(low, min(high, value))


def json_body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        payload = request.json()
    except (ValueError, json.JSONDecodeError):
        raise HTTPError(400, "request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise HTTPError(400, "request body must be a JSON object")
    return payload


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def _plain(response: Response) -> Response:
    if isinstance(response, tuple):
        return (serialize.to_jsonable(response[0]), *response[1:])
    if isinstance(response, str):
        return response
    return serialize.to_jsonable(response)


def endpoint(func: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """Decorator for ``handler``: JSON-ready bodies, ``HTTPError`` -> error response."""

    @functools.wraps(func)
    def wrapper(request: Request) -> Response:
        try:
            return _plain(func(request))
        except HTTPError as exc:
            return exc.as_response()

    return wrapper
