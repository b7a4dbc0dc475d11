"""A deployment's worker: load its bundles from the store, verified, and serve them.

A worker is one process per (region, manifest), forked by the host's loader or
the region's zygote; its front hands it the connections to serve over a unix
socket (``handoff``, ``serving``).
Every blob is read through ``ObjectStore.get``, which checks its digest, before
anything is imported: a missing or damaged blob stops the load with a message
naming it, and the region keeps serving what it served.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import importlib.metadata
import io
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

from vega_dag import _core
from vega_dag.errors import VegaError
from vega_dag.manifest import Manifest, decode_manifest
from vega_dag.regions.layout import ensure_tree
from vega_dag.regions.loading import LoadProgress, frames_of
from vega_dag.regions.runtime import RouteLoadError, Router, import_route, route_app
from vega_dag.store.objects import ObjectStore


def _hex(digest: str) -> str:
    return digest.removeprefix(_core.DIGEST_PREFIX)


def ensure_layer(store: ObjectStore, fleet: Path, digest: str) -> Path:
    """The dependency layer extracted once into ``layers/<hex>/``.

    Extracted, not imported from the zip: packages with C extensions cannot
    import from an archive. The directory appears by rename, after a marker
    naming the digest is written, so a half-extracted layer is never used.
    """
    root = fleet / "layers"
    final = root / _hex(digest)
    marker = final / ".vega-layer"
    if marker.is_file() and marker.read_text() == digest:
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{_hex(digest)}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == digest:
            return final
        data = store.get(digest)
        tmp = root / f".{_hex(digest)}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            zf.extractall(tmp)
        (tmp / ".vega-layer").write_text(digest)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    return final


class LayerConflictError(VegaError):
    """The lock pins a package the region's runtime had already imported, at another version."""


def layer_conflicts(layer: Path) -> list[str]:
    """The layer's packages the runtime already imported at another version, one line each.

    A module the region imported before the deployment loaded (the runtime's
    own dependencies: msgspec, h11, uvicorn, click...) stays in
    ``sys.modules``: putting the layer first on ``sys.path`` cannot replace
    it, so the route would silently run the runtime's copy, not the pin.
    The same version is no conflict.
    """
    problems = []
    base = layer.resolve()
    for info in sorted(layer.glob("*.dist-info")):
        dist, _, version = info.name.removesuffix(".dist-info").partition("-")
        top = info / "top_level.txt"
        names = top.read_text().split() if top.is_file() else [dist.lower()]
        for name in names:
            module = sys.modules.get(name)
            where = getattr(module, "__file__", None) if module is not None else None
            if where is None or Path(where).resolve().is_relative_to(base):
                continue
            try:
                have = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                have = "an unknown version"
            if have == version:
                continue
            problems.append(
                f"the lock pins {dist}=={version}, but the region's runtime already imported "
                f"{name} {have} (from {where}): the route would run the runtime's copy; "
                f"pin {dist}=={have} or drop it from the lock"
            )
    return problems


def load_manifest(store: ObjectStore, digest: str) -> Manifest:
    return decode_manifest(store.get(digest))


def prepare(store_root: Path, fleet: Path, manifest_digest: str) -> tuple[Manifest, list[str]]:
    """Verify every blob of the deployment and lay it out for import: (manifest, sys.path).

    The manifest and every bundle are read through ``ObjectStore.get`` (digest
    checked) into the deployment's code tree (``regions.layout``), itself
    checked against its listing at every use; the layer is extracted once.
    This is what a region's prefetch confirms before any pointer may move to
    the deployment.
    """
    store = ObjectStore(store_root)
    manifest = load_manifest(store, manifest_digest)
    paths = [str(ensure_tree(store, fleet, manifest_digest, manifest))]
    if manifest.layer is not None:
        paths.append(str(ensure_layer(store, fleet, manifest.layer)))
    return manifest, paths


def load_deployment(
    store_root: Path, fleet: Path, manifest_digest: str, progress: LoadProgress | None = None
) -> Router:
    """Verify and load every blob of the deployment, import every route: a router.

    ``progress`` records which route is being imported (``regions.loading``).
    """
    manifest, paths = prepare(store_root, fleet, manifest_digest)
    if progress is not None:
        progress.files = {r.pattern: r.file for r in manifest.routes}
    if manifest.layer is not None:
        conflicts = layer_conflicts(Path(paths[1]))
        if conflicts:
            raise LayerConflictError("; ".join(conflicts))
    # Bundles and the layer come first: the deployment's pins win over
    # whatever the region's own interpreter has installed.
    sys.path[:0] = paths
    importlib.invalidate_caches()
    os.environ.update(manifest.env)
    # Relative paths mean the deployment's tree, as they mean the project
    # root when the code runs from its source tree.
    os.chdir(paths[0])
    router = Router()
    for rewrite in manifest.rewrites:
        router.add_rewrite(rewrite.source, rewrite.destination)
    problems = []
    for route in manifest.routes:
        if progress is not None:
            progress.step("importing", route.pattern)
        try:
            module = import_route(route.module, route.file)
            app, kind = route_app(module, route.entry, route.pattern)
        except Exception as err:
            problems.append(
                RouteLoadError(
                    route.pattern,
                    route.module,
                    f"{type(err).__name__}: {err}",
                    file=route.file,
                    frames=frames_of(err.__traceback__),
                )
            )
            continue
        router.add(route.pattern, app, kind, (route.module, route.file, route.entry))
    if problems:
        raise problems[0]
    return router


