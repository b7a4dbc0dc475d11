"""The bundle of one route: its module's compiled import closure, as a zip.

Layout of a bundle (importable with zipimport; directory entries included so
namespace packages resolve):

    __vega__/route.json      {"pattern", "module", "file", "entry", "format"}
    api/orders/[id].pyc      the route module
    lib/__init__.pyc         every module of its closure, by import path
    lib/db.pyc

``entry`` is how the runtime calls the route: ``app`` (an ASGI or WSGI
application, told apart when it is loaded) or ``handler`` (a plain
``handler(request)`` function).
"""

from __future__ import annotations

import msgspec

from vega_dag import _core
from vega_dag.bundle import BUNDLE_FORMAT
from vega_dag.errors import VegaError
from vega_dag.graph.modules import Module, Route

ENTRY_POINTS = ("app", "handler")


class RouteExportError(VegaError):
    def __init__(self, path: str, pattern: str) -> None:
        super().__init__(
            f"{path}: route {pattern} exports nothing runnable: define `app` (ASGI or WSGI) "
            "or `handler(request)` at module level"
        )
        self.path = path
        self.pattern = pattern


def entry_point(route: Route, top_level_names: list[str]) -> str:
    for name in ENTRY_POINTS:
        if name in top_level_names:
            return name
    raise RouteExportError(route.module.path, route.pattern)


def archive_name(module: Module) -> str:
    base = module.name.replace(".", "/")
    return f"{base}/__init__.pyc" if module.is_package else f"{base}.pyc"


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
    route: Route, entry: str, closure: list[Module], pyc_digest: dict[str, str]
) -> tuple[RouteMeta, list[tuple[str, str]]]:
    """What the bundle's bytes depend on: its metadata and (entry name, pyc digest)s."""
    meta = RouteMeta(
        pattern=route.pattern, module=route.module.name, file=route.module.path, entry=entry
    )
    members = sorted((archive_name(m), pyc_digest[m.name]) for m in closure)
    return meta, members


def build_bundle(
    meta: RouteMeta, members: list[tuple[str, str]], pyc_bytes: dict[str, bytes]
) -> tuple[bytes, str]:
    """The bundle's bytes and digest; ``pyc_bytes`` maps pyc digest → bytes."""
    entries: list[tuple[str, bytes]] = [
        ("__vega__/route.json", msgspec.json.encode(meta, order="sorted"))
    ]
    entries.extend((name, pyc_bytes[digest]) for name, digest in members)
    # A fixed epoch, not SOURCE_DATE_EPOCH: a bundle must not depend on the
    # environment it was built in (as pex does, pex#722). Entries are stored,
    # not deflated: one shared module sits in many bundles, and an edit to it
    # rebuilds them all, so a bundle must cost a copy, not a compression.
    return _core.build_archive(entries, epoch=_core.DEFAULT_ARCHIVE_EPOCH, compress=False)
