"""The module and route tables of a build, and the digest of its module set.

They are derived from the scanned file list alone (and the layout settings:
source roots, routes directory, app), and so are the tables later steps take
from them (package names, first-party top-level names, each module's entry in
a bundle, which package owns which data file): ``FileTables`` holds them all.
A resident build process (the daemon) keeps them in memory while the list is
the same (``tables_key``); every build also stores them beside the state
(``tables.msgpack``), under the digest of those inputs, so a one-shot build
whose files were only edited (none added, removed or renamed) reads them
instead of deriving them from 20,000 paths again.

The stored copy is never trusted beyond its key: a file of another version,
for other inputs, or whose bytes do not hash to the digest it records is
ignored and the tables are derived again (and stored at the build's end).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import msgspec

from vega_dag import _core
from vega_dag.bundle.files import DataTable, data_table
from vega_dag.daemon import warm
from vega_dag.graph.app import app_route
from vega_dag.graph.modules import (
    Module,
    Route,
    RouteConflictError,
    layout_problems,
    module_table,
    route_table,
    top_level_packages,
)
from vega_dag.graph.resolve import package_names
from vega_dag.pipeline.result import BuildError

if TYPE_CHECKING:
    from vega_dag.config import VegaConfig
    from vega_dag.daemon.warm import LastBuild

#: Bump when import resolution changes: cached edges are then recomputed
#: (3: constant dynamic imports are edges).
RESOLVER_VERSION = 3

#: Bump when what ``FileTables`` holds, or how any of it is derived, changes:
#: stored tables of another version are derived again.
TABLES_VERSION = 1

#: The stored tables' file, beside the state's (``store.state.state_paths``).
TABLES_FILE = "tables.msgpack"


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


@dataclass
class FileTables:
    """What ``tables_key`` (the file list and the layout settings) determines.

    The module table, route table and module set's digest are derived at
    once; the rest on first use (a build that resolves no import needs no
    package names), or all of it when the tables are stored.
    """

    key: tuple
    #: dotted name → module, in ``module_table``'s order
    modules: dict[str, Module]
    #: URL pattern → route, sorted by pattern
    routes: dict[str, Route]
    #: digest of the sorted module table (see ``BuildState.module_set``)
    module_set: str
    _packages: set[str] | None = None
    _top_level: set[str] | None = None
    _data: DataTable | None = None
    _archive_names: dict[str, str] | None = None
    _digest: str | None = None
    #: Whether ``tables.msgpack`` holds these very tables (nothing to write).
    stored: bool = False

    @property
    def files(self) -> tuple[str, ...]:
        return self.key[0]

    @property
    def source_roots(self) -> list[str]:
        return list(self.key[1])

    @property
    def digest(self) -> str:
        """The digest of the inputs the tables are derived from (their stored key)."""
        if self._digest is None:
            self._digest = inputs_digest(self.key)
        return self._digest

    def packages(self) -> set[str]:
        """Every dotted name that is a package (``graph.resolve.package_names``)."""
        if self._packages is None:
            self._packages = package_names(self.modules)
        return self._packages

    def top_level(self) -> set[str]:
        """First-party top-level names (``graph.modules.top_level_packages``)."""
        if self._top_level is None:
            self._top_level = top_level_packages(self.modules, list(self.files), self.source_roots)
        return self._top_level

    def data(self) -> DataTable:
        """Which package owns each data file (``bundle.files.data_table``)."""
        if self._data is None:
            self._data = data_table(self.modules, self.files, self.source_roots)
        return self._data

    def archive_names(self) -> dict[str, str]:
        """module → its entry in a bundle (``bundle.routes.archive_name``)."""
        if self._archive_names is None:
            from vega_dag.bundle.routes import archive_name

            self._archive_names = {n: archive_name(m) for n, m in self.modules.items()}
        return self._archive_names


def inputs_digest(tables_key: tuple) -> str:
    """The key stored tables are kept under: the inputs and how they are read."""
    return _core.hash_bytes(
        msgspec.msgpack.encode([TABLES_VERSION, RESOLVER_VERSION, list(tables_key)])
    )


def project_tables(vega: VegaConfig, tables_key: tuple, stored: Path | None = None) -> FileTables:
    """The tables of ``tables_key``: kept by a resident process, read from ``stored``
    (``tables.msgpack``) when it holds them, else derived.

    Route files that cannot be routes (below a catch-all directory, or two
    claiming one path) are a ``BuildError`` naming them (never stored: every
    build derives them again and reports the same).
    """

    def tables() -> FileTables:
        if stored is not None:
            found = load_tables(stored, tables_key)
            if found is not None:
                return found
        return derive_tables(vega, tables_key)

    # A resident build process keeps them while the file list is the same.
    return warm.derived("tables", tables_key, tables)


def derive_tables(vega: VegaConfig, tables_key: tuple) -> FileTables:
    """``FileTables`` computed from ``tables_key`` (see ``project_tables``)."""
    files = list(tables_key[0])
    source_roots = list(tables_key[1])
    modules = module_table(files, source_roots, vega.routes)
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
    return FileTables(tables_key, modules, routes, module_set)


class _StoredTables(msgspec.Struct, array_like=True, gc=False):
    modules: list[Module]
    #: (pattern, module name, app), in the route table's order
    routes: list[tuple[str, str, str | None]]
    module_set: str
    packages: list[str]
    top_level: list[str]
    owned: dict[str, list[str]]
    holds: dict[str, list[str]]
    entries: dict[str, str]
    #: each module's archive name, in the modules' order
    archive_names: list[str]


class _TablesFile(msgspec.Struct, array_like=True):
    version: int
    #: ``inputs_digest`` of the tables' inputs
    key: str
    #: digest of ``payload`` (a damaged file is derived again, never used)
    digest: str
    #: the encoded ``_StoredTables``
    payload: bytes


_file_decoder = msgspec.msgpack.Decoder(_TablesFile)
_payload_decoder = msgspec.msgpack.Decoder(_StoredTables)
_encoder = msgspec.msgpack.Encoder()


def load_tables(path: Path, tables_key: tuple) -> FileTables | None:
    """The tables stored at ``path`` for ``tables_key``; None if absent, stale or damaged."""
    try:
        envelope = _file_decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    if envelope.version != TABLES_VERSION:
        return None
    key = inputs_digest(tables_key)
    if envelope.key != key or _core.hash_bytes(envelope.payload) != envelope.digest:
        return None
    try:
        stored = _payload_decoder.decode(envelope.payload)
        modules = {m.name: m for m in stored.modules}
        routes = {
            pattern: Route(pattern=pattern, module=modules[name], app=app)
            for pattern, name, app in stored.routes
        }
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError):
        return None  # a payload that hashes right but is not ours: derived again
    if len(stored.archive_names) != len(modules):
        return None
    return FileTables(
        tables_key,
        modules,
        routes,
        stored.module_set,
        _packages=set(stored.packages),
        _top_level=set(stored.top_level),
        _data=DataTable(stored.owned, stored.holds, stored.entries),
        _archive_names=dict(zip(modules, stored.archive_names, strict=True)),
        _digest=key,
        stored=True,
    )


def save_tables(path: Path, tables: FileTables) -> None:
    """Store ``tables`` at ``path`` (every derived part, computed now if it was not)."""
    from vega_dag.store.objects import write_durably

    if tables.stored:
        return
    data = tables.data()
    names = tables.archive_names()
    payload = _encoder.encode(
        _StoredTables(
            modules=list(tables.modules.values()),
            routes=[(p, r.module.name, r.app) for p, r in tables.routes.items()],
            module_set=tables.module_set,
            packages=sorted(tables.packages()),
            top_level=sorted(tables.top_level()),
            owned=data.owned,
            holds=data.holds,
            entries=data.entries,
            archive_names=[names[n] for n in tables.modules],
        )
    )
    envelope = _TablesFile(TABLES_VERSION, tables.digest, _core.hash_bytes(payload), payload)
    try:
        write_durably(path, _encoder.encode(envelope), sync=False)
    except OSError:
        return  # a cache: the next build derives them again (and tries again)
    tables.stored = True
