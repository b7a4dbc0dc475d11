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

Imports run in children forked from one driver (two at a time), so a check
costs one interpreter start plus each route's own import time; a build that
rebuilt no bundle (and kept its layer) runs none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
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

DRIVER = Path(__file__).with_name("isolated.py")
#: Imports at once (the machine kind this runs on has two cores).
JOBS = 2


@dataclass
class Outcome:
    pattern: str
    #: the driver's answer (see ``bundle/isolated.py``)
    answer: dict


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
    config = json.dumps(
        {"paths": paths, "timeout": timeout, "jobs": jobs, "preload": preload or []}
    )
    stdin = "".join(json.dumps(r) + "\n" for r in requests)
    # Every import may hit its limit; the driver itself gets that and a margin.
    budget = timeout * (len(requests) / jobs + 1) + 30
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", str(DRIVER), config],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=budget,
            cwd=requests[0]["cwd"],
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildError([f"the import check did not finish within {budget:.0f} s"]) from None
    answers = {}
    for line in done.stdout.splitlines():
        answer = json.loads(line)
        answers[answer["id"]] = answer
    missing = [r["module"] for r in requests if r["id"] not in answers]
    if missing:
        raise BuildError(
            [
                f"the import check stopped (exit {done.returncode}) before importing "
                f"{', '.join(missing)}: {done.stderr.strip()[-500:]}"
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
    layer_changed: bool,
    discover: dict[str, dict] | None = None,
) -> dict[str, dict]:
    """Import every route whose bundle this build made from that bundle alone (module doc).

    With ``layer_changed`` (the dependency layer is not the last build's),
    every route is imported. ``discover`` maps a one-app project's app route
    to what its import should also list (``bundle.discover``): the answers
    of those of them that were imported are returned.
    """
    settings = ctx.config.vega.import_check
    routes = sorted(a.routes if layer_changed else bundled.rebuilt)
    if not settings.enabled or not routes:
        return {}
    import tempfile

    from vega_dag.regions.layout import remove_tree

    # Outside the project: the check must not touch the tree the build (and
    # the daemon's watcher) reads.
    scratch = Path(tempfile.mkdtemp(prefix="vega-import-check-"))
    try:
        answers = _check(
            ctx, a, compiled, files, bundled, routes, layer, scratch, settings.timeout_s, discover
        )
    finally:
        remove_tree(scratch)
    return {p: answers[p] for p in discover or {} if p in answers}


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
    from vega_dag.bundle.routes import archive_name
    from vega_dag.regions.layout import lay_out

    members = [
        (archive_name(a.modules[n]), compiled.pyc[n]) for n in a.closures[pattern]
    ] + files.members.get(pattern, [])
    # One route's bundle, laid out as the regions lay a deployment out, its
    # files linked from the fleet's pool (``fleet/files/<digest>``): a file an
    # earlier check or deployment pooled is checked, not written again, which
    # is most of a one-app project's (its bundle is every module). A dry run
    # writes nothing in the store: its pool is the scratch directory's.
    pool = scratch if ctx.dry_run else ctx.store.root / "fleet"
    lay_out(pool, tree, {name: (d, fetch(d)) for name, d in members})
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
    layer = layer_paths(ctx, layer_record)
    blobs: dict[str, bytes] = {}

    def fetch(digest: str) -> bytes:
        if digest not in blobs:
            blobs[digest] = ctx.store.get(digest)  # this build's outputs too (store.pending)
        return blobs[digest]

    requests: list[dict[str, Any]] = []
    for i, pattern in enumerate(routes):
        tree = scratch / "code" / str(i)
        request = bundle_request(
            ctx, a, compiled, files, bundled, pattern, tree, scratch, layer, fetch
        )
        if discover and pattern in discover:
            request["discover"] = discover[pattern]
        requests.append(request)
    paths = base_path(ctx.root)
    answers = run_driver(requests, paths, timeout, preload=_stdlib_imports(ctx, a, routes))
    failed = [r for r in requests if not answers[r["id"]].get("ok")]
    if not failed:
        return answers
    # Failures that are not the bundle's: the same import fails from the source tree.
    roots = [str((ctx.root / r).resolve()) for r in ctx.config.vega.source_roots]
    again = run_driver(
        [
            {**r, "paths": [*roots, *layer], "cwd": str(ctx.root)}
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
            problems.append(
                f"route {pattern} ({route_file}): importing it from its bundle did not finish "
                f"within {timeout:g} s ([tool.vega.import_check] timeout_s)"
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
    return answers


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
