"""The manifest step: the manifest of a build, from what the other stages produced."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from vega_dag import _core
from vega_dag.daemon import warm
from vega_dag.manifest.schema import MANIFEST_SCHEMA, AppRoute, Manifest, RouteEntry

if TYPE_CHECKING:
    from vega_dag.bundle.files import RouteFiles
    from vega_dag.daemon.warm import LastBuild
    from vega_dag.graph.analysis import Analysis
    from vega_dag.pipeline.context import BuildContext
    from vega_dag.store.state import RouteRecord


def source_items(a: Analysis, last: LastBuild | None) -> list[tuple[str, str]]:
    """Sorted (path, digest) of every module: what the manifest's ``source`` hashes."""
    modules, digests = a.modules, a.digests
    if last is None or a.edited is None:
        return sorted((m.path, digests[m.path]) for m in modules.values())
    items = list(last.source_items)
    position = warm.derived(
        "source-positions", a.tables_key, lambda: {p: i for i, (p, _) in enumerate(items)}
    )
    for name in a.edited:
        path = modules[name].path
        items[position[path]] = (path, digests[path])
    return items


def assemble_manifest(
    ctx: BuildContext,
    a: Analysis,
    module_items: list[tuple[str, str]],
    routes: dict[str, RouteRecord],
    layer: tuple[str, str] | None,
    config_digest: str,
    files: RouteFiles | None = None,
    app_routes: list[AppRoute] | None = None,
) -> tuple[bytes, str]:
    """The manifest's canonical bytes and digest (the build's identity).

    ``module_items`` are the modules' ``source_items``; every file a bundle
    holds (``files``), and the lock file when there is one, are part of the
    source too.
    """
    if ctx.config.vega.rewrites:
        check_rewrites(ctx, list(a.routes))
    lock = ctx.config.lock_path
    items = list(module_items)
    if files is not None:
        items.extend(files.sources)
    if lock is not None and lock.is_file():
        rel = lock.relative_to(ctx.root).as_posix()
        items.append((rel, a.digests.get(rel) or _core.hash_file(lock)))
    manifest = Manifest(
        schema=MANIFEST_SCHEMA,
        toolchain=ctx.toolchain,
        source=_core.hash_bytes(msgspec.json.encode(items)),
        config=config_digest,
        layer=layer[1] if layer else None,
        routes=[
            RouteEntry(
                pattern=p,
                module=r.module,
                file=a.modules[r.module].path,
                entry=r.entry,
                bundle=r.bundle,
            )
            for p, r in sorted(routes.items())
        ],
        env=dict(sorted(ctx.config.vega.env.items())),
        rewrites=list(ctx.config.vega.rewrites),
        app_routes=app_routes or [],
    )
    data = manifest.encode()
    return data, _core.hash_bytes(data)


def check_rewrites(ctx: BuildContext, patterns: list[str]) -> None:
    """Every rewrite's destination can reach a route; else a ``BuildError`` naming it."""
    from vega_dag.pipeline.result import BuildError

    source = ctx.config.source
    where = f"{source}: " + ("[tool.vega] " if source and source.name == "pyproject.toml" else "")
    routes = [_segments(p) for p in patterns]
    problems = [
        f"{where}rewrites[{i}]: destination {r.destination!r} is no route of this project"
        for i, r in enumerate(ctx.config.vega.rewrites)
        if not any(_fits(_segments(r.destination), route) for route in routes)
    ]
    if problems:
        raise BuildError(problems)


def _segments(pattern: str) -> list[str]:
    """A pattern's segments, each a static text, "{}" (one segment), "{+}" (one or
    more) or "{*}" (zero or more)."""
    out = []
    for segment in pattern.strip("/").split("/"):
        if "{" not in segment:
            out.append(segment)
        elif segment.endswith(":path}"):
            out.append("{+}")
        elif segment.endswith(":path?}"):
            out.append("{*}")
        else:
            out.append("{}")  # a parameter, or a segment a parameter is part of
    return out


def _fits(dest: list[str], route: list[str]) -> bool:
    """Whether some path the destination can become matches the route."""
    if route and route[0] in ("{+}", "{*}"):  # a route's catch-all is its last segment
        return len(dest) >= (1 if route[0] == "{+}" else 0)
    if not dest or not route:
        return not dest and not route
    if dest[0] == "{+}":  # the destination's is its last too: it can become the rest
        return True
    if dest[0] != route[0] and "{}" not in (dest[0], route[0]):
        return False
    return _fits(dest[1:], route[1:])