async def warm(router: Router, budget: float = 2.0, progress: LoadProgress | None = None) -> None:
    """Call every route once (GET of its path, parameters as ``1``) before serving.

    Imports inside functions and first-call caches are paid here, during the
    prefetch, not by the first probe or user. Answers are discarded; a route
    that fails or hangs is the gate's business, not the warm-up's.
    """
    import asyncio
    import re
    import time

    deadline = time.monotonic() + budget

    def receiver() -> Any:
        given = False

        async def receive() -> dict:
            # The (empty) body once, then the client is gone, as a server
            # says: a streamed answer (an endless event feed) ends there.
            # Answering the body again at once would never suspend, and a
            # route waiting for the disconnect (Starlette's StreamingResponse)
            # would spin the event loop past the warm-up's deadline.
            nonlocal given
            if given:
                return {"type": "http.disconnect"}
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}

        return receive

    async def send(message: dict) -> None:
        pass

    for route in router.routes:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if progress is not None:
            progress.step("warming", route.pattern)
        path = re.sub(r"\{[^}]+\}", "1", route.pattern)
        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"warmup"), (b"x-vega-warmup", b"1")],
            "http_version": "1.1",
            "scheme": "http",
            "server": ("127.0.0.1", 0),
            "client": ("127.0.0.1", 0),
            "root_path": "",
        }
        with contextlib.suppress(Exception):
            await asyncio.wait_for(router(scope, receiver(), send), left)


def serve(store_root: Path, fleet: Path, manifest_digest: str, uds: str, err_path: str) -> None:
    """Load, then serve on the unix socket ``uds``; a failed load is written to ``err_path``."""
    import asyncio
    import gc

    # Importing a deployment allocates many objects that all live as long as
    # the worker: collecting while they are created only costs time.
    gc.disable()
    progress = LoadProgress(err_path, {})
    try:
        router = load_deployment(store_root, fleet, manifest_digest, progress)
        asyncio.run(warm(router, progress=progress))
    except Exception as err:
        write_load_error(err_path, err)
        progress.done()
        os._exit(3)
    progress.done()
    serve_router(router, uds, err_path)


def load_error_text(err: Exception) -> str:
    """What a failed load says (a RouteLoadError names its route already)."""
    return str(err) if str(err) else type(err).__name__


def serve_router(router: Router, uds: str, err_path: str) -> None:
    """Serve a loaded (and warmed) ``router`` to the connections handed over on ``uds``.

    Its applications' lifespans start first, on the serving loop (after any
    fork: each clone of a template runs its own); one that fails is this
    load's failure, written to ``err_path`` as an import's is. Never returns.
    """
    import gc

    gc.freeze()
    gc.enable()
    from vega_dag.regions.lifespan import lifespans_of, share_state
    from vega_dag.regions.serving import serve_host

    lifespans = lifespans_of(router)
    progress: LoadProgress | None = None
    if lifespans.apps:
        # A startup that hangs is the front's to time out: the trail says where.
        files = {r.pattern: r.origin[1] for r in router.routes if r.origin is not None}
        progress = LoadProgress(err_path, files)

    def failed(err: Exception) -> None:
        write_load_error(err_path, err)
        if progress is not None:
            progress.done()
        os._exit(3)

    async def started() -> None:
        assert progress is not None
        await lifespans.startup(lambda pattern: progress.step("starting", pattern))
        share_state(router, lifespans)
        progress.done()

    if lifespans.apps:
        serve_host(router, uds, started, lifespans.shutdown, failed)
    else:
        serve_host(router, uds)
    os._exit(0)


def write_load_error(err_path: str, err: Exception) -> None:
    """What a failed load says, at ``err_path``: whole when the front sees it appear."""
    tmp = f"{err_path}.{os.getpid()}.tmp"
    Path(tmp).write_text(load_error_text(err))
    os.replace(tmp, err_path)
