"""The files step: the files other than compiled modules that each route's bundle holds.

Code reads files at run time (templates, static files, ``.sql``, ``.json``,
locale ``.mo``) by paths relative to its own modules, so a route's bundle
holds, beside its compiled closure:

- **package data**: every scanned file inside a first-party package that is
  not one of its modules, in the bundle of each route whose closure holds
  the package (the deepest package directory above the file). A regular
  package is held when it is in the closure; a namespace package when a
  module directly inside it is;
- the files ``include`` globs match (the project's, and the route's own in
  ``[tool.vega.per_route."<pattern>"]``). A glob that matches a module's file
  adds the module itself, and what it imports, to the route's closure
  instead (``included_modules``, used by ``graph.closures``);

less the data files ``exclude`` globs match (the project's, then the
route's: gitignore-style, the last matching line wins, so a route can
``!``-negate a project's exclude). Stale ``.pyc``/``.pyo`` files are never
bundled.

A file's entry name is its path below the innermost source root holding it
(its project-relative path when no root holds it): where it sits beside the
modules, as in the source tree. A member is (entry name, content digest),
so a bundle's digest changes exactly when one of its files does, and a
change to a file rebuilds exactly the bundles that hold it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vega_dag.daemon import warm
from vega_dag.errors import VegaError
from vega_dag.pipeline.result import BuildError

if TYPE_CHECKING:
    from vega_dag.config import VegaConfig
    from vega_dag.graph.analysis import Analysis
    from vega_dag.graph.modules import Module, Route
    from vega_dag.pipeline.context import BuildContext

#: Never bundled as data: bytecode left by some interpreter next to its source.
NEVER_DATA = (".pyc", ".pyo")
#: The bundle's own entries live under this prefix.
RESERVED = "__vega__/"


class FilesConfigError(VegaError):
    """A glob or a route of ``include``/``exclude``/``[tool.vega.per_route]`` is wrong."""


@dataclass
class FileRules:
    """The project's and each route's include and exclude globs, compiled."""

    include: Any = None
    exclude: Any = None
    #: route pattern → (include spec, exclude spec) of that route, the project's lines first
    routes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.include is None and self.exclude is None and not self.routes

    def specs(self, pattern: str) -> tuple[Any, Any]:
        """(include, exclude) specs that apply to route ``pattern`` (None: no globs)."""
        return self.routes.get(pattern, (self.include, self.exclude))


def _spec(lines: list[str], where: str) -> Any:
    if not lines:
        return None
    import pathspec

    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except (ValueError, TypeError) as err:
        raise FilesConfigError(f"[tool.vega] {where}: {err}") from None


def file_rules(vega: VegaConfig) -> FileRules:
    """``vega``'s globs, compiled (pathspec is imported only when there are some)."""
    if not vega.include and not vega.exclude and not vega.per_route:
        return FileRules()

    def compile_rules() -> FileRules:
        rules = FileRules(_spec(vega.include, "include"), _spec(vega.exclude, "exclude"))
        for pattern, own in sorted(vega.per_route.items()):
            where = f'per_route."{pattern}"'
            rules.routes[pattern] = (
                _spec([*vega.include, *own.include], f"{where}.include"),
                _spec([*vega.exclude, *own.exclude], f"{where}.exclude"),
            )
        return rules

    key = (tuple(vega.include), tuple(vega.exclude), msgspec_key(vega.per_route))
    return warm.derived("file-rules", key, compile_rules)


def msgspec_key(value: object) -> str:
    import msgspec

    return msgspec.json.encode(value, order="sorted").decode()


def check_route_settings(vega: VegaConfig, routes: dict[str, Route]) -> list[str]:
    """Problems with ``[tool.vega.per_route]``: every key must be a route pattern."""
    return [
        f'[tool.vega.per_route."{pattern}"]: no route has this pattern '
        f"(routes: {', '.join(sorted(routes)) or 'none'})"
        for pattern in sorted(vega.per_route)
        if pattern not in routes
    ]


def _inner_prefixes(source_roots: list[str]) -> list[str]:
    """The roots as path prefixes, innermost (longest) first."""
    prefixes = ["" if root in (".", "") else root.strip("/") + "/" for root in source_roots]
    return sorted(set(prefixes), key=len, reverse=True)


def entry_name(path: str, prefixes: list[str]) -> str:
    """``path``'s name in a bundle: below the innermost root holding it (see the module doc)."""
    for prefix in prefixes:
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


@dataclass
class DataTable:
    """The package data of a scanned project (derived from the file list alone)."""

    #: owner package → its data files' paths, sorted
    owned: dict[str, list[str]]
    #: module → the owner packages it holds (see the module doc), for modules holding any
    holds: dict[str, list[str]]
    #: every path of ``owned``'s and the included data files → entry name
    entries: dict[str, str]


