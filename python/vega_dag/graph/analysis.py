"""``analyze``: the project as a graph, composed from the graph stage's steps.

tables (``graph.tables``) → which modules were edited → parse
(``graph.parse``) → edges (``graph.edges``) → closures (``graph.closures``).
The build starts from it; so do ``vega-dag graph``, the drift check's builds
and ``vega-dag plan`` (a dry-run build). The include globs of
``[tool.vega]`` (``bundle.files``) add modules to closures here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from vega_dag import _core
from vega_dag.bundle.files import (
    FileRules,
    FilesConfigError,
    check_route_settings,
    file_rules,
    included_modules,
)
from vega_dag.daemon import warm
from vega_dag.graph.app import whole_project_apps
from vega_dag.graph.closures import route_closures
from vega_dag.graph.edges import resolve_edges
from vega_dag.graph.parse import parse_modules
from vega_dag.graph.tables import TABLES_FILE, FileTables, project_tables, scanned_files
from vega_dag.pipeline.result import BuildError

if TYPE_CHECKING:
    from vega_dag.config import VegaConfig
    from vega_dag.daemon.warm import LastBuild
    from vega_dag.graph.modules import Module, Route
    from vega_dag.pipeline.context import BuildContext
    from vega_dag.store.state import BuildState, Parsed


@dataclass
class Analysis:
    """The project as a graph: what ``vega-dag graph`` shows, and builds start from."""

    modules: dict[str, Module]
    routes: dict[str, Route]
    #: project-relative path → content digest, for every scanned file
    digests: dict[str, str]
    #: content digest → imports and names, for the modules (re)parsed this time
    #: (every module on a first build; only new or edited ones afterwards)
    parsed: dict[str, Parsed]
    #: module → the first-party modules it imports at run time
    deps: dict[str, list[str]]
    #: route pattern → every module in its bundle
    closures: dict[str, list[str]]
    module_set: str
    edges_digest: str
    #: With the module set unchanged, the modules whose source or path differ
    #: from the last build's record: only these are parsed, resolved and
    #: compiled again (the rest is copied from the record). None: every module.
    edited: set[str] | None = None
    #: What the tables were derived from (the key of a resident process's copies).
    tables_key: tuple = ()
    #: The tables derived from the file list (``graph.tables``); None for an
    #: analysis not made by ``analyze``.
    tables: FileTables | None = None
    #: The parse cache to write back, or None when it was not read.
    parse_cache: dict[str, Parsed] | None = None
    #: The include/exclude globs (``bundle.files``).
    rules: FileRules = field(default_factory=FileRules)
    #: route pattern → the modules its include globs add to its closure
    included: dict[str, list[str]] = field(default_factory=dict)
    #: their digest ("" for none), recorded with the closures
    included_digest: str = ""


def analyze(
    ctx: BuildContext,
    changes: _core.Changes,
    state: BuildState,
    last: LastBuild | None = None,
    *,
    with_closures: bool = True,
) -> Analysis:
    """The module table, parsed imports, edges and closures of the scanned project.

    ``state`` is the last build's record and ``last`` what a resident process
    kept of that build (``daemon.warm.last_build``). Without
    ``with_closures`` the closures are left empty (and networkx unimported)
    for a caller that needs only some of them.
    """
    vega = ctx.config.vega
    digests, tables_key = scanned_files(changes, vega, last)
    tables = project_tables(vega, tables_key, ctx.state_path.with_name(TABLES_FILE))
    modules, routes, module_set = tables.modules, tables.routes, tables.module_set
    same_set = state.module_set == module_set
    edited = _edited(modules, digests, changes, state, same_set, last, tables_key)
    parsed, parse_cache = parse_modules(ctx, modules, digests, edited, same_set)
    deps, edges_digest = resolve_edges(ctx, tables, digests, parsed, edited, state, last)
    rules = _file_rules(vega, routes)
    included = included_modules(rules, modules, routes, digests) if not rules.empty else {}
    included_digest = (
        _core.hash_bytes(msgspec.json.encode(sorted(included.items()))) if included else ""
    )
    closures = {}
    if with_closures:
        whole = whole_project_apps(ctx.root, routes, digests, parsed)
        closures = route_closures(
            routes, deps, edges_digest, state, ctx, included, included_digest, whole
        )
    return Analysis(
        modules,
        routes,
        digests,
        parsed,
        deps,
        closures,
        module_set,
        edges_digest,
        edited=edited,
        tables_key=tables_key,
        tables=tables,
        parse_cache=parse_cache,
        rules=rules,
        included=included,
        included_digest=included_digest,
    )


def _file_rules(vega: VegaConfig, routes: dict[str, Route]) -> FileRules:
    """The include/exclude globs; a bad glob or an unknown route pattern is a build error."""
    problems = check_route_settings(vega, routes)
    if problems:
        raise BuildError(problems)
    try:
        return file_rules(vega)
    except FilesConfigError as err:
        raise BuildError([str(err)]) from None


def _edited(
    modules: dict[str, Module],
    digests: dict[str, str],
    changes: _core.Changes,
    state: BuildState,
    same_set: bool,
    last: LastBuild | None,
    tables_key: tuple,
) -> set[str] | None:
    """``Analysis.edited``."""
    if same_set and last is not None:
        by_path = warm.derived(
            "module-by-path", tables_key, lambda: {m.path: n for n, m in modules.items()}
        )
        return {by_path[p] for p in changes.changed if p in by_path}
    if same_set:
        records = state.modules
        return {
            n
            for n, m in modules.items()
            if (old := records.get(n)) is None
            or old.source != digests[m.path]
            or old.path != m.path
        }
    return None
