"""A one-app project's framework routes, listed in the isolated import check's child.

Stdlib-only code, loaded by its path by ``bundle/isolated.py`` once the app's
module is imported from its bundle alone (nothing of vega-dag is importable
there). ``listing(app)`` walks the framework's own routes:

- FastAPI and Starlette: ``app.routes``, mounted sub-applications and
  (lazily) included routers walked;
- Flask: ``app.url_map.iter_rules()`` and ``app.view_functions``;
- Django: ``get_resolver().url_patterns``, ``include()``s walked (the
  settings module is the one the app's module set, or
  ``DJANGO_SETTINGS_MODULE`` from ``[tool.vega] env``).

Each route is ``{"methods", "path", "module"}``: the methods (``["*"]``
when any), the path pattern in the routes' syntax (``/items/{item_id}``,
``/files/{name:path}``) and the module of the handler. An app of no known
framework has no routes (``framework`` None).
"""

from __future__ import annotations

import re

_FLASK_PARAM = re.compile(r"<(?:(?P<conv>[A-Za-z_][A-Za-z0-9_]*)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_DJANGO_PARAM = re.compile(r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")
_STARLETTE_PARAM = re.compile(r"\{(?P<name>\w+)(?::(?P<conv>\w+))?\}")


def _module_of(handler: object) -> str:
    # A class-based view (Django's as_view(), a Starlette HTTPEndpoint) is
    # named by its class; a partial by the function it wraps.
    target = getattr(handler, "view_class", None) or getattr(handler, "func", None) or handler
    module = getattr(target, "__module__", None)
    if not isinstance(module, str):
        module = type(target).__module__
    return module


def _methods(methods: object) -> list[str]:
    if not methods:
        return ["*"]
    found = {str(m).upper() for m in methods}  # type: ignore[attr-defined]
    # HEAD and OPTIONS come with GET (and every route) in these frameworks.
    if "GET" in found:
        found.discard("HEAD")
    found.discard("OPTIONS")
    return sorted(found) or ["*"]


def _join(prefix: str, path: str) -> str:
    return prefix.rstrip("/") + "/" + path.lstrip("/")


def _route(route: object, path: str, endpoint: object, out: list) -> None:
    kind = type(route).__name__
    methods = ["WS"] if "WebSocket" in kind else _methods(getattr(route, "methods", None))
    out.append({"methods": methods, "path": path, "module": _module_of(endpoint)})


def _starlette(routes: list, prefix: str, out: list) -> None:
    for route in routes:
        included = getattr(route, "original_router", None)
        context = getattr(route, "include_context", None)
        if included is not None and context is not None:
            # FastAPI ≥ 0.160 includes a router lazily: its own routes, under
            # the include's prefix (read directly: building its effective
            # routes costs more than the rest of the listing).
            inner = _join(prefix, _starlette_path(context.prefix)) if context.prefix else prefix
            _starlette(list(included.routes), inner, out)
            continue
        raw = getattr(route, "path", None)
        if raw is None:
            continue  # Host routes and the like
        path = _starlette_path(raw)
        sub = getattr(route, "routes", None)
        endpoint = getattr(route, "endpoint", None)
        if sub is not None and endpoint is None:
            # A Mount (or a router included as one): its routes, under its path.
            _starlette(list(sub), _join(prefix, path), out)
            continue
        if endpoint is not None:
            _route(route, _join(prefix, path), endpoint, out)


def _starlette_path(path: str) -> str:
    return _STARLETTE_PARAM.sub(
        lambda m: f"{{{m['name']}:path}}" if m["conv"] == "path" else f"{{{m['name']}}}", path
    )


def _flask(app: object, out: list) -> None:
    views = app.view_functions  # type: ignore[attr-defined]
    for rule in app.url_map.iter_rules():  # type: ignore[attr-defined]
        path = _FLASK_PARAM.sub(
            lambda m: f"{{{m['name']}:path}}" if m["conv"] == "path" else f"{{{m['name']}}}",
            rule.rule,
        )
        handler = views.get(rule.endpoint)
        module = _module_of(handler) if handler is not None else "flask"
        out.append({"methods": _methods(rule.methods), "path": path, "module": module})


def _django_pattern(pattern: object) -> str:
    text = str(pattern)
    if type(pattern).__name__ == "RegexPattern":
        text = text.removeprefix("^").removesuffix("$").removesuffix("\\Z")
        return _REGEX_GROUP.sub(lambda m: f"{{{m['name']}}}", text)
    return _DJANGO_PARAM.sub(
        lambda m: f"{{{m['name']}:path}}" if m["conv"] == "path" else f"{{{m['name']}}}", text
    )


def _django(patterns: list, prefix: str, out: list) -> None:
    for entry in patterns:
        text = prefix + _django_pattern(entry.pattern)
        sub = getattr(entry, "url_patterns", None)  # a URLResolver: include()
        if sub is not None:
            _django(list(sub), text, out)
            continue
        callback = getattr(entry, "callback", None)
        if callback is None:
            continue
        out.append({"methods": ["*"], "path": "/" + text, "module": _module_of(callback)})


def discover(app: object) -> tuple[str | None, list]:
    out: list = []
    kind = type(app).__module__.partition(".")[0]
    if kind == "django":
        from django.urls import get_resolver

        _django(list(get_resolver().url_patterns), "", out)
        return "django", out
    if hasattr(app, "url_map") and hasattr(app, "view_functions"):
        _flask(app, out)
        return "flask", out
    routes = getattr(app, "routes", None)
    if isinstance(routes, list):
        _starlette(routes, "/", out)
        return kind if kind in ("fastapi", "starlette") else "starlette", out
    return None, out


def listing(app: object) -> dict:
    """``{"framework", "routes"}`` of ``app``, each (methods, path) once, sorted."""
    framework, routes = discover(app)
    unique = {(tuple(r["methods"]), r["path"]): r for r in routes}
    return {"framework": framework, "routes": [unique[k] for k in sorted(unique)]}
