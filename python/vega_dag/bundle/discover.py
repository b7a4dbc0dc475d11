"""A one-app project's routes: discovered from its bundle, traced to the modules they run.

The application (``graph.app``) ships as one bundle, but its framework
declares routes of its own (FastAPI/Starlette ``app.routes``, Flask's
``url_map``, Django's URL resolver). They are listed at build time where
the import check imports the app from its bundle alone (``bundle.importcheck``,
``bundle/isolated.py``: ``python -I -S``, the bundle laid out as the regions
lay it out and the dependency layer on ``sys.path``, never the source tree,
within ``[tool.vega.import_check] timeout_s``), by ``framework_routes.py``
in the same child, so a discovery costs no interpreter of its own. The list
is cached by the bundle's digest (and the layer's, the env's and the
lister's), so a build that did not change the app's bundle imports nothing;
with the check off, the app is imported the same way for the discovery alone.

Each route is then traced through the import graph: its handler module's
closure, plus the app's modules that no handler imports (the app's own
module, its middleware, which every request runs through). A route's
``closure`` digest covers those modules' compiled bytes, so a change is
traced to exactly the routes whose digest moved: ``--explain``, ``plan``
and the deploy name them, and the gate probes them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from vega_dag import _core
from vega_dag.graph.modules import module_parents
from vega_dag.manifest.schema import AppRoute
from vega_dag.pipeline.result import BuildError
from vega_dag.store.actions import action_key

if TYPE_CHECKING:
    from vega_dag.bundle.bundles import Bundled
    from vega_dag.bundle.files import RouteFiles
    from vega_dag.compile.dirty import Compiled
    from vega_dag.graph.analysis import Analysis
    from vega_dag.graph.modules import Route
    from vega_dag.pipeline.context import BuildContext
    from vega_dag.store.state import BuildState, RouteRecord

LISTER = Path(__file__).with_name("framework_routes.py")


class Found(msgspec.Struct, frozen=True):
    methods: list[str]
    path: str
    module: str


class Discovered(msgspec.Struct, frozen=True):
    #: "fastapi", "starlette", "flask", "django"; None for an app of no known framework
    framework: str | None
    routes: list[Found]


def app_name(route: Route, entry: str) -> str:
    return f"{route.module.name}:{entry}"


def discovery_key(ctx: BuildContext, record: RouteRecord, layer: str | None) -> str:
    """The action key of discovering the routes of the app in ``record``'s bundle."""
    env = dict(sorted(ctx.config.vega.env.items()))
    # The lister's own digest: a change to what it lists redoes every discovery.
    lister = _core.hash_file(LISTER)
    return action_key("app-routes", lister, record.bundle, record.entry, layer, env)


def last_listing(
    ctx: BuildContext, state: BuildState, route: Route, record: RouteRecord, layer: str | None
) -> Discovered | None:
    """The routes listed from the app's last bundle (same entry, layer, env, lister), if kept.

    What a rebuilt bundle keeps when its import and listing would run only
    code unchanged since they last ran (``bundle.importcheck``'s same-run
    verdict): the framework's routes are made by that code, so they are
    the same routes.
    """
    old = state.routes.get(route.pattern)
    if old is None or old.entry != record.entry or old.bundle == record.bundle:
        return None
    return cached(ctx, discovery_key(ctx, old, layer))


def cached(ctx: BuildContext, key: str) -> Discovered | None:
    out = ctx.actions.get(key)
    if out is not None and ctx.present(out):
        return msgspec.json.decode(ctx.store.get(out), type=Discovered)
    return None


def request(record: RouteRecord) -> dict:
    """What the import check's request for the app adds (``bundle/isolated.py``)."""
    return {"lister": str(LISTER), "attr": record.entry}


def discover(
    ctx: BuildContext,
    a: Analysis,
    compiled: Compiled,
    files: RouteFiles,
    bundled: Bundled,
    route: Route,
    layer: tuple[str, str] | None,
    answer: dict | None,
    state: BuildState,
) -> Discovered:
    """The framework routes of the app (cached by its bundle's digest).

    ``answer`` is the import check's, when it imported the app this build
    (or ``{"carried": True}``: it found the last listing stands); else (the
    check is off, or the bundle was not rebuilt) the app is imported here,
    the same way.
    """
    record = bundled.records[route.pattern]
    key = discovery_key(ctx, record, layer[1] if layer else None)
    found = cached(ctx, key)
    if found is not None:
        return found
    name = app_name(route, record.entry)
    if answer is not None and answer.get("carried"):
        # The import check found the import and listing would run only code
        # that ran when the last bundle's routes were listed.
        found = last_listing(ctx, state, route, record, layer[1] if layer else None)
        assert found is not None, "the check carries only a listing that is kept"
        ctx.why(
            f"app {name}: bundle changed, but its import and listing run only code that has "
            "not changed: its routes kept"
        )
        _keep(ctx, key, found)
        return found
    ctx.why(f"app {name}: bundle changed; its routes discovered again")
    if answer is None:
        answer = _import_app(ctx, a, compiled, files, bundled, route, layer)
    if not answer.get("ok"):
        from vega_dag.bundle.importcheck import _what

        where = f" at {answer['importer']}" if answer.get("importer") else ""
        raise BuildError(
            [
                f"app {name}: importing it from its bundle (as a region would) to discover its "
                f"routes failed{where}: {_what(answer)}"
            ]
        )
    result = answer["discovered"]
    if "error" in result:
        where = f" at {result['where']}" if result.get("where") else ""
        raise BuildError(
            [
                f"app {name}: listing its routes failed{where}: "
                f"{result['error']}: {result['message']}"
            ]
        )
    found = msgspec.convert(result, Discovered)
    _keep(ctx, key, found)
    return found


