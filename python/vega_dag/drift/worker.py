"""One drift build, inside one sandbox: ``python -m vega_dag.drift.worker SPEC``.

SPEC is JSON: ``{"root": copy, "touched": [paths] | null, "out": dir}``. The
build starts from nothing (no state, an empty store in the copy), compiles
the touched modules and the closures of the routes they reach, bundles those
routes with the same code as ``vega-dag build``, writes every output under
``out`` and prints one JSON object describing them (or ``{"error": [...]}``).

With SPEC ``-`` the worker is started ahead of its build: it imports the
build's modules (most of its own run time) while the check is still finding
the change and copying the project, then reads SPEC as one line on stdin
(end of input without one: nothing to do, exit). It is still one process per
build, started under the build's conditions (environment, umask, working
directory), so nothing of another build is in it; it only imports nothing of
the project before its SPEC arrives.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import msgspec

from vega_dag import _core
from vega_dag.errors import VegaError


def reachable(deps: dict[str, list[str]], root: str) -> list[str]:
    """Every module ``root`` imports, transitively, itself included, sorted.

    The same set as ``vega_dag.graph.dag.closures`` without importing
    networkx (a quarter of this process's run time).
    """
    seen = {root}
    stack = [root]
    while stack:
        for target in deps[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return sorted(seen)


def preload() -> None:
    """Import what ``run`` needs (vega-dag's own modules; no plugin, nothing of the project)."""
    import vega_dag.bundle.routes
    import vega_dag.compile.pool
    import vega_dag.config
    import vega_dag.graph.analysis
    import vega_dag.pipeline
    import vega_dag.scan.project
    import vega_dag.scan.statcache
    import vega_dag.store.actions
    import vega_dag.store.objects
    import vega_dag.store.state  # noqa: F401


def run(root: Path, touched: list[str] | None, out: Path) -> dict:
    from vega_dag.bundle.routes import archive_name, build_bundle, bundle_inputs, route_entries
    from vega_dag.compile.pool import compile_all
    from vega_dag.config import load_config
    from vega_dag.graph.analysis import analyze
    from vega_dag.pipeline import BuildContext, BuildError
    from vega_dag.scan.project import check_skipped
    from vega_dag.scan.statcache import EMPTY, refresh
    from vega_dag.store.actions import action_key
    from vega_dag.store.objects import ObjectStore
    from vega_dag.store.state import BuildState

    config = load_config(root)
    b = BuildContext.create(config, ObjectStore(config.store_dir), time.perf_counter())
    changes, _ = refresh(root, EMPTY, skip_dirs=b.skip_dirs)
    problems = check_skipped(changes)
    if problems:
        raise BuildError(problems)
    state = BuildState()
    a = analyze(b, changes, state, with_closures=False)
    closures = {p: reachable(a.deps, r.module.name) for p, r in a.routes.items()}
    if touched is None:
        routes = a.routes
        wanted = set(a.modules)
    else:
        by_path = {m.path: name for name, m in a.modules.items()}
        focus = {by_path[p] for p in touched if p in by_path}
        routes = {p: r for p, r in a.routes.items() if not focus.isdisjoint(closures[p])}
        wanted = focus.union(*(closures[p] for p in routes))
    entries = route_entries(b, routes, a.digests, a.parsed, state)

    jobs = sorted((a.modules[n].path, a.digests[a.modules[n].path]) for n in wanted)
    by_file = {a.modules[n].path: n for n in wanted}
    pyc_digest: dict[str, str] = {}
    blobs: dict[str, bytes] = {}
    modules_out: dict[str, dict[str, str]] = {}
    errors = []
    optimize = config.vega.optimize
    # One process: the other drift build runs on the other core.
    for path, result in compile_all(str(root), jobs, optimize, workers=1, steps=b.steps):
        if isinstance(result, VegaError):
            errors.append(str(result))
            continue
        digest = _core.hash_bytes(result)
        pyc_digest[by_file[path]] = digest
        blobs[digest] = result
        file = out / "modules" / (path + "c")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(result)
        modules_out[path] = {
            "source": a.digests[path],
            "output": digest,
            "key": action_key("compile", a.digests[path], path, b.tc_key),
            "file": str(file),
        }
    if errors:
        raise BuildError(sorted(errors))

    bundles_out: dict[str, dict[str, object]] = {}
    for i, (pattern, route) in enumerate(sorted(routes.items())):
        closure = [a.modules[n] for n in closures[pattern]]
        names = {m.name: archive_name(m) for m in closure}
        meta, members = bundle_inputs(route, entries[pattern], closures[pattern], names, pyc_digest)
        data, digest = build_bundle(meta, members, blobs)
        file = out / "bundles" / f"{i:05d}.zip"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)
        bundles_out[pattern] = {
            "route_file": route.module.path,
            "output": digest,
            "key": action_key("bundle", meta, members, b.tc_key),
            "members": {archive_name(m): m.path for m in closure},
            "file": str(file),
        }
    return {
        "toolchain": msgspec.to_builtins(b.toolchain),
        "toolchain_key": b.tc_key,
        "modules": modules_out,
        "bundles": bundles_out,
    }


def main(argv: list[str]) -> int:
    from vega_dag.pipeline import BuildError

    if argv[1] == "-":
        preload()
        line = sys.stdin.readline()
        if not line:
            return 0  # the check needed no build (no change), or was stopped
        spec = json.loads(line)
    else:
        spec = json.loads(argv[1])
    try:
        result = run(Path(spec["root"]), spec["touched"], Path(spec["out"]))
    except BuildError as err:
        result = {"error": err.problems}
    except VegaError as err:
        result = {"error": [str(err)]}
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
