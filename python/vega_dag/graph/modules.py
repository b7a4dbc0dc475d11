"""Which files are modules, under which dotted names, and which are routes.

A file ``lib/db.py`` under source root ``.`` is module ``lib.db``; a package's
``__init__.py`` is the package itself. Files under the routes directory are
routes, named as on serverless platforms: ``api/users.py`` → ``/api/users``,
``api/index.py`` → ``/api``, ``api/orders/[id].py`` → ``/api/orders/{id}``,
``api/docs/[...slug].py`` → ``/api/docs/{slug:path}``. Route files (and
directories) whose name starts with ``_`` are private helpers, not routes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DYNAMIC = re.compile(r"^\[(\.\.\.)?([A-Za-z_][A-Za-z0-9_]*)\]$")


@dataclass(frozen=True, slots=True)
class Module:
    #: Dotted import name ("lib.db", "api.orders.[id]").
    name: str
    #: Project-relative POSIX path of the source file.
    path: str
    is_package: bool

    @property
    def package(self) -> str:
        """The package relative imports in this module start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True, slots=True)
class Route:
    #: URL pattern, e.g. "/api/orders/{id}".
    pattern: str
    module: Module


def _is_name(part: str) -> bool:
    return part.isidentifier()


def _is_route_part(part: str) -> bool:
    return part.isidentifier() or _DYNAMIC.match(part) is not None


def module_table(files: list[str], source_roots: list[str], routes_dir: str) -> dict[str, Module]:
    """Dotted name → Module for every importable .py file, first root winning."""
    table: dict[str, Module] = {}
    routes_prefix = routes_dir.strip("/") + "/"
    prefixes = ["" if root in (".", "") else root.strip("/") + "/" for root in source_roots]
    for prefix in prefixes:
        # A file is named under the innermost root holding it only: with roots
        # "src" and ".", src/pkg/m.py is pkg.m, never also src.pkg.m (one
        # file under two names is compiled once but needed twice).
        inner = [p for p in prefixes if len(p) > len(prefix) and p.startswith(prefix)]
        for path in files:
            if not path.endswith(".py") or not path.startswith(prefix):
                continue
            if any(path.startswith(p) for p in inner):
                continue
            parts = path[len(prefix) :].removesuffix(".py").split("/")
            in_routes = path.startswith(routes_prefix)
            ok = _is_route_part if in_routes else _is_name
            if not all(ok(p) for p in parts):
                continue  # not importable under any name: not a module
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
                if not parts:
                    continue  # an __init__.py at a source root is no package
            name = ".".join(parts)
            table.setdefault(name, Module(name=name, path=path, is_package=is_package))
    return table


def route_pattern(path: str, routes_dir: str) -> str | None:
    """The URL pattern of the route file at ``path``, or None if it is no route."""
    routes_prefix = routes_dir.strip("/") + "/"
    if not path.startswith(routes_prefix) or not path.endswith(".py"):
        return None
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__" or any(
        p.startswith("_") for p in parts[len(routes_prefix.split("/")) - 1 :]
    ):
        return None
    if parts[-1] == "index":
        parts.pop()
    segments = []
    for part in parts:
        m = _DYNAMIC.match(part)
        if m is None:
            segments.append(part)
        else:
            name = m.group(2)
            segments.append(f"{{{name}:path}}" if m.group(1) else f"{{{name}}}")
    return "/" + "/".join(segments)


def route_table(modules: dict[str, Module], routes_dir: str) -> dict[str, Route]:
    """URL pattern → Route, sorted by pattern."""
    routes: dict[str, Route] = {}
    for module in modules.values():
        pattern = route_pattern(module.path, routes_dir)
        if pattern is not None:
            routes[pattern] = Route(pattern=pattern, module=module)
    return dict(sorted(routes.items()))


def top_level_packages(
    modules: dict[str, Module], files: list[str], source_roots: list[str]
) -> set[str]:
    """First-party top-level names: modules, packages and namespace directories."""
    names = {name.partition(".")[0] for name in modules}
    for root in source_roots:
        prefix = "" if root in (".", "") else root.strip("/") + "/"
        for path in files:
            if path.startswith(prefix) and path.endswith(".py"):
                head = path[len(prefix) :].partition("/")
                if head[1] and head[0].isidentifier():
                    names.add(head[0])
    return names
