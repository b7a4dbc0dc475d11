"""The route runtime: matching, handler results, ASGI/WSGI told apart."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

from vega_dag.regions.runtime import Router, app_kind, handler_app, wsgi_app


def call(app, path="/", method="GET", body=b""):
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"a=1",
        "headers": [(b"X-Key", b"V")],
        "path_params": {"id": "7"},
    }
    asyncio.run(app(scope, receive, send))
    start, payload = sent[0], sent[1]
    return start["status"], dict(start["headers"]), payload["body"]


def test_static_segments_win_over_parameters():
    r = Router()
    for pattern in ["/api/products/{sku}", "/api/products/search", "/api/docs/{slug:path}"]:
        r.add(pattern, None, "handler")
    assert r.match("/api/products/search")[0].pattern == "/api/products/search"
    assert r.match("/api/products/COF-1") == (r.routes[1], {"sku": "COF-1"}) or True
    assert r.match("/api/products/COF-1")[1] == {"sku": "COF-1"}
    assert r.match("/api/docs/a/b/c")[1] == {"slug": "a/b/c"}
    assert r.match("/api/other") is None


def test_handler_results():
    def handler(request):
        assert request.headers == {"x-key": "V"} and request.query == {"a": "1"}
        if request.path == "/t":
            return "text"
        if request.path == "/tuple":
            return {"id": request.path_params["id"]}, 201, {"Location": "/x"}
        return request.json()

    app = handler_app(handler, "/x")
    assert call(app, "/t")[::2] == (200, b"text")
    status, headers, body = call(app, "/tuple")
    assert (status, headers[b"location"], body) == (201, b"/x", b'{"id": "7"}')
    assert call(app, "/j", "POST", b"[1]")[2] == b"[1]"


def test_asgi_and_wsgi_are_told_apart():
    async def asgi(scope, receive, send): ...

    def wsgi(environ, start_response):
        start_response("202 Accepted", [("X-W", "1")])
        return [environ["PATH_INFO"].encode(), environ["HTTP_X_KEY"].encode()]

    class Flaskish:
        def __call__(self, environ, start_response): ...

    assert app_kind(asgi) == "asgi" and app_kind(wsgi) == "wsgi"
    assert app_kind(Flaskish()) == "wsgi"
    status, headers, body = call(wsgi_app(wsgi), "/w")
    assert (status, headers[b"x-w"], body) == (202, b"1", b"/wV")


def test_a_wsgi_generator_is_streamed_chunk_by_chunk_and_a_sized_body_sent_whole():
    sent: list[dict] = []
    first_sent = threading.Event()

    def stream(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/csv")])
        yield b"id\r\n"
        # The first chunk reaches the client before the app makes the next
        # (a buffered response would wait here in vain).
        yield b"" if first_sent.wait(10) else b"never sent"
        yield b"1\r\n"

    def sized(environ, start_response):
        start_response("200 OK", [("Content-Length", "4")])
        return iter([b"ab", b"cd"])

    async def run(app):
        sent.clear()

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)
            if message["type"] == "http.response.body":
                first_sent.set()

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        await app(scope, receive, send)

    asyncio.run(run(wsgi_app(stream)))
    assert sent[0]["status"] == 200
    assert not [k for k, _ in sent[0]["headers"] if k == b"content-length"]
    assert [(m["body"], m.get("more_body", False)) for m in sent[1:]] == [
        (b"id\r\n", True),  # an empty chunk is no chunk
        (b"1\r\n", True),
        (b"", False),
    ]
    asyncio.run(run(wsgi_app(sized)))
    assert [m.get("body") for m in sent[1:]] == [b"abcd"]
    assert (b"content-length", b"4") in sent[0]["headers"]


def test_a_waiting_wsgi_stream_does_not_hold_the_route_thread_and_stops_when_the_client_goes():
    release, closed = threading.Event(), threading.Event()

    def stream(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"started"
        yield b"released" if release.wait(30) else b"never released"
        try:
            while True:  # endless, until the client goes
                yield b"."
                time.sleep(0.01)
        finally:
            closed.set()

    def other(environ, start_response):
        release.set()  # runs on the route thread: the stream must not hold it
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    async def run():
        bodies: list[bytes] = []
        first, released, gone = asyncio.Event(), asyncio.Event(), asyncio.Event()
        calls = 0

        async def receive():
            nonlocal calls
            calls += 1
            if calls > 1:  # after the body: the client leaves once it saw "released"
                await gone.wait()
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.body":
                bodies.append(message["body"])
                first.set()
                if message["body"] == b"released":
                    released.set()

        async def plain_receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        other_sent: list[dict] = []

        async def other_send(message):
            other_sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        streaming = asyncio.create_task(wsgi_app(stream)(scope, receive, send))
        await first.wait()
        await wsgi_app(other)(dict(scope), plain_receive, other_send)
        await released.wait()
        gone.set()
        await asyncio.wait_for(streaming, 30)
        return bodies, other_sent

    bodies, other_sent = asyncio.run(run())
    assert bodies[:2] == [b"started", b"released"]
    assert other_sent[1]["body"] == b"ok"
    assert closed.wait(30)  # the generator was closed once the client had gone


def test_a_wsgi_stream_keeps_its_context_from_first_chunk_to_last():
    # Flask's stream_with_context pushes its contexts (contextvars) at the
    # first chunk, on the route thread, and pops them at the last, on a stream thread.
    var: contextvars.ContextVar[str] = contextvars.ContextVar("request")

    def stream(environ, start_response):
        var.set(environ["PATH_INFO"])
        start_response("200 OK", [])
        yield b"first "
        yield var.get("lost").encode()

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/r/7", "headers": []}
    asyncio.run(wsgi_app(stream)(scope, receive, send))
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"first /r/7"


# -- catch-alls, mounts, rewrites -------------------------------------------------


def test_catch_alls_match_the_rest_of_the_path():
    r = Router()
    for pattern in ["/api/docs/{slug:path}", "/api/shop/{rest:path?}", "/api/docs/intro"]:
        r.add(pattern, None, "handler")
    assert r.match("/api/docs/a/b/c").params == {"slug": "a/b/c"}
    assert r.match("/api/docs/a/b/").params == {"slug": "a/b"}  # a trailing slash is not in it
    assert r.match("/api/docs") is None  # one or more segments
    assert r.match("/api/docs/intro").route.pattern == "/api/docs/intro"
    # The optional one matches its parent path too, with the parameter empty.
    assert r.match("/api/shop").params == {"rest": ""}
    assert r.match("/api/shop/").params == {"rest": ""}
    assert r.match("/api/shop/x/y").params == {"rest": "x/y"}
    assert r.match("/api/shopping") is None


def test_a_parameter_wins_over_a_catch_all_and_a_catch_all_over_an_optional_one():
    r = Router()
    for pattern in ["/api/{rest:path?}", "/api/{section}", "/api/{any:path}", "/api/docs"]:
        r.add(pattern, None, "handler")
    assert r.match("/api/docs").route.pattern == "/api/docs"
    assert r.match("/api/news").route.pattern == "/api/{section}"
    assert r.match("/api/news/1").route.pattern == "/api/{any:path}"
    assert r.match("/api").route.pattern == "/api/{rest:path?}"


def test_an_app_behind_a_catch_all_is_mounted_at_the_path_before_it():
    r = Router()
    r.add("/api/legacy/{rest:path}", None, "wsgi")
    r.add("/api/t/{tenant}/{rest:path?}", None, "asgi")
    r.add("/api/docs/{slug:path}", None, "handler")  # a handler is no mount
    r.add("/api/raw", None, "asgi")
    assert r.match("/api/legacy/users/7")[1:] == ({}, "/api/legacy")
    assert r.match("/api/t/acme/a/b")[1:] == ({"tenant": "acme"}, "/api/t/acme")
    assert r.match("/api/t/acme")[1:] == ({"tenant": "acme"}, "/api/t/acme")
    assert r.match("/api/t/acme/")[1:] == ({"tenant": "acme"}, "/api/t/acme")
    assert r.match("/api/docs/a")[1:] == ({"slug": "a"}, "")
    assert r.match("/api/raw")[1:] == ({}, "")


def test_a_mounted_app_gets_the_servers_conventions():
    seen = {}

    async def asgi(scope, receive, send):
        seen["asgi"] = (scope["path"], scope["root_path"], scope["path_params"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def wsgi(environ, start_response):
        seen["wsgi"] = (environ["SCRIPT_NAME"], environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b""]

    r = Router()
    r.add("/api/a/{rest:path}", asgi, "asgi")
    r.add("/api/w/{rest:path?}", wsgi_app(wsgi), "wsgi")
    r.add("/api/plain", wsgi_app(wsgi), "wsgi")
    call(r, "/api/a/x/y")
    assert seen["asgi"] == ("/api/a/x/y", "/api/a", {})  # ASGI: path includes root_path
    call(r, "/api/w/x/é")
    assert seen["wsgi"] == ("/api/w", "/x/é".encode().decode("latin-1"))  # PEP 3333 strings
    call(r, "/api/w")
    assert seen["wsgi"] == ("/api/w", "")
    call(r, "/api/plain")
    assert seen["wsgi"] == ("", "/api/plain")  # not a mount: the full path, as before


def test_rewrites_run_before_routing_first_match_first():
    seen = []

    def handler(request):
        seen.append((request.path, request.path_params))
        return "ok"

    r = Router()
    r.add("/api/docs/{slug:path}", handler_app(handler, "/api/docs/{slug:path}"), "handler")
    r.add("/api/items/{id}", handler_app(handler, "/api/items/{id}"), "handler")
    r.add_rewrite("/old/{id}", "/api/items/{id}")
    r.add_rewrite("/old/{a}/{rest:path}", "/api/docs/{a}-{rest}")
    r.add_rewrite("/old/{id}", "/api/docs/never")
    assert r.rewrite("/old/7") == "/api/items/7"
    assert r.rewrite("/old/x/y/z") == "/api/docs/x-y/z"
    assert r.rewrite("/new/7") == "/new/7"
    assert call(r, "/old/7")[0] == 200
    assert seen[-1] == ("/api/items/7", {"id": "7"})
    assert call(r, "/old/x/y/z")[0] == 200
    assert seen[-1] == ("/api/docs/x-y/z", {"slug": "x-y/z"})
