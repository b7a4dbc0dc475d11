"""A one-app project's routes: discovered from its bundle, traced to the modules they run.

The application (``graph.app``) ships as one bundle, but its framework
declares routes of its own (FastAPI/Starlette ``app.routes``, Flask's
``url_map``, Django's URL resolver). They are listed at build time by
importing the app from its bundle alone, in a fresh ``python -I`` whose
``sys.path`` is the bundle and the dependency layer, from an empty
temporary directory, within ``[tool.vega.health] load_timeout_s``
(``discover_driver.py``): what a region would import, never the source
tree. The list is cached by the bundle's digest (and the layer's and the
env's), so a build that did not change the app's bundle does not import it.

Each route is then traced through the import graph: its handler module's
closure, plus the app's modules that no handler imports (the app's own
module, its middleware, which every request runs through). A route's
``closure`` digest covers those modules' compiled bytes, so a change is
traced to exactly the routes whose digest moved: ``--explain``, ``plan``
and the deploy name them, and the gate probes them.
"""

from __future__ import annotations

import json
import subprocess
import sys
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
    from vega_dag.compile.dirty import Compiled
    from vega_dag.graph.analysis import Analysis
    from vega_dag.graph.modules import Route
    from vega_dag.pipeline.context import BuildContext
    from vega_dag.store.state import BuildState, RouteRecord

DRIVER = Path(__file__).with_name("discover_driver.py")


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


def discover(ctx: BuildContext, route: Route, record: RouteRecord, layer: str | None) -> Discovered:
    """The framework routes of the app in ``record``'s bundle (cached by its digest)."""
    env = dict(sorted(ctx.config.vega.env.items()))
    # The driver's own digest: a change to what it lists redoes every discovery.
    driver = _core.hash_file(DRIVER)
    key = action_key("app-routes", driver, record.bundle, record.entry, layer, env)
    out = ctx.actions.get(key)
    if out is not None and ctx.present(out):
        return msgspec.json.decode(ctx.store.get(out), type=Discovered)
    ctx.why(f"app {app_name(route, record.entry)}: bundle changed; its routes discovered again")
    found = _run_driver(ctx, route, record, layer, env)
    data = msgspec.json.encode(found, order="sorted")
    digest = _core.hash_bytes(data)
    ctx.new_objects[digest] = data
    ctx.new_actions[key] = digest
    return found


def _bundle_bytes(ctx: BuildContext, digest: str) -> bytes:
    recipe = ctx.new_assemblies.get(digest)
    if recipe is None:
        return ctx.store.get(digest)
    from vega_dag.store.assembly import assemble, decode_assembly

    return assemble(decode_assembly(recipe), ctx.store.get)[0]


def _run_driver(
    ctx: BuildContext, route: Route, record: RouteRecord, layer: str | None, env: dict[str, str]
) -> Discovered:
    name = app_name(route, record.entry)
    timeout = ctx.config.vega.health.load_timeout_s
    # Outside the project: the daemon's watcher must not see the bundle come and go.
    with tempfile.TemporaryDirectory(prefix="vega-discover-") as tmp:
        bundle = Path(tmp) / "bundle.zip"
        bundle.write_bytes(_bundle_bytes(ctx, record.bundle))
        cwd = Path(tmp) / "cwd"
        cwd.mkdir()
        paths = [str(bundle)]
        if layer is not None and ctx.store.has(layer):
            from vega_dag.regions.worker import ensure_layer

            paths.append(str(ensure_layer(ctx.store, ctx.config.store_dir / "discover", layer)))
        answer = Path(tmp) / "answer.json"
        config = {
            "paths": paths,
            "module": route.module.name,
            "attr": record.entry,
            "env": env,
            "out": str(answer),
        }
        try:
            proc = subprocess.run(
                [sys.executable, "-I", str(DRIVER), json.dumps(config)],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise BuildError(
                [
                    f"app {name}: importing it from its bundle to discover its routes took longer "
                    f"than {timeout:g}s ([tool.vega.health] load_timeout_s)"
                ]
            ) from None
        if not answer.is_file():
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise BuildError(
                [
                    f"app {name}: route discovery exited with status {proc.returncode} "
                    "without answering" + (":\n" + "\n".join(tail) if tail else "")
                ]
            )
        result = json.loads(answer.read_text(encoding="utf-8"))
    if "error" in result:
        where = f" at {result['where']}" if result.get("where") else ""
        raise BuildError(
            [
                f"app {name}: importing it from its bundle (as a region would) to discover its "
                f"routes failed{where}: {result['error']}: {result['message']}"
            ]
        )
    return msgspec.convert(result, Discovered)


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
    record: RouteRecord,
    compiled: Compiled,
    state: BuildState,
    layer: str | None,
) -> list[AppRoute]:
    """The app's routes, each with the digest of the modules it runs (see the module docstring)."""
    found = discover(ctx, route, record, layer)
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
    out = []
    for f in found.routes:
        # A handler of the framework's own (FastAPI's /openapi.json) runs on
        # what the whole app declares.
        modules = sorted(reach[f.module] | shared) if f.module in reach else sorted(bundle)
        digest = _core.hash_bytes(msgspec.json.encode([(n, pyc[n]) for n in modules]))
        path = _full_path(ctx.config.vega.app_mount, f.path)
        out.append(AppRoute(methods=f.methods, path=path, module=f.module, closure=digest))
        if changed:
            hit = [n for n in modules if n in changed]
            if hit:
                which = "changed module" + ("s " if len(hit) > 1 else " ")
                ctx.why(f"route {','.join(f.methods)} {path} ({f.module}): {which}{', '.join(hit)}")
    return out
