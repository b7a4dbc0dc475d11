"""The bundle of one route: its module's compiled import closure, as a zip.

Layout of a bundle (importable with zipimport; directory entries included so
namespace packages resolve):

    __vega__/route.json      {"pattern", "module", "file", "entry", "format"}
    api/orders/[id].pyc      the route module
    lib/__init__.pyc         every module of its closure, by import path
    lib/db.pyc
    lib/templates/page.html  data files (bundle.files), where the project has them

``entry`` is how the runtime calls the route: ``app`` (an ASGI or WSGI
application, told apart when it is loaded) or ``handler`` (a plain
``handler(request)`` function).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from vega_dag import _core
from vega_dag.bundle import BUNDLE_FORMAT
from vega_dag.errors import VegaError
from vega_dag.graph.modules import Module, Route, module_file
from vega_dag.pipeline.result import BuildError
from vega_dag.store.state import Parsed

if TYPE_CHECKING:
    from vega_dag.pipeline.context import BuildContext
    from vega_dag.store.state import BuildState

ENTRY_POINTS = ("app", "handler")


class RouteExportError(VegaError):
    def __init__(self, path: str, pattern: str) -> None:
        super().__init__(
            f"{path}: route {pattern} exports nothing runnable: define `app` (ASGI or WSGI) "
            "or `handler(request)` at module level"
        )
        self.path = path
        self.pattern = pattern


class AppExportError(VegaError):
    def __init__(self, path: str, app: str, wanted: tuple[str, ...]) -> None:
        names = " or ".join(f"`{n}`" for n in wanted)
        hint = (
            ""
            if len(wanted) == 1
            else '; or name the application in [tool.vega] app = "package.module:attr"'
        )
        super().__init__(
            f"{path}: the project's application {app} is not defined there: "
            f"define {names} (ASGI or WSGI) at module level{hint}"
        )
        self.path = path


def entry_point(route: Route, top_level_names: list[str]) -> str:
    if route.app is not None:
        # A one-app project's application: the configured attribute, or the
        # first of the usual ones the module defines.
        from vega_dag.graph.app import APP_ATTRS

        wanted = (route.app,) if route.app else APP_ATTRS
        for name in wanted:
            if name in top_level_names:
                return name
        where = f"{route.module.name}:{route.app}" if route.app else route.module.name
        raise AppExportError(route.module.path, where, wanted)
    for name in ENTRY_POINTS:
        if name in top_level_names:
            return name
    raise RouteExportError(route.module.path, route.pattern)


def route_entries(
    ctx: BuildContext,
    routes: dict[str, Route],
    digests: dict[str, str],
    parsed: dict[str, Parsed],
    state: BuildState,
) -> dict[str, str]:
    """route pattern → its ``entry_point``; every route that exports nothing is a problem."""
    entries, problems = {}, []
    for pattern, route in routes.items():
        digest = digests[route.module.path]
        old = state.routes.get(pattern)
        if (
            digest not in parsed
            and old is not None
            and old.module == route.module.name
            and not route.app  # a configured app attribute may have been renamed
        ):
            # Not parsed this build: unchanged since the last one, whose
            # record says how the route is called.
            entries[pattern] = old.entry
            continue
        if digest not in parsed:
            source = (ctx.root / route.module.path).read_bytes()
            imports, names = _core.scan_imports(source, route.module.path)
            parsed[digest] = Parsed(imports=imports, names=names)
        try:
            entries[pattern] = entry_point(route, parsed[digests[route.module.path]].names)
        except VegaError as err:
            problems.append(str(err))
    if problems:
        raise BuildError(problems)
    return entries


def archive_name(module: Module) -> str:
    """The module's entry in a bundle: its file below its source root, as ``.pyc``.

    From the path, not the name: a catch-all's name has dots of its own
    (``api.docs.[...slug]`` is ``api/docs/[...slug].pyc``).
    """
    return module_file(module.name, module.path).removesuffix(".py") + ".pyc"


def archive_name_of(name: str, path: str) -> str:
    """``archive_name`` of the module ``name`` whose source is ``path``."""
    return archive_name(Module(name=name, path=path, is_package=path.endswith("/__init__.py")))


class RouteMeta(msgspec.Struct, frozen=True):
    pattern: str
    module: str
    file: str
    entry: str
    format: int = BUNDLE_FORMAT


def bundle_inputs(
    route: Route,
    entry: str,
    closure: list[str],
    archive_names: dict[str, str],
    pyc_digest: dict[str, str],
) -> tuple[RouteMeta, list[tuple[str, str]]]:
    """What the bundle's bytes depend on: its metadata and (entry name, pyc digest)s.

    ``closure`` names the modules; ``archive_names`` maps each to its
    ``archive_name``.
    """
    meta = RouteMeta(
        pattern=route.pattern, module=route.module.name, file=route.module.path, entry=entry
    )
    members = sorted([(archive_names[n], pyc_digest[n]) for n in closure])
    return meta, members


#: A fixed epoch, not SOURCE_DATE_EPOCH: a bundle must not depend on the
#: environment it was built in (as pex does, pex#722).
BUNDLE_EPOCH = _core.DEFAULT_ARCHIVE_EPOCH
ROUTE_JSON = "__vega__/route.json"


def route_json(meta: RouteMeta) -> bytes:
    """The bundle's own entry (besides its members): ``__vega__/route.json``."""
    return msgspec.json.encode(meta, order="sorted")


def bundle_tree(members: list[tuple[str, str]], route_digest: str) -> list[tuple[str, str]]:
    """The bundle's tree (store.tree): its members' (entry name, digest)s and its route.json's."""
    return [(ROUTE_JSON, route_digest), *members]


def build_bundle(
    meta: RouteMeta, members: list[tuple[str, str]], pyc_bytes: dict[str, bytes]
) -> tuple[bytes, str]:
    """The bundle's archive and digest (its tree's); ``pyc_bytes`` maps pyc digest → bytes.

    Entries are stored, not deflated: one shared module sits in many bundles,
    and an edit to it rebuilds them all, so a bundle must cost a copy, not a
    compression (and the build itself makes only the tree: ``bundles``).
    """
    from vega_dag.store.tree import Tree, tree_archive, tree_records

    route = route_json(meta)
    route_digest = _core.hash_bytes(route)
    tree = bundle_tree(members, route_digest)
    ((digest, _),) = tree_records([tree], BUNDLE_EPOCH)
    blobs = {**pyc_bytes, route_digest: route}
    return tree_archive(Tree(BUNDLE_EPOCH, sorted(tree)), blobs.__getitem__), digest
