"""Which files are modules, under which dotted names, and which are routes.

A file ``lib/db.py`` under source root ``.`` is module ``lib.db``; a package's
``__init__.py`` is the package itself. Files under the routes directory are
routes, named as on serverless platforms: ``api/users.py`` → ``/api/users``,
``api/index.py`` → ``/api``, ``api/orders/[id].py`` → ``/api/orders/{id}``,
``api/docs/[...slug].py`` → ``/api/docs/{slug:path}`` (a catch-all: one or
more segments), ``api/docs/[[...slug]].py`` → ``/api/docs/{slug:path?}`` (an
optional catch-all: zero or more). Route files (and directories) whose name
starts with ``_`` are private helpers, not routes.

A catch-all's module name has dots inside its last part
(``api.docs.[...slug]``), so nothing may split a module name on dots to find
its file or its package: ``Module.package`` and ``module_file`` go by the
file's path. A catch-all is a file, never a directory (``route_problems``):
a module below one would have a dot inside a package's name, which no import
can reach.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from vega_dag.errors import VegaError

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
#: ``[id]``, ``[...slug]`` (``rest``) or ``[[...slug]]`` (``optional``).
_DYNAMIC = re.compile(
    rf"^(?:\[(?P<rest>\.\.\.)?(?P<name>{_NAME})\]|\[\[\.\.\.(?P<optional>{_NAME})\]\])$"
)


def _catch_all(m: re.Match[str]) -> bool:
    return m["rest"] is not None or m["optional"] is not None


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
        if self.is_package:
            return self.name
        # The name minus the file's own part, which may hold dots ("[...slug]").
        stem = self.path.rpartition("/")[2].removesuffix(".py")
        return self.name[: -len(stem)].removesuffix(".")


def module_parents(module: Module) -> list[str]:
    """The packages whose ``__init__`` runs before ``module``'s, outermost first."""
    package = module.package if not module.is_package else module.name.rpartition(".")[0]
    if not package:
        return []
    parts = package.split(".")  # only a module's last part may hold dots
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def module_file(name: str, path: str) -> str:
    """The path of module ``name``'s source below its source root ("api/docs/[...slug].py").

    ``path`` is the project-relative one (``src/api/docs/[...slug].py``). The
    path below the root is the one tail of ``path`` whose parts, joined by
    dots, are the name: every tail ends with the same file, so no two of them
    join to the same name.
    """
    parts = path.split("/")
    is_package = parts[-1] == "__init__.py"
    if "." not in parts[-1].removesuffix(".py"):  # the common case: one part per dot
        depth = name.count(".") + (2 if is_package else 1)
        return "/".join(parts[-depth:])
    for i in range(len(parts) - 1, -1, -1):
        tail = parts[i:]
        named = tail[:-1] if is_package else [*tail[:-1], tail[-1].removesuffix(".py")]
        if ".".join(named) == name:
            return "/".join(tail)
    raise ValueError(f"{path} is not the source of module {name!r}")


@dataclass(frozen=True, slots=True)
class Route:
    #: URL pattern, e.g. "/api/orders/{id}".
    pattern: str
    module: Module
    #: A one-app project's application (``graph.app``): its attribute, or ""
    #: when detected (``app`` or ``application``, whichever the module
    #: defines). None for a file route.
    app: str | None = None


def _is_name(part: str) -> bool:
    return part.isidentifier()


def _is_route_part(part: str, last: bool) -> bool:
    if part.isidentifier():
        return True
    m = _DYNAMIC.match(part)
    # A catch-all only as the file's own name (see the module docstring).
    return m is not None and (last or not _catch_all(m))


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
            last = len(parts) - 1
            if in_routes:
                ok = all(_is_route_part(p, i == last) for i, p in enumerate(parts))
            else:
                ok = all(_is_name(p) for p in parts)
            if not ok:
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
        elif m["optional"] is not None:
            segments.append(f"{{{m['optional']}:path?}}")
        else:
            segments.append(f"{{{m['name']}:path}}" if m["rest"] else f"{{{m['name']}}}")
    return "/" + "/".join(segments)