def data_table(
    modules: dict[str, Module], files: Iterable[str], source_roots: list[str]
) -> DataTable:
    """Which package owns each data file, and which modules hold which packages."""
    from vega_dag.graph.resolve import package_names

    module_paths = {m.path for m in modules.values()}
    packages = package_names(modules)
    prefixes = _inner_prefixes(source_roots)
    owned: dict[str, list[str]] = {}
    entries: dict[str, str] = {}
    for path in sorted(files):
        if path in module_paths or path.endswith(NEVER_DATA):
            continue
        entry = entry_name(path, prefixes)
        if entry == path and "" not in prefixes:
            continue  # outside every source root: no package holds it
        dirs = entry.split("/")[:-1]
        for i in range(len(dirs), 0, -1):
            owner = ".".join(dirs[:i])
            if owner in packages:
                owned.setdefault(owner, []).append(path)
                entries[path] = entry
                break
    holds: dict[str, list[str]] = {}
    for owner in owned:
        m = modules.get(owner)
        if m is not None and m.is_package:
            holds.setdefault(owner, []).append(owner)
            continue
        # A namespace package: held by the modules directly inside it.
        for name in modules:
            if name.rpartition(".")[0] == owner:
                holds.setdefault(name, []).append(owner)
    return DataTable(owned, holds, entries)


def included_modules(
    rules: FileRules, modules: dict[str, Module], routes: dict[str, Route], files: Iterable[str]
) -> dict[str, list[str]]:
    """route pattern → the modules its ``include`` globs name (routes with some only)."""
    if rules.empty:
        return {}
    by_path = {m.path: n for n, m in modules.items()}
    out: dict[str, list[str]] = {}
    matched: dict[int, list[str]] = {}
    for pattern in routes:
        include, _ = rules.specs(pattern)
        if include is None:
            continue
        if id(include) not in matched:
            names = {by_path[p] for p in include.match_files(sorted(by_path))}
            # Importing a module imports its packages first.
            for name in list(names):
                parts = name.split(".")
                names.update(
                    p for i in range(1, len(parts)) if (p := ".".join(parts[:i])) in modules
                )
            matched[id(include)] = sorted(names)
        if matched[id(include)]:
            out[pattern] = matched[id(include)]
    return out


@dataclass
class RouteFiles:
    """The data members of every route's bundle."""

    #: route pattern → sorted (entry name, content digest), for routes with any
    members: dict[str, list[tuple[str, str]]]
    #: content digest → a project path with those bytes (where to read them)
    paths: dict[str, str]
    #: sorted (project path, digest) of every file some bundle holds
    sources: list[tuple[str, str]] = field(default_factory=list)


def route_files(
    routes: dict[str, Route],
    closures: dict[str, list[str]],
    digests: dict[str, str],
    table: DataTable,
    rules: FileRules,
    modules: dict[str, Module],
    source_roots: list[str],
) -> RouteFiles:
    """Each route's data members (see the module doc); a clash of entry names is an error."""
    members: dict[str, list[tuple[str, str]]] = {}
    paths: dict[str, str] = {}
    if not table.owned and rules.empty:
        return RouteFiles(members, paths)
    holders = set(table.holds)
    module_paths = {m.path for m in modules.values()}
    prefixes = _inner_prefixes(source_roots)
    candidates = sorted(p for p in digests if p not in module_paths and not p.endswith(NEVER_DATA))
    included: dict[int, list[str]] = {}
    excluded: dict[int, dict[str, bool]] = {}
    by_route: dict[str, list[str]] = {}
    problems: list[str] = []
    for pattern in routes:
        closure = closures[pattern]
        chosen: list[str] = []
        if not holders.isdisjoint(closure):
            owners = {o for m in closure for o in table.holds.get(m, ())}
            for owner in sorted(owners):
                chosen.extend(table.owned[owner])
        include, exclude = rules.specs(pattern)
        if include is not None:
            if id(include) not in included:
                included[id(include)] = list(include.match_files(candidates))
            chosen.extend(included[id(include)])
        if not chosen:
            continue
        if exclude is not None:
            seen = excluded.setdefault(id(exclude), {})
            chosen = [
                p
                for p in chosen
                if not (seen[p] if p in seen else seen.setdefault(p, exclude.match_file(p)))
            ]
        by_entry: dict[str, str] = {}
        for path in sorted(set(chosen)):
            entry = table.entries.get(path) or entry_name(path, prefixes)
            if entry.startswith(RESERVED):
                problems.append(f"{path}: {RESERVED} is reserved for the bundle's own entries")
                continue
            other = by_entry.setdefault(entry, path)
            if other != path:
                problems.append(
                    f"route {pattern}: {other} and {path} would both be {entry!r} in its bundle; "
                    "exclude one of them"
                )
        if by_entry:
            by_route[pattern] = list(by_entry.values())
            members[pattern] = sorted((e, digests[p]) for e, p in by_entry.items())
            for path in by_entry.values():
                paths.setdefault(digests[path], path)
    if problems:
        raise BuildError(sorted(set(problems)))
    bundled = {path for route in by_route.values() for path in route}
    return RouteFiles(members, paths, sorted((p, digests[p]) for p in bundled))


def bundle_files(ctx: BuildContext, a: Analysis) -> RouteFiles:
    """The files step of a build: every route's data members."""
    vega = ctx.config.vega
    # Derived from the file list (graph.tables: kept, and stored beside the state).
    if a.tables is not None:
        table = a.tables.data()
    else:
        table = data_table(a.modules, a.digests, vega.source_roots)
    return route_files(
        a.routes, a.closures, a.digests, table, a.rules, a.modules, vega.source_roots
    )
