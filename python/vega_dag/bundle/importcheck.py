"""The import check: each changed route imported from its bundle alone, before anything is recorded.

The graph sees static imports and constant dynamic ones; what a route
imports by a computed name (Django's ``INSTALLED_APPS`` and settings
module, plugin registries) or reads at import time it cannot see. So every
route whose bundle this build made is imported once, in a fresh interpreter
that sees only that bundle (and the dependency layer), never the source
tree: ``python -I -S`` (``bundle/isolated.py``), its bundle laid out as the
regions lay a deployment out (``regions.layout``: a directory tree, the
current directory), the project's ``env`` set. An import that fails there
is tried once more from the source tree: when that works, the bundle lacks
something and the build fails, naming the route, the importing file and
line, and the missing module or file, and saying which ``include`` adds it.
An import that fails from the source tree too is the route's own failure,
not the bundle's: it is left to the deploy's load check (an ``--explain``
line says so). An import that does not finish within
``[tool.vega.import_check] timeout_s`` fails the build.

Most changed bundles need no import at all. A bundle that passed before
(same layer, env, interpreter, time limit) is an action-cache verdict; a
changed bundle whose import would run only code that has not changed since
its route's last passed import passes the same way (``bundle/verdicts.py``:
an edit inside a handler's body costs no import). The rest are imported in
children forked from one resident driver (two at a time), started by the
first check that needs it and kept by the build daemon between builds, so a
check costs at most one interpreter start plus each route's own import
time; a build that rebuilt no bundle (and kept its layer) runs none.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vega_dag import _core
from vega_dag.errors import VegaError
from vega_dag.pipeline.result import BuildError

if TYPE_CHECKING:
    from vega_dag.bundle.bundles import Bundled
    from vega_dag.bundle.files import RouteFiles
    from vega_dag.compile.dirty import Compiled
    from vega_dag.graph.analysis import Analysis
    from vega_dag.pipeline.context import BuildContext
    from vega_dag.store.state import BuildState

DRIVER = Path(__file__).with_name("isolated.py")
#: Imports at once (the machine kind this runs on has two cores).
JOBS = 2


def base_path(root: Path) -> list[str]:
    """The interpreter's own ``sys.path`` (stdlib, site-packages), without the project."""
    root = root.resolve()
    keep = []
    for entry in sys.path:
        if not entry:
            continue  # the current directory
        path = Path(entry).resolve()
        if path == root or root in path.parents:
            continue
        keep.append(str(path))
    return keep