class RouteConflictError(VegaError):
    """Two route files claim the same paths; ``problems`` names the files of each clash."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_SHAPE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(:path\??)?\}")
_OPTIONAL = re.compile(r"/\{[A-Za-z_][A-Za-z0-9_]*:path\?\}$")


def _claims(pattern: str) -> list[tuple[str, bool]]:
    """The paths ``pattern`` matches, as shapes (parameter names dropped), and
    whether each is the parent path an optional catch-all matches too."""
    shape = _SHAPE.sub(lambda m: "{:path}" if m.group(1) else "{}", pattern)
    if _OPTIONAL.search(pattern) is None:
        return [(shape, False)]
    return [(shape, False), (shape.rpartition("/")[0] or "/", True)]


def route_table(modules: dict[str, Module], routes_dir: str) -> dict[str, Route]:
    """URL pattern → Route, sorted by pattern.

    Every path has one route: two files claiming the same paths (``users.py``
    and ``users/index.py``; ``[id].py`` and ``[order_id].py``; an optional
    catch-all and its parent's ``index.py``) are a ``RouteConflictError``,
    as Next.js refuses them: which one serves would be an accident.
    """
    routes: list[Route] = []
    for module in modules.values():
        pattern = route_pattern(module.path, routes_dir)
        if pattern is not None:
            routes.append(Route(pattern=pattern, module=module))
    claimed: dict[str, list[tuple[Route, bool]]] = {}
    for route in sorted(routes, key=lambda r: r.module.path):
        for shape, parent in _claims(route.pattern):
            claimed.setdefault(shape, []).append((route, parent))
    problems, seen = [], set()
    for shape, claims in claimed.items():
        files = tuple(r.module.path for r, _ in claims)
        if len(claims) > 1 and files not in seen:  # two optional catch-alls clash twice
            seen.add(files)
            problems.append(_clash(shape, claims))
    if problems:
        raise RouteConflictError(sorted(problems))
    return dict(sorted((r.pattern, r) for r in routes))


def _clash(shape: str, claims: list[tuple[Route, bool]]) -> str:
    files = ", ".join(r.module.path for r, _ in claims)
    both = "both claim" if len(claims) == 2 else "all claim"
    also = [r.pattern for r, parent in claims if parent]
    patterns = list(dict.fromkeys(r.pattern for r, _ in claims))  # in the files' order
    fix = "one file per route: remove or rename one"
    if also:
        return f"{files}: {both} the path {shape} ({', '.join(also)} matches its parent too; {fix})"
    if len(patterns) == 1:
        return f"{files}: {both} the route {patterns[0]} ({fix})"
    return f"{files}: {both} the paths of {' and '.join(patterns)} ({fix})"


def _first_module_below(ordered: list[str], prefix: str) -> str | None:
    """The first .py file of the sorted ``ordered`` whose path starts with ``prefix``."""
    i = bisect.bisect_left(ordered, prefix)
    while i < len(ordered) and ordered[i].startswith(prefix):
        if ordered[i].endswith(".py"):
            return ordered[i]
        i += 1
    return None


def layout_problems(files: list[str], modules: dict[str, Module], routes_dir: str) -> list[str]:
    """Files that cannot be imported as the build names them, each with the reason.

    A route below a catch-all directory; and a module file beside a
    directory of the same name (``api/users.py`` and ``api/users/[id].py``):
    Python imports ``api.users`` as one or the other, never both, so one of
    them could not be loaded in a region.
    """
    routes_prefix = routes_dir.strip("/") + "/"
    problems = []
    ordered = sorted(files)  # already sorted from the scan: a linear pass
    for module in modules.values():
        if module.is_package:
            continue
        stem = module.path.removesuffix(".py")
        other = _first_module_below(ordered, stem + "/")
        if other is not None:
            if module.path.startswith(routes_prefix):
                fix = f"move it to {stem}/index.py, the same route"
            else:
                fix = "rename one"
            problems.append(
                f"{module.path}, {other}: module {module.name} is both this file and a package "
                f"directory, and Python can import only one ({fix})"
            )
    for path in files:
        if not path.startswith(routes_prefix) or not path.endswith(".py"):
            continue
        parts = path.split("/")
        for i, part in enumerate(parts[:-1]):
            m = _DYNAMIC.match(part)
            if m is not None and _catch_all(m):
                as_file = "/".join(parts[: i + 1]) + ".py"
                problems.append(
                    f"{path}: a catch-all must be the route's file name ({as_file}), "
                    "not a directory"
                )
                break
    return problems


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
