"""The build manifest: what a build produced, identified by its digest.

It is stored canonically (sorted-key JSON) as an object of the store, so the
manifest's digest identifies the build: the same sources, lock, settings and
toolchain give the same digest, wherever the project lives.
"""

from __future__ import annotations

import msgspec

from vega_dag import _core
from vega_dag.compile.toolchain import Toolchain
from vega_dag.config import Rewrite

MANIFEST_SCHEMA = 1


class RouteEntry(msgspec.Struct, frozen=True):
    pattern: str
    module: str
    file: str
    #: "app" (ASGI/WSGI) or "handler"
    entry: str
    bundle: str


class AppRouteEntry(RouteEntry, frozen=True):
    """A changed route of a one-app project's application, as a deploy probes it.

    Never in a manifest: ``pattern`` is the route's path, ``module`` its
    handler's module, ``bundle`` the app's; ``methods`` say whether it may be
    probed without a configured probe (a GET without parameters).
    """

    methods: list[str] = []

    def describe(self) -> str:
        return f"{','.join(self.methods)} {self.pattern} ({self.module})"


class AppRoute(msgspec.Struct, frozen=True):
    """One route of a one-app project's application, as its framework declares it."""

    #: "GET", "POST", …; ["*"] when any (Django); ["WS"] for a websocket
    methods: list[str]
    #: The path pattern, mount path included, in the routes' syntax ("/items/{item_id}")
    path: str
    #: The module of the route's handler ("shop.routers.items")
    module: str
    #: Digest of the compiled modules the route runs: its handler's import
    #: closure, plus the modules of the app no handler imports (the app's
    #: own module, its middleware): a deploy probes the routes whose digest
    #: changed.
    closure: str


class Manifest(msgspec.Struct, frozen=True, omit_defaults=True):
    # omit_defaults: a field added with a default is left out while it has
    # it, so manifests that do not use it keep their bytes (and digests).
    schema: int
    toolchain: Toolchain
    #: Digest of the (path, digest) list of every module, every file a
    #: bundle holds besides them, and the lock.
    source: str
    #: Digest of the project's [tool.vega] settings.
    config: str
    #: The dependency layer's digest, or None without a lock file.
    layer: str | None
    routes: list[RouteEntry]
    #: Environment the routes run with (from [tool.vega] env).
    env: dict[str, str]
    #: Paths served as others, before routing (from [tool.vega] rewrites).
    rewrites: list[Rewrite] = []
    #: A one-app project's application routes (``bundle.discover``); its
    #: one entry of ``routes`` serves them all.
    app_routes: list[AppRoute] = []

    def encode(self) -> bytes:
        return msgspec.json.encode(self, order="sorted")

    @property
    def digest(self) -> str:
        return _core.hash_bytes(self.encode())


def decode_manifest(data: bytes) -> Manifest:
    return msgspec.json.decode(data, type=Manifest)
