"""One-app projects: the application that is a project's one route.

A project whose API is one application object (FastAPI, Starlette, Flask,
Django, any ASGI or WSGI app) names it in ``[tool.vega] app =
"package.module:attr"``, or has it found where platforms look when the
project has no route files: ``main.py``, ``app/main.py``, ``app.py``,
``asgi.py``, ``wsgi.py`` (the first found), then a top-level package's
``main.py``, ``app.py``, ``asgi.py`` or ``wsgi.py`` (FastAPI's
``shop/main.py``, Django's ``mysite/asgi.py``; the first found in that
package), defining ``app`` or ``application``. Two packages that both hold
one are an error naming both: which is the API is then the project's to say.

The application is one route, an optional catch-all at ``app_mount``, so it
is served by the machinery that mounts applications under a prefix
(``regions.runtime``): at ``/`` it sees every path with an empty
``root_path``; at ``/v1`` it sees ``root_path="/v1"`` (``SCRIPT_NAME`` for
WSGI). Its own routes are found at build time (``bundle.discover``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vega_dag.graph.modules import Route

if TYPE_CHECKING:
    from pathlib import Path

    from vega_dag.config import VegaConfig
    from vega_dag.graph.modules import Module
    from vega_dag.store.state import Parsed

#: Where a project without route files is looked for an application, in order.
APP_MODULES = ("main", "app.main", "app", "asgi", "wsgi")
#: Then in each top-level package, in order (Django's startproject writes both
#: asgi.py and wsgi.py: the ASGI one is served).
PACKAGE_APP_MODULES = ("main", "app", "asgi", "wsgi")
#: The attributes a detected application module may define, in order.
APP_ATTRS = ("app", "application")
#: The catch-all's name: dropped before the app is called (it routes on the path).
_REST = "path"


def mount_pattern(mount: str) -> str:
    """The route pattern an application mounted at ``mount`` is served by."""
    return ("" if mount == "/" else mount.rstrip("/")) + f"/{{{_REST}:path?}}"


def configured_app(vega: VegaConfig) -> tuple[str, str] | None:
    """(module, attr) of ``[tool.vega] app``, or None."""
    if vega.app is None:
        return None
    module, _, attr = vega.app.partition(":")
    return module, attr


def app_route(vega: VegaConfig, modules: dict[str, Module]) -> Route | str | None:
    """The application route: configured, or detected (see the module docstring).

    A str is what is wrong (a configured module that is not in the project,
    or two packages' modules that could each be the detected application);
    None: the project has no application (only called without route files,
    or with ``app`` set).
    """
    pattern = mount_pattern(vega.app_mount)
    configured = configured_app(vega)
    if configured is not None:
        name, attr = configured
        module = modules.get(name)
        if module is None:
            roots = ", ".join(vega.source_roots)
            return (
                f"[tool.vega] app {vega.app!r}: the project has no module {name} "
                f"(source roots: {roots})"
            )
        return Route(pattern=pattern, module=module, app=attr)
    for name in APP_MODULES:
        if name in modules:
            return Route(pattern=pattern, module=modules[name], app="")
    packages = sorted({n for n, m in modules.items() if m.is_package and "." not in n})
    found = []
    for package in packages:
        names = [f"{package}.{leaf}" for leaf in PACKAGE_APP_MODULES]
        first = next((modules[n] for n in names if n in modules), None)
        if first is not None:
            found.append(first)
    if len(found) > 1:
        # Not a guess between two packages' apps (a CLI's main.py is as
        # likely as an API's): the project names the one it serves.
        paths = " and ".join(m.path for m in found[:2])
        more = f" (and {len(found) - 2} more)" if len(found) > 2 else ""
        return (
            f"no [tool.vega] app and no route files, and two modules that could be the "
            f"application: {paths}{more}; name the one to serve in "
            f'[tool.vega] app = "package.module:attr"'
        )
    if found:
        return Route(pattern=pattern, module=found[0], app="")
    return None


def whole_project_apps(
    root: Path,
    routes: dict[str, Route],
    digests: dict[str, str],
    parsed: dict[str, Parsed],
) -> set[str]:
    """The app routes whose bundle must hold every module of the project: Django's.

    Django imports by name what no import statement names (the settings
    module, ``ROOT_URLCONF``, ``INSTALLED_APPS``, ``include("polls.urls")``),
    so the import graph cannot say what its app needs: a Django app (its
    module imports ``django``) ships the whole project, as platforms ship it.
    """
    out = set()
    for pattern, route in routes.items():
        if route.app is None:
            continue
        found = parsed.get(digests[route.module.path])
        if found is None:  # not parsed this build: one small file, scanned again
            names = _imported(root / route.module.path)
        else:
            names = [i[0] for i in found.imports]
        if any(n == "django" or n.startswith("django.") for n in names):
            out.add(pattern)
    return out


def _imported(path: Path) -> list[str]:
    from vega_dag import _core

    imports, _ = _core.scan_imports(path.read_bytes(), path.name)
    return [i[0] for i in imports]