class _Driver:
    """The resident driver process (``bundle/isolated.py``) and its pipes."""

    def __init__(self, paths: list[str], preload: list[str]) -> None:
        self.paths = paths
        # The driver's own failure, read if it dies (its children write nowhere).
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the driver
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(DRIVER), json.dumps(paths), json.dumps(preload)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            cwd=tempfile.gettempdir(),
        )
        self.buf = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(5)
        self.err.close()

    def stderr(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self.err.seek(0)
            return self.err.read().decode(errors="replace").strip()[-500:]
        return ""

    def run(self, batch: dict, requests: list[dict], budget: float) -> tuple[list[dict], bool]:
        """Send one batch: (the answers, whether the driver said it was done)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = "".join(json.dumps(x) + "\n" for x in [batch, *requests]).encode()
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except OSError:
            return [], False
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + budget
        answers: list[dict] = []
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                answer = json.loads(line)
                if answer.get("done"):
                    return answers, True
                answers.append(answer)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return answers, False
            self.buf += chunk


_driver: _Driver | None = None
_driver_lock = threading.Lock()


def _stop_driver() -> None:
    global _driver
    if _driver is not None:
        _driver.stop()
        _driver = None


atexit.register(_stop_driver)


def _the_driver(paths: list[str], preload: list[str]) -> _Driver:
    """The process's driver, started if none runs (for these ``paths``)."""
    global _driver
    if _driver is not None and (_driver.paths != paths or not _driver.alive()):
        _stop_driver()
    if _driver is None:
        _driver = _Driver(paths, preload)
    return _driver


def run_driver(
    requests: list[dict],
    paths: list[str],
    timeout: float,
    jobs: int = JOBS,
    preload: list[str] | None = None,
) -> dict[str, dict]:
    """Run ``requests`` in the isolated driver: request id → answer.

    ``preload`` names stdlib modules the driver imports once, before it forks.
    """
    if not requests:
        return {}
    batch = {"count": len(requests), "timeout": timeout, "jobs": jobs, "preload": preload or []}
    # Every import may hit its limit; the driver itself gets that and a margin.
    budget = timeout * (len(requests) / jobs + 1) + 30
    status: int | None = None
    stderr = ""
    with _driver_lock:
        driver = _the_driver(paths, preload or [])
        try:
            got, done = driver.run(batch, requests, budget)
        except TimeoutError:
            _stop_driver()
            raise BuildError([f"the import check did not finish within {budget:.0f} s"]) from None
        except BaseException:
            # Mid-batch (an interrupt, a bad answer): its answers must not
            # reach the next batch.
            _stop_driver()
            raise
        if not done:
            driver.proc.wait()
            status, stderr = driver.proc.returncode, driver.stderr()
            _stop_driver()
    answers = {answer["id"]: answer for answer in got}
    missing = [r["module"] for r in requests if r["id"] not in answers]
    if missing or not done:
        raise BuildError(
            [
                f"the import check stopped (exit {status}) before importing "
                f"{', '.join(missing)}: {stderr}"
            ]
        )
    return answers


def check_imports(
    ctx: BuildContext,
    a: Analysis,
    compiled: Compiled,
    files: RouteFiles,
    bundled: Bundled,
    layer: tuple[str, str] | None,
    state: BuildState,
    everything: bool,
    discover: dict[str, dict] | None = None,
    listed: set[str] | None = None,
) -> dict[str, dict]:
    """Import every route whose bundle is not the last build's from that bundle alone.

    With ``everything`` (the layer or the settings are not the last build's),
    every route is a candidate. A candidate whose bundle was imported before
    with the same layer, env and interpreter is not imported again (its
    verdict is in the action cache): undoing an edit, or a lock change,
    costs nothing. ``discover`` maps a one-app project's app route to what
    its import should also list (``bundle.discover``): the answers of those
    of them that were imported are returned. Those also in ``listed`` (their
    last bundle's routes are kept) pass as other routes do when their import
    and listing would run only unchanged code: their answer is
    ``{"ok": True, "carried": True}``, the last listing stands.
    """
    settings = ctx.config.vega.import_check
    if not settings.enabled:
        return {}
    routes = sorted(
        p
        for p, r in bundled.records.items()
        if everything or (old := state.routes.get(p)) is None or old.bundle != r.bundle
    )
    verdicts = {
        p: _verdict_key(ctx, bundled.records[p].bundle, layer, settings.timeout_s) for p in routes
    }
    # A bundle already imported from alone (same layer, env, interpreter) passes
    # again: an undo, or a route whose bundle an edit left as it was, costs nothing.
    # (Not an app whose routes are to be listed: its import lists them.)
    listing = discover or {}
    routes = [
        p
        for p in routes
        if p in listing or ctx.actions.get(verdicts[p]) != bundled.records[p].bundle
    ]
    if not routes:
        return {}
    # With a shared store, another machine's verdict on the same bundle (same
    # layer, env, interpreter, limit: the key says so) counts as this one's.
    if _sharing(ctx):
        shared = _shared_verdicts(
            ctx, {p: (verdicts[p], bundled.records[p].bundle) for p in routes if p not in listing}
        )
        routes = [p for p in routes if p not in shared]
    if not routes:
        return {}
    # A bundle whose import would run only code unchanged since it passed
    # passes again (bundle/verdicts.py): an edit inside a handler costs no import.
    context = _context_key(ctx, layer, settings.timeout_s)
    same_run = _SameRun(ctx, a, compiled, files, context)
    carried = {}
    for pattern in list(routes):
        if (pattern not in listing or pattern in (listed or ())) and same_run.passes(pattern):
            routes.remove(pattern)
            ctx.actions.put(verdicts[pattern], bundled.records[pattern].bundle)
            ctx.why(
                f"route {pattern}: its import runs only code that has not changed since it "
                "passed: not imported again"
            )
            if pattern in listing:
                carried[pattern] = {"ok": True, "carried": True}
    if not routes:
        return carried
    from vega_dag.regions.layout import remove_tree

    # Outside the project: the check must not touch the tree the build (and
    # the daemon's watcher) reads.
    scratch = Path(tempfile.mkdtemp(prefix="vega-import-check-"))
    try:
        passed = _check(
            ctx, a, compiled, files, bundled, routes, layer, scratch, settings.timeout_s, discover
        )
    finally:
        remove_tree(scratch)
    for pattern, answer in passed.items():
        ctx.actions.put(verdicts[pattern], bundled.records[pattern].bundle)
        if _sharing(ctx):
            _share_verdict(ctx, verdicts[pattern], bundled.records[pattern].bundle)
        if "ran" in answer and not ctx.dry_run:
            same_run.record(pattern, answer["ran"])
    return {**carried, **{p: passed[p] for p in listing if p in passed}}


def _sharing(ctx: BuildContext) -> bool:
    return ctx.remote_url is not None and not ctx.dry_run


def _shared_key(verdict_key: str) -> str:
    from vega_dag.store.actions import action_key

    return action_key("import-check-shared", verdict_key)


def _shared_verdicts(ctx: BuildContext, wanted: dict[str, tuple[str, str]]) -> set[str]:
    """The routes whose bundle the shared store holds a pass for, fetched in one lookup.

    ``wanted``: route → (verdict key, bundle). A remote entry names a small
    object (the bundle's digest, as JSON), verified like any other before it
    counts; bundles themselves are not shared (store.commit.push_outputs).
    """
    from vega_dag.compile.dirty import from_remote

    keys = {p: _shared_key(k) for p, (k, _) in wanted.items()}
    if not keys:
        return set()
    from_remote(ctx, sorted(keys.values()), "import-check verdicts")
    passed = set()
    for pattern, key in keys.items():
        digest = ctx.remote_hits.get(key)
        if digest is None:
            continue
        verdict_key, bundle = wanted[pattern]
        try:
            ok = json.loads(ctx.new_objects[digest]) == {"bundle": bundle}
        except (ValueError, KeyError):
            ok = False
        if not ok:
            ctx.remote_hits.pop(key, None)
            ctx.new_actions.pop(key, None)
            continue
        ctx.actions.put(verdict_key, bundle)
        passed.add(pattern)
    if passed:
        ctx.why(f"{len(passed)} routes passed the import check on another machine: not imported")
    return passed


def _share_verdict(ctx: BuildContext, verdict_key: str, bundle: str) -> None:
    """Leave this pass for the shared store (uploaded with the build's other entries)."""
    data = json.dumps({"bundle": bundle}, sort_keys=True).encode()
    digest = _core.hash_bytes(data)
    ctx.new_objects[digest] = data
    ctx.new_actions[_shared_key(verdict_key)] = digest


class _SameRun:
    """The routes' last passed imports (``bundle/verdicts.py``), compared and recorded."""

    def __init__(
        self, ctx: BuildContext, a: Analysis, compiled: Compiled, files: RouteFiles, context: str
    ) -> None:
        self.ctx, self.a, self.compiled, self.files, self.context = ctx, a, compiled, files, context
        self.blobs: dict[str, bytes] = {}

    def _fetch(self, digest: str) -> bytes:
        if digest not in self.blobs:
            self.blobs[digest] = self.ctx.store.get(digest)
        return self.blobs[digest]

    def _digest(
        self, pattern: str, ran: dict, known: dict[str, tuple[str, str]]
    ) -> tuple[str, dict[str, tuple[str, str]]]:
        from vega_dag.bundle.verdicts import bundle_digest

        modules = [(self.a.modules[n].path, self.compiled.pyc[n]) for n in self.a.closures[pattern]]
        data = self.files.members.get(pattern, [])
        codes: dict[str, tuple[str, str]] = {}
        digest = bundle_digest(self.context, modules, data, ran, self._fetch, known, codes)
        return digest, codes

    def _path(self, pattern: str) -> Path:
        from vega_dag.bundle.verdicts import verdict_path

        return verdict_path(self.ctx.state_path.parent, pattern)

    def passes(self, pattern: str) -> bool:
        from vega_dag.bundle.verdicts import load_verdict

        last = load_verdict(self._path(pattern))
        if last is None or last.context != self.context:
            return False
        try:
            return self._digest(pattern, last.ran, last.codes)[0] == last.digest
        except (OSError, ValueError, EOFError, TypeError, VegaError):
            return False  # an unreadable output: import it

    def record(self, pattern: str, ran: dict) -> None:
        from vega_dag.bundle.verdicts import RouteVerdict, save_verdict

        runs = {path: [(q, int(n)) for q, n in r] for path, r in ran.items()}
        digest, codes = self._digest(pattern, runs, {})
        with contextlib.suppress(OSError):
            save_verdict(self._path(pattern), RouteVerdict(self.context, runs, codes, digest))


def _context_key(ctx: BuildContext, layer: tuple[str, str] | None, timeout: float) -> str:
    """What an import sees besides its bundle (see ``_verdict_key``)."""
    from vega_dag.store.actions import action_key

    return action_key(
        "import-run",
        CHECK_VERSION,
        layer[1] if layer else None,
        ctx.config.vega.env,
        timeout,
        ctx.tc_key,
    )


#: Part of every verdict's key: a driver that checks differently judges anew
#: (3: an app's traced run covers its routes' listing, which its listing keeps).
CHECK_VERSION = 3


def _verdict_key(
    ctx: BuildContext, bundle: str, layer: tuple[str, str] | None, timeout: float
) -> str:
    """The action-cache key of "this bundle imports from alone" (its output: the bundle).

    The verdict depends on the bundle, the layer, the environment the route
    imports with, the interpreter (the toolchain) and the time limit, and on
    nothing else the check sees: the bundle is all of the project it sees.
    """
    from vega_dag.store.actions import action_key

    return action_key(
        "import-check",
        CHECK_VERSION,
        bundle,
        layer[1] if layer else None,
        ctx.config.vega.env,
        timeout,
        ctx.tc_key,
    )


def bundle_request(
    ctx: BuildContext,
    a: Analysis,
    compiled: Compiled,
    files: RouteFiles,
    bundled: Bundled,
    pattern: str,
    tree: Path,
    scratch: Path,
    layer: list[str],
    fetch: Callable[[str], bytes],
) -> dict[str, Any]:
    """The driver's request importing route ``pattern`` from its bundle, laid out at ``tree``."""

    from vega_dag.regions.layout import lay_out

    # One route's bundle, laid out as the regions lay a deployment out, its
    # files linked from the fleet's pool (``fleet/files/<digest>``): a file an
    # earlier check or deployment pooled is checked, not written again, which
    # is most of a one-app project's (its bundle is every module). A dry run
    # writes nothing in the store: its pool is the scratch directory's.
    pool = scratch if ctx.dry_run else ctx.store.root / "fleet"
    members = _members(a, compiled, files, pattern)
    lay_out(pool, tree, {name: (d, fetch(d)) for name, d in members})
    return _request(ctx, a, bundled, pattern, tree, layer)


def _members(
    a: Analysis, compiled: Compiled, files: RouteFiles, pattern: str
) -> list[tuple[str, str]]:
    """Route ``pattern``'s bundle members: (entry name, digest) of its modules and files."""
    from vega_dag.bundle.routes import archive_name

    return [
        (archive_name(a.modules[n]), compiled.pyc[n]) for n in a.closures[pattern]
    ] + files.members.get(pattern, [])


def _request(
    ctx: BuildContext, a: Analysis, bundled: Bundled, pattern: str, tree: Path, layer: list[str]
) -> dict[str, Any]:
    """The driver's request importing route ``pattern`` from the bundle laid out at ``tree``."""
    return {
        "id": pattern,
        "paths": [str(tree), *layer],
        "cwd": str(tree),
        "module": bundled.records[pattern].module,
        # A catch-all imports by its file (see isolated._import).
        "file": a.routes[pattern].module.path,
        "env": dict(ctx.config.vega.env),
    }


def layer_paths(ctx: BuildContext, layer_record: tuple[str, str] | None) -> list[str]:
    """The dependency layer's directory (extracted once), as ``sys.path`` entries."""
    if layer_record is None:
        return []
    from vega_dag.regions.worker import ensure_layer

    return [str(ensure_layer(ctx.store, ctx.store.root / "fleet", layer_record[1]))]


def _check(
    ctx: BuildContext,
    a: Analysis,
    compiled: Compiled,
    files: RouteFiles,
    bundled: Bundled,
    routes: list[str],
    layer_record: tuple[str, str] | None,
    scratch: Path,
    timeout: float,
    discover: dict[str, dict] | None = None,
) -> dict[str, dict]:
    """Import ``routes`` (module doc): the routes that imported from their bundles alone."""

    layer = layer_paths(ctx, layer_record)
    blobs: dict[str, bytes] = {}

    def fetch(digest: str) -> bytes:
        if digest not in blobs:
            blobs[digest] = ctx.store.get(digest)  # this build's outputs too (store.pending)
        return blobs[digest]

    pooled: set[str] = set()
    requests: list[dict[str, Any]] = []
    for i, pattern in enumerate(routes):
        # One route's bundle, laid out as the regions lay a deployment out.
        tree = scratch / "code" / str(i)
        _link_tree(scratch / "files", tree, _members(a, compiled, files, pattern), fetch, pooled)
        request = {**_request(ctx, a, bundled, pattern, tree, layer), "trace": True}
        if discover and pattern in discover:
            request["discover"] = discover[pattern]
        requests.append(request)
    paths = base_path(ctx.root)
    preload = _stdlib_imports(ctx, a, routes)
    answers = run_driver(requests, paths, timeout, preload=preload)
    failed = [r for r in requests if not answers[r["id"]].get("ok")]
    passed = {r["id"]: answers[r["id"]] for r in requests if answers[r["id"]].get("ok")}
    if not failed:
        return passed
    # Failures that are not the bundle's: the same import fails from the source tree.
    roots = [str((ctx.root / r).resolve()) for r in ctx.config.vega.source_roots]
    again = run_driver(
        [
            {**r, "paths": [*roots, *layer], "cwd": str(ctx.root), "trace": False}
            for r in failed
            if not answers[r["id"]].get("timeout")
        ],
        paths,
        timeout,
    )
    problems = []
    for r in failed:
        pattern = r["id"]
        answer = answers[pattern]
        route_file = a.routes[pattern].module.path
        if answer.get("timeout"):
            where = answer.get("where")
            problems.append(
                f"route {pattern} ({route_file}): importing it from its bundle did not finish "
                f"within {timeout:g} s ([tool.vega.import_check] timeout_s)"
                + (f"; it was at {where}" if where else "")
            )
            continue
        source = again.get(pattern, {})
        if not source.get("ok"):
            ctx.why(
                f"route {pattern}: its import fails from the source tree too "
                f"({_what(source)}): left to the deploy's load check"
            )
            continue
        problems.append(_lacking(pattern, route_file, answer, r["cwd"], a))
    if problems:
        raise BuildError(problems)
    return passed


def _link_tree(
    pool: Path,
    tree: Path,
    members: list[tuple[str, str]],
    fetch: Callable[[str], bytes],
    pooled: set[str],
) -> None:
    """``tree`` holding exactly ``members`` (entry name, digest): hard links into ``pool``.

    The regions' layout (``regions.layout.lay_out``) without what a
    deployment's tree needs and a scratch tree does not: no re-hash of a
    pool file this check just wrote from verified bytes, no read-only modes
    (the driver writes no bytecode), no rename into place.
    """
    pool.mkdir(parents=True, exist_ok=True)
    made: set[Path] = set()
    for name, digest in members:
        source = pool / digest.removeprefix(_core.DIGEST_PREFIX)
        if digest not in pooled:
            source.write_bytes(fetch(digest))
            pooled.add(digest)
        target = tree / name
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        try:
            os.link(source, target)
        except OSError:
            target.write_bytes(fetch(digest))  # a file system without links


def _stdlib_imports(ctx: BuildContext, a: Analysis, routes: list[str]) -> list[str]:
    """The stdlib modules the checked closures import: the driver imports them once.

    Each child would otherwise import them again (``typing``, ``dataclasses``,
    ``json``: tens of ms a route). Only the stdlib: it is the same in the
    regions, so whether a bundle lacks something does not depend on it;
    third-party code may come from the layer, and may start threads.
    """
    paths = sorted({a.modules[n].path for p in routes for n in a.closures[p]})
    try:
        scanned = _core.scan_imports_files(ctx.root, paths)
    except (OSError, ValueError, VegaError):
        return []  # the check itself reports what matters
    names = set()
    for _, imports, _ in scanned:
        for module, level, _names, _line, type_checking, _guarded, in_function in imports:
            if level == 0 and not type_checking and not in_function:
                names.add(module)
    stdlib = sys.stdlib_module_names
    return sorted(n for n in names if n.partition(".")[0] in stdlib)


def _what(answer: dict) -> str:
    if answer.get("timeout"):
        return "a time-out"
    if "exit" in answer:
        return f"the interpreter exited with status {answer['exit']}"
    return f"{answer.get('error')}: {answer.get('message')}"


def _lacking(pattern: str, route_file: str, answer: dict, tree: str, a: Analysis) -> str:
    """The build error for a route whose bundle lacks what its import needs."""
    where = answer.get("importer") or route_file
    head = f"route {pattern} ({route_file}): importing it from its bundle alone failed"
    module = answer.get("missing_module")
    if module:
        first_party = a.modules.get(module)
        what = first_party.path if first_party is not None else None
        if first_party is not None and first_party.is_package:
            # Which of its modules the computed name wanted is not known: all of them.
            what = first_party.path.rpartition("/")[0] + "/"
        fix = (
            f'; add it: [tool.vega.per_route."{pattern}"] include = ["{what}"] '
            "(or [tool.vega] include, for every route)"
            if what
            else ""
        )
        return f"{head}: {where} imports {module}, which is not in the bundle{fix}"
    missing = answer.get("missing_file")
    if missing:
        rel = os.path.relpath(missing, tree) if os.path.isabs(missing) else missing
        if rel.startswith(".."):
            rel = missing
        return (
            f"{head}: {where} reads {rel}, which is not in the bundle; add it: "
            f'[tool.vega.per_route."{pattern}"] include = ["{rel}"] '
            "(a path from the project root; or [tool.vega] include, for every route)"
        )
    if "exit" in answer:
        return f"{head}: the interpreter exited with status {answer['exit']} ({where})"
    return f"{head}: {where}: {answer.get('error')}: {answer.get('message')}"
