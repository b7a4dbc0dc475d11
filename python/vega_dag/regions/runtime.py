"""The route runtime: one ASGI application serving a deployment's routes.

Each route exports ``handler(request)`` or ``app`` (ASGI or WSGI, told apart
here, when loaded). The router matches ``/api/orders/{id}`` and
``/api/docs/{slug:path}`` patterns, static segments before dynamic ones, so
``/api/products/search`` wins over ``/api/products/{sku}``.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from vega_dag.errors import VegaError

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]

#: Sync handlers and WSGI apps run here, one request at a time per worker, as
#: on serverless platforms (one request per instance): route code that
#: initialises lazily without a lock (shop-api's in-memory db does) must not
#: see two requests at once. ASGI apps run concurrently on the event loop.
_SYNC = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vega-route")


def _fresh_executor() -> None:
    # A forked child has none of its parent's threads: a worker cloned from a
    # loaded snapshot (vega_dag.regions.loader) needs an executor of its own.
    global _SYNC
    _SYNC = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vega-route")


os.register_at_fork(after_in_child=_fresh_executor)

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")


class RouteLoadError(VegaError):
    """A route module could not be imported, or exports nothing the runtime can call."""

    def __init__(self, pattern: str, module: str, reason: str) -> None:
        super().__init__(f"route {pattern} ({module}): {reason}")
        self.pattern = pattern
        self.module = module
        self.reason = reason


@dataclass
class Request:
    """What ``handler(request)`` receives."""

    method: str
    path: str
    path_params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class CompiledRoute:
    pattern: str
    regex: re.Pattern[str]
    #: Static segments sort before parameters, parameters before ``:path``.
    rank: tuple[int, ...]
    app: ASGIApp
    kind: str = "handler"


def compile_pattern(pattern: str) -> tuple[re.Pattern[str], tuple[int, ...]]:
    parts, rank = [], []
    for segment in pattern.strip("/").split("/"):
        m = _PARAM.fullmatch(segment)
        if m is None:
            parts.append(re.escape(segment))
            rank.append(0)
        elif m.group(2) == "path":
            parts.append(f"(?P<{m.group(1)}>.+)")
            rank.append(2)
        else:
            parts.append(f"(?P<{m.group(1)}>[^/]+)")
            rank.append(1)
    return re.compile("^/" + "/".join(parts) + "/?$"), tuple(rank)


@dataclass
class Router:
    routes: list[CompiledRoute] = field(default_factory=list)

    def add(self, pattern: str, app: ASGIApp, kind: str) -> None:
        regex, rank = compile_pattern(pattern)
        self.routes.append(CompiledRoute(pattern, regex, rank, app, kind))
        self.routes.sort(key=lambda r: (r.rank, r.pattern))

    def match(self, path: str) -> tuple[CompiledRoute, dict[str, str]] | None:
        for route in self.routes:
            m = route.regex.match(path)
            if m is not None:
                return route, {k: unquote(v) for k, v in m.groupdict().items()}
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        found = self.match(scope["path"])
        if found is None:
            await send_json(send, {"error": "no route", "path": scope["path"]}, 404)
            return
        route, params = found
        scope = {**scope, "path_params": params, "vega.route": route.pattern}
        try:
            await route.app(scope, receive, send)
        except Exception:
            # The app raised before (or while) answering: a 500, and the
            # traceback in the worker's log, not in the response.
            traceback.print_exc(file=sys.stderr)
            await send_json(send, {"error": "internal error", "route": route.pattern}, 500)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def send_json(send: Send, payload: object, status: int) -> None:
    await send_bytes(send, json.dumps(payload).encode(), status, "application/json")


async def send_bytes(
    send: Send,
    body: bytes,
    status: int,
    content_type: str | None,
    extra: Iterable[tuple[str, str]] = (),
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode()))
    headers.extend((k.lower().encode(), str(v).encode()) for k, v in extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _default(value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def render_body(
    body: object, status: int, headers: list[tuple[str, str]]
) -> tuple[bytes, int, str | None, list[tuple[str, str]]]:
    if body is None:
        return b"", status if status != 200 else 204, None, headers
    if isinstance(body, bytes | bytearray):
        return bytes(body), status, "application/octet-stream", headers
    if isinstance(body, str):
        return body.encode(), status, "text/plain; charset=utf-8", headers
    return json.dumps(body, default=_default).encode(), status, "application/json", headers


def handler_app(handler: Callable[..., Any], pattern: str) -> ASGIApp:
    """An ASGI adapter for a ``handler(request)`` route (sync handlers run in threads)."""
    is_async = inspect.iscoroutinefunction(handler)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        request = Request(
            method=scope["method"],
            path=scope["path"],
            path_params=dict(scope.get("path_params", {})),
            query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=body,
        )
        if is_async:
            result = await handler(request)
        else:
            result = await asyncio.get_running_loop().run_in_executor(_SYNC, handler, request)
        extra: list[tuple[str, str]] = []
        status = 200
        if isinstance(result, tuple):
            if not 2 <= len(result) <= 3:
                raise TypeError(
                    f"route {pattern}: a handler returns (body, status[, headers]), "
                    f"not a {len(result)}-tuple"
                )
            if len(result) == 3:
                extra = list(dict(result[2]).items())
            result, status = result[0], int(result[1])
        data, status, content_type, _ = render_body(result, status, [])
        await send_bytes(send, data, status, content_type, extra)

    return app


def wsgi_app(wsgi: Callable[..., Any]) -> ASGIApp:
    """An ASGI adapter for a WSGI application; each request runs in a thread."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        environ = _environ(scope, body)
        state: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            state["status"], state["headers"] = status, headers
            return lambda data: state.setdefault("written", []).append(data)

        def call() -> bytes:
            result = wsgi(environ, start_response)
            try:
                return b"".join([*state.get("written", []), *result])
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

        data = await asyncio.get_running_loop().run_in_executor(_SYNC, call)
        status = int(state["status"].split(" ", 1)[0])
        headers = [(k, v) for k, v in state["headers"] if k.lower() != "content-length"]
        await send_bytes(send, data, status, None, headers)

    return app


def _environ(scope: Scope, body: bytes) -> dict[str, Any]:
    server = scope.get("server") or ("127.0.0.1", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": scope["path"],
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for key, value in scope["headers"]:
        name = key.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if name == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = text
        elif name != "CONTENT_LENGTH":
            environ.setdefault(f"HTTP_{name}", text)
    return environ


def app_kind(app: object) -> str:
    """How to call a route's ``app``: "asgi" or "wsgi"."""
    if not callable(app):
        raise TypeError("`app` is not callable")
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else app.__call__
    if inspect.iscoroutinefunction(call):
        return "asgi"
    try:
        params = [
            p
            for p in inspect.signature(call).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        return "asgi"
    # An ASGI app takes (scope, receive, send), a WSGI one (environ, start_response).
    return "wsgi" if len(params) == 2 else "asgi"


def route_app(module: object, entry: str, pattern: str) -> tuple[ASGIApp, str]:
    """The ASGI app serving a loaded route module, and its kind."""
    target = getattr(module, entry, None)
    if target is None or not callable(target):
        raise TypeError(f"`{entry}` is missing or not callable")
    if entry == "handler":
        return handler_app(target, pattern), "handler"
    kind = app_kind(target)
    return (target if kind == "asgi" else wsgi_app(target)), kind
