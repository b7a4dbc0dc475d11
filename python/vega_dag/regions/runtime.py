"""The route runtime: one ASGI application serving a deployment's routes.

Each route exports ``handler(request)`` or ``app`` (ASGI or WSGI, told apart
here, when loaded). The router matches ``/api/orders/{id}``,
``/api/docs/{slug:path}`` (one or more segments) and ``/api/docs/{slug:path?}``
(zero or more) patterns, static segments before parameters, parameters before
catch-alls, so ``/api/products/search`` wins over ``/api/products/{sku}``.

An ``app`` behind a catch-all is *mounted* at the path before it, with the
conventions servers use for an application under a prefix: for
``/api/legacy/{rest:path}`` and a request of ``/api/legacy/users/7``, an ASGI
app sees ``root_path="/api/legacy"`` and ``path="/api/legacy/users/7"`` (the
ASGI spec: ``path`` includes ``root_path``; Starlette ≥ 0.35 routes on what
follows it), a WSGI app ``SCRIPT_NAME="/api/legacy"`` and
``PATH_INFO="/users/7"``, so an unchanged Flask or Starlette application
routes, and builds its URLs, under the prefix. Any other route sees the full
path with an empty root, as on serverless platforms.

Rewrites (``[tool.vega] rewrites``, carried by the manifest) run before
routing: the first whose source matches replaces the path, and the request is
routed and served as its destination.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import io
import json
import marshal
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote

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

#: The rest of a streamed WSGI response, after its first chunk, is made here:
#: a stream that lasts (server-sent events, a long export) must not hold the
#: route thread. As many as uvicorn's and a2wsgi's WSGI pools hold; a stream
#: beyond them waits for one to end (its first chunk already sent).
STREAM_THREADS = 10
_STREAMS = ThreadPoolExecutor(max_workers=STREAM_THREADS, thread_name_prefix="vega-route-stream")


def _fresh_executor() -> None:
    # A forked child has none of its parent's threads: a worker cloned from a
    # loaded snapshot (vega_dag.regions.loader) needs executors of its own.
    global _SYNC, _STREAMS
    _SYNC = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vega-route")
    _STREAMS = ThreadPoolExecutor(
        max_workers=STREAM_THREADS, thread_name_prefix="vega-route-stream"
    )


os.register_at_fork(after_in_child=_fresh_executor)

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path\??))?\}")


class RouteLoadError(VegaError):
    """A route module could not be imported, or exports nothing the runtime can call.

    ``frames`` are the last lines of the traceback, quoted after the reason.
    """

    def __init__(
        self,
        pattern: str,
        module: str,
        reason: str,
        *,
        file: str | None = None,
        frames: list[str] | None = None,
    ) -> None:
        quoted = "".join(f"\n    {line}" for line in frames or [])
        super().__init__(f"route {pattern} ({file or module}) did not load: {reason}{quoted}")
        self.pattern = pattern
        self.module = module
        self.file = file
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
    #: Static segments sort before parameters, parameters before ``:path``,
    #: ``:path`` before ``:path?``.
    rank: tuple[int, ...]
    app: ASGIApp
    kind: str = "handler"
    #: The trailing catch-all's name, for an app mounted at the path before it.
    mount: str | None = None
    #: (module, file, entry) of the route module serving it, for messages
    origin: tuple[str, str, str] | None = None
    #: what the app's lifespan startup left in its ``state`` (``regions.lifespan``)
    state: dict[str, Any] | None = None


class Match(NamedTuple):
    route: CompiledRoute
    #: parameters by name; an optional catch-all that matched nothing is ""
    params: dict[str, str]
    #: where the route's app is mounted ("" unless it is mounted)
    root_path: str = ""


def compile_pattern(pattern: str) -> tuple[re.Pattern[str], tuple[int, ...]]:
    regex, rank = "^", []
    for segment in pattern.strip("/").split("/"):
        m = _PARAM.fullmatch(segment)
        if m is None:
            regex += "/" + re.escape(segment)
            rank.append(0)
        elif m.group(2) == "path":
            # Lazy, so a trailing slash is not part of the parameter.
            regex += f"/(?P<{m.group(1)}>.+?)"
            rank.append(2)
        elif m.group(2) == "path?":
            regex += f"(?:/(?P<{m.group(1)}>.+?))?"
            rank.append(3)
        else:
            regex += f"/(?P<{m.group(1)}>[^/]+)"
            rank.append(1)
    return re.compile(regex + "/?$"), tuple(rank)


def trailing_catch_all(pattern: str) -> str | None:
    """The name of ``pattern``'s last segment if it is a catch-all (``{x:path}``, ``{x:path?}``)."""
    m = _PARAM.fullmatch(pattern.rpartition("/")[2])
    return m.group(1) if m is not None and m.group(2) else None


