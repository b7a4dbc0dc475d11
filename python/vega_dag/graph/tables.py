"""The module and route tables of a build, and the digest of its module set.

They are derived from the scanned file list alone, so a resident build
process (the daemon) keeps them while the list is the same (``tables_key``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import msgspec

from vega_dag import _core
from vega_dag.daemon import warm
from vega_dag.graph.app import app_route
from vega_dag.graph.modules import RouteConflictError, layout_problems, module_table, route_table
from vega_dag.pipeline.result import BuildError

if TYPE_CHECKING:
    from vega_dag.config import VegaConfig
    from vega_dag.daemon.warm import LastBuild
    from vega_dag.graph.modules import Module, Route

#: Bump when import resolution changes: cached edges are then recomputed
#: (3: constant dynamic imports are edges).
RESOLVER_VERSION = 3


def scanned_files(
    changes: _core.Changes, vega: VegaConfig, last: LastBuild | None
) -> tuple[dict[str, str], tuple]:
    """path → content digest of every scanned file, and the key of the tables built from them.

    After ``last`` (see ``daemon.warm.last_build``) only the changed paths
    differ from its tables.
    """
    if last is not None:
        digests = dict(last.digests)
        table = changes.table
        for path in changes.changed:
            digests[path] = cast(str, table.digest(path))  # the scan just listed it
        return digests, last.tables_key
    digests = changes.table.digests()
    files = tuple(sorted(digests))
    return digests, (files, tuple(vega.source_roots), vega.routes, vega.app, vega.app_mount)


def project_tables(
    vega: VegaConfig, tables_key: tuple
) -> tuple[dict[str, Module], dict[str, Route], str]:
    """The module table, the route table and the module set's digest, for ``tables_key``.

    Route files that cannot be routes (below a catch-all directory, or two
    claiming one path) are a ``BuildError`` naming them.
    """

    def tables() -> tuple[dict[str, Module], dict[str, Route], str]:
        files = list(tables_key[0])
        modules = module_table(files, vega.source_roots, vega.routes)
        problems = layout_problems(files, modules, vega.routes)
        routes: dict[str, Route] = {}
        if vega.app is None:
            try:
                routes = route_table(modules, vega.routes)
            except RouteConflictError as err:
                problems += err.problems
        if vega.app is not None or (not routes and not problems):
            # A one-app project: its application is its one route.
            app = app_route(vega, modules)
            if isinstance(app, str):
                problems.append(app)
            elif app is not None:
                routes = {app.pattern: app}
        if problems:
            raise BuildError(problems)
        module_set = _core.hash_bytes(
            msgspec.json.encode(
                [
                    RESOLVER_VERSION,
                    sorted((m.name, m.path, m.is_package) for m in modules.values()),
                ]
            )
        )
        return modules, routes, module_set

    # A resident build process keeps them while the file list is the same.
    return warm.derived("tables", tables_key, tables)