def _keep(ctx: BuildContext, key: str, found: Discovered) -> None:
    data = msgspec.json.encode(found, order="sorted")
    digest = _core.hash_bytes(data)
    ctx.new_objects[digest] = data
    ctx.new_actions[key] = digest


def _import_app(
    ctx: BuildContext,
    a: Analysis,
    compiled: Compiled,
    files: RouteFiles,
    bundled: Bundled,
    route: Route,
    layer: tuple[str, str] | None,
) -> dict:
    """The isolated driver's answer for the app, imported from its bundle laid out alone."""
    from vega_dag.bundle.importcheck import base_path, bundle_request, layer_paths, run_driver
    from vega_dag.regions.layout import remove_tree

    timeout = ctx.config.vega.import_check.timeout_s
    # Outside the project: the daemon's watcher must not see the tree come and go.
    scratch = Path(tempfile.mkdtemp(prefix="vega-discover-"))
    try:
        req = bundle_request(
            ctx,
            a,
            compiled,
            files,
            bundled,
            route.pattern,
            scratch / "code",
            scratch,
            layer_paths(ctx, layer),
            ctx.store.get,
        )
        req["discover"] = request(bundled.records[route.pattern])
        answer = run_driver([req], base_path(ctx.root), timeout)[route.pattern]
    finally:
        remove_tree(scratch)
    if answer.get("timeout"):
        raise BuildError(
            [
                f"app {app_name(route, bundled.records[route.pattern].entry)}: importing it from "
                f"its bundle did not finish within {timeout:g} s ([tool.vega.import_check] "
                "timeout_s)"
            ]
        )
    return answer


def _closure(a: Analysis, root: str) -> set[str]:
    """``root`` and every module its import runs: its imports', and its packages'."""
    # A plain walk: one handler module's reach is small, and networkx costs
    # more to import than the walks cost.
    seen = {root}
    stack = [root]
    while stack:
        name = stack.pop()
        module = a.modules.get(name)
        parents = module_parents(module) if module is not None else []
        for dep in [*a.deps.get(name, ()), *parents]:
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def _full_path(mount: str, path: str) -> str:
    if mount == "/":
        return path
    return mount.rstrip("/") + (path if path != "/" else "")


def app_routes(
    ctx: BuildContext,
    a: Analysis,
    route: Route,
    compiled: Compiled,
    files: RouteFiles,
    bundled: Bundled,
    state: BuildState,
    layer: tuple[str, str] | None,
    answer: dict | None = None,
) -> list[AppRoute]:
    """The app's routes, each with the digest of the modules it runs (see the module docstring)."""
    found = discover(ctx, a, compiled, files, bundled, route, layer, answer, state)
    record = bundled.records[route.pattern]
    bundle = set(a.closures[route.pattern])
    pyc = compiled.pyc
    handlers = sorted({f.module for f in found.routes if f.module in bundle})
    reach = {m: _closure(a, m) & bundle for m in handlers}
    shared = bundle.difference(*reach.values()) if reach else bundle
    changed = None
    if ctx.explain and state.routes.get(route.pattern) is None:
        ctx.why(f"app {app_name(route, record.entry)}: new; {len(found.routes)} routes discovered")
    elif ctx.explain:
        changed = {n for n in bundle if (old := state.modules.get(n)) is None or old.pyc != pyc[n]}
    data_files = sorted(files.members.get(route.pattern, []))
    out = []
    for f in found.routes:
        # A handler of the framework's own (FastAPI's /openapi.json) runs on
        # what the whole app declares.
        modules = sorted(reach[f.module] | shared) if f.module in reach else sorted(bundle)
        # The bundle's data files (templates, static files) are every route's.
        digest = _core.hash_bytes(msgspec.json.encode([[(n, pyc[n]) for n in modules], data_files]))
        path = _full_path(ctx.config.vega.app_mount, f.path)
        out.append(AppRoute(methods=f.methods, path=path, module=f.module, closure=digest))
        if changed:
            hit = [n for n in modules if n in changed]
            if hit:
                which = "changed module" + ("s " if len(hit) > 1 else " ")
                ctx.why(f"route {','.join(f.methods)} {path} ({f.module}): {which}{', '.join(hit)}")
    return out