@dataclass
class Rewrite:
    regex: re.Pattern[str]
    destination: str

    def apply(self, path: str) -> str | None:
        m = self.regex.match(path)
        if m is None:
            return None
        values = {k: v or "" for k, v in m.groupdict().items()}
        return _PARAM.sub(lambda p: values[p.group(1)], self.destination)


@dataclass
class Router:
    routes: list[CompiledRoute] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)

    def add(
        self,
        pattern: str,
        app: ASGIApp,
        kind: str,
        origin: tuple[str, str, str] | None = None,
    ) -> None:
        regex, rank = compile_pattern(pattern)
        mount = trailing_catch_all(pattern) if kind in ("asgi", "wsgi") else None
        self.routes.append(CompiledRoute(pattern, regex, rank, app, kind, mount, origin))
        self.routes.sort(key=lambda r: (r.rank, r.pattern))

    def add_rewrite(self, source: str, destination: str) -> None:
        self.rewrites.append(Rewrite(compile_pattern(source)[0], destination))

    def rewrite(self, path: str) -> str:
        """``path`` as the first rewrite whose source matches it makes it (else itself)."""
        for rewrite in self.rewrites:
            new = rewrite.apply(path)
            if new is not None:
                return new
        return path

    def match(self, path: str) -> Match | None:
        for route in self.routes:
            m = route.regex.match(path)
            if m is None:
                continue
            params = {k: unquote(v) if v is not None else "" for k, v in m.groupdict().items()}
            if route.mount is None:
                return Match(route, params)
            # Mounted: the app's root is what comes before the catch-all,
            # which is the app's own business (Starlette's Mount drops it too).
            start = m.start(route.mount)
            root = (path[:start] if start >= 0 else path).rstrip("/")
            del params[route.mount]
            return Match(route, params, root)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        given = scope
        path = scope["path"]
        if self.rewrites:
            new = self.rewrite(path)
            if new != path:
                scope = {**scope, "path": new, "raw_path": quote(new).encode()}
                path = new
        found = self.match(path)
        if found is None:
            await send_json(send, {"error": "no route", "path": path}, 404)
            return
        route, params, root = found
        # In the scope given too: the worker's metrics and request log name the pattern.
        given["vega.route"] = route.pattern
        scope = {**scope, "path_params": params, "vega.route": route.pattern}
        if route.state:
            # As uvicorn does: each request gets a shallow copy of the lifespan's state.
            scope["state"] = route.state.copy()
        if root:
            scope["root_path"] = scope.get("root_path", "") + root
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
    """An ASGI adapter for a WSGI application; each request runs in a thread.

    A response whose headers give its length (or a list of chunks) is sent in
    one write, as a route's answer is. One without (a generator: Flask's
    ``stream_with_context``, Werkzeug's ``direct_passthrough``) is streamed:
    each chunk the application yields is sent as it comes (chunked), so a
    client sees the first before the app has made the last.

    The application's call, up to its first chunk, runs on the route thread
    (one request at a time, as a handler does); the rest of a stream is made
    on one of ``_STREAMS``' threads, so a slow or endless stream (server-sent
    events) does not hold every other request of the worker. A client that
    goes away stops the stream at its next chunk (the generator is closed).
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        environ = _environ(scope, body)
        state: dict[str, Any] = {}
        loop = asyncio.get_running_loop()

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            state["status"], state["headers"] = status, headers
            return lambda data: state.setdefault("written", []).append(data)

        def whole(result: Iterable[bytes]) -> bool:
            # A list is in memory already; a length says the app made it whole.
            headers = state.get("headers") or ()
            return isinstance(result, list | tuple) or any(
                k.lower() == "content-length" for k, _ in headers
            )

        def begin() -> tuple[bytes, Any]:
            """(the whole body, None), or (the first chunk, the response still to iterate)."""
            result = wsgi(environ, start_response)
            streaming = False
            try:
                if whole(result):
                    return b"".join([*state.pop("written", []), *result]), None
                rest = iter(result)
                # A generator app calls start_response only once it is iterated.
                head = b"".join(state.pop("written", [])) or next((c for c in rest if c), b"")
                if not head:
                    return b"", None  # it ended without a byte: a whole, empty body
                streaming = True
                return head, (result, rest)
            finally:
                if not streaming:
                    _close(result)

        # One context for the whole response, whichever thread makes which
        # part: Flask's stream_with_context pushes its contexts (contextvars)
        # at the first chunk and pops them at the last.
        context = contextvars.copy_context()
        first, stream = await loop.run_in_executor(_SYNC, context.run, begin)
        status = int(state["status"].split(" ", 1)[0])
        if stream is None:
            headers = [(k, v) for k, v in state["headers"] if k.lower() != "content-length"]
            await send_bytes(send, first, status, None, headers)
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.lower().encode(), str(v).encode()) for k, v in state["headers"]],
            }
        )
        await send({"type": "http.response.body", "body": first, "more_body": True})
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        gone = threading.Event()
        result, rest = stream

        def pump() -> None:
            try:
                for chunk in rest:
                    if gone.is_set():
                        return
                    if chunk:
                        loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            finally:
                # The end (None) after the chunks, in order; the future's own
                # completion is scheduled after them.
                loop.call_soon_threadsafe(chunks.put_nowait, None)
                _close(result)

        async def watch() -> None:
            # The body is read: what comes next is the client going away.
            if (await receive())["type"] == "http.disconnect":
                gone.set()

        watcher = loop.create_task(watch())
        job = loop.run_in_executor(_STREAMS, context.run, pump)
        try:
            chunk = await chunks.get()
            while chunk is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                chunk = await chunks.get()
            await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()
        await job  # an error after the headers were sent still surfaces (and is logged)

    return app


def _close(result: object) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _environ(scope: Scope, body: bytes) -> dict[str, Any]:
    server = scope.get("server") or ("127.0.0.1", 80)
    # PEP 3333: native strings holding the bytes as latin-1; the ASGI spec's
    # mapping (as asgiref's WsgiToAsgi does): SCRIPT_NAME is root_path, and
    # PATH_INFO what of path follows it.
    script_name = scope.get("root_path", "").encode("utf-8").decode("latin-1")
    path_info = scope["path"].encode("utf-8").decode("latin-1")
    if script_name and (path_info == script_name or path_info.startswith(script_name + "/")):
        path_info = path_info[len(script_name) :]
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
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


class _RouteSpec(importlib.machinery.ModuleSpec):
    """The spec of a route module whose name's last part holds dots (``api.docs.[...slug]``).

    ``ModuleSpec.parent`` cuts the name at its last dot; here the parent is
    the route's directory, so relative imports start from there.
    """

    def __init__(self, name: str, loader: Any, origin: str, parent: str) -> None:
        super().__init__(name, loader, origin=origin)
        self.has_location = True
        self._vega_parent = parent

    @property
    def parent(self) -> str:
        return self._vega_parent


class _CodeLoader(importlib.abc.Loader):
    def __init__(self, code: Any) -> None:
        self.code = code

    def exec_module(self, module: ModuleType) -> None:
        exec(self.code, module.__dict__)


def import_route(name: str, file: str) -> ModuleType:
    """The route module ``name`` (whose source was ``file``), imported from ``sys.path``.

    Most names import as any module does. A catch-all's cannot: the import
    system takes every dot for a package boundary. Its compiled file
    (``api/docs/[...slug].pyc``, as the bundle names it) is found in its
    package's ``__path__`` and executed under its full name, with the
    package as its parent.
    """
    from vega_dag.graph.modules import Module

    stem = file.rpartition("/")[2].removesuffix(".py")
    if "." not in stem:
        return importlib.import_module(name)
    if name in sys.modules:
        return sys.modules[name]
    package = Module(name, file, False).package
    search = list(importlib.import_module(package).__path__) if package else sys.path
    for entry in search:
        location = os.path.join(entry, stem + ".pyc")
        data = _read(entry, location)
        if data is not None:
            break
    else:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    if data[:4] != importlib.util.MAGIC_NUMBER:
        raise ImportError(f"{location}: bytecode of another Python version", name=name)
    spec = _RouteSpec(name, _CodeLoader(marshal.loads(data[16:])), location, package)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _read(entry: str, location: str) -> bytes | None:
    """The bytes at ``location`` under the import path ``entry`` (a directory or inside a zip)."""
    finder = sys.path_importer_cache.get(entry)
    if finder is None:
        import pkgutil

        finder = pkgutil.get_importer(entry)
    get_data = getattr(finder, "get_data", None)  # zipimporter
    try:
        if get_data is not None:
            return get_data(location)
        with open(location, "rb") as f:
            return f.read()
    except OSError:
        return None
