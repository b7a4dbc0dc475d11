"""Bisect a toolchain component's versions for the first that changes outputs.

Given versions v0 (known good) … vN-1 in release order, the first version
whose outputs (every module's compiled bytes and every route's bundle) differ
from v0's is found by binary search over v1 … vN-1, with "none differ" as a
possible answer: at most ⌈log2 N⌉ builds besides v0's. Like git bisect, it
assumes that once outputs differ they stay different.

Each build uses the project's store and action cache, with its own state
(``<store>/toolchain-bisect/<component>-<version>``), so the project's own
build head does not move, and every (input, toolchain) pair already built,
by an earlier bisection or a normal build, is a cache hit.
"""

from __future__ import annotations

import difflib
import math
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from vega_dag.config import ProjectConfig, load_config
from vega_dag.store.objects import ObjectStore


class VersionBuild(msgspec.Struct):
    """One build of the project with one version of the component."""

    version: str
    manifest: str
    #: Source file -> compiled output digest.
    modules: dict[str, str]
    #: Route pattern -> bundle digest.
    bundles: dict[str, str]
    modules_compiled: int
    modules_cached: int
    seconds: float
    #: Whether its outputs differ from the known-good version's.
    differs: bool = False


class ModuleDrift(msgspec.Struct):
    path: str
    good: str
    bad: str
    #: The module's source after the compile steps, good vs bad (unified diff).
    source_diff: list[str]
    #: Code-object dump diff of the two .pyc files.
    code_diff: list[str]


class BisectResult(msgspec.Struct):
    project: str
    component: str
    good: str
    #: The versions bisected, in order, the known-good first.
    versions: list[str]
    #: The first version whose outputs differ from the known-good's; None if none do.
    first_drifting: str | None
    #: The version before it (known not to differ), when there is one.
    last_same: str | None
    #: Builds in the order they ran; the known-good's first.
    builds: list[VersionBuild]
    #: ⌈log2 N⌉ + 1 for N versions: the most builds a bisection needs.
    max_builds: int
    drifting_modules: list[ModuleDrift]
    drifting_bundles: list[str]
    seconds: float


def search(candidates: list[str], differs: Callable[[str], bool]) -> int:
    """Index of the first candidate that ``differs`` (len(candidates) if none).

    Calls ``differs`` at most ⌈log2(len(candidates) + 1)⌉ times.
    """
    lo, hi = 0, len(candidates)
    while lo < hi:
        mid = (lo + hi) // 2
        if differs(candidates[mid]):
            hi = mid
        else:
            lo = mid + 1
    return lo


def build_version(
    root: Path, config: ProjectConfig, component: str, version: str
) -> tuple[VersionBuild, ProjectConfig]:
    """Build with ``component`` at ``version``; its outputs and the config used."""
    from vega_dag.compile.steps import with_step_version
    from vega_dag.pipeline import build
    from vega_dag.store.state import load_state, state_paths

    cfg = with_step_version(config, component, version)
    state_dir = config.store_dir / "toolchain-bisect" / f"{component}-{version}"
    # What drifts between versions is the question, not what imports.
    result = build(root, config=cfg, state_dir=state_dir, import_check=False)
    state = load_state(state_paths(cfg, state_dir)[1])
    return (
        VersionBuild(
            version=version,
            manifest=result.manifest,
            modules={m.path: m.pyc for m in state.modules.values()},
            bundles=dict(result.routes),
            modules_compiled=result.modules_compiled,
            modules_cached=result.modules_cached,
            seconds=result.seconds,
        ),
        cfg,
    )


def _outputs_differ(a: VersionBuild, b: VersionBuild) -> bool:
    return a.modules != b.modules or a.bundles != b.bundles


#: (label such as "python-minifier==2.11.3", the compile steps of that toolchain)
_Steps = tuple[str, list]


def _steps_of(cfg: ProjectConfig) -> _Steps:
    from vega_dag.compile.toolchain import compile_steps_for

    steps = compile_steps_for(cfg)
    return " ".join(f"{s.name}=={s.version}" for s in steps), steps


def _module_drift(
    root: Path,
    store: ObjectStore,
    good_steps: _Steps,
    bad_steps: _Steps,
    path: str,
    good: str,
    bad: str,
) -> ModuleDrift:
    """How ``path``'s output differs: its source after each side's steps, and its code."""
    from vega_dag.drift.explain import pyc_diff

    source = (root / path).read_bytes()

    def transformed(steps: list) -> list[str]:
        data = source
        for step in steps:
            data = step.transform(path, data)
        return data.decode("utf-8", "replace").splitlines()

    (good_v, good_s), (bad_v, bad_s) = good_steps, bad_steps
    source_diff = difflib.unified_diff(
        transformed(good_s), transformed(bad_s), good_v, bad_v, n=2, lineterm=""
    )
    return ModuleDrift(
        path=path,
        good=good,
        bad=bad,
        source_diff=list(source_diff)[:200],
        code_diff=pyc_diff(store.get(good), store.get(bad), good_v, bad_v),
    )


#: Modules explained in detail (all are listed).
DETAIL_LIMIT = 25


def bisect_toolchain(
    root: Path,
    component: str,
    versions: list[str],
    *,
    on_build: Callable[[VersionBuild], None] | None = None,
) -> BisectResult:
    """Find the first of ``versions[1:]`` whose outputs differ from ``versions[0]``'s."""
    started = time.perf_counter()
    config = load_config(root)
    builds: list[VersionBuild] = []
    configs: dict[str, ProjectConfig] = {}

    def run(version: str) -> VersionBuild:
        b, cfg = build_version(root, config, component, version)
        configs[version] = cfg
        if builds:
            b.differs = _outputs_differ(builds[0], b)
        builds.append(b)
        if on_build:
            on_build(b)
        return b

    good = run(versions[0])
    candidates = versions[1:]
    index = search(candidates, lambda v: run(v).differs)
    first = candidates[index] if index < len(candidates) else None
    drifting: list[ModuleDrift] = []
    drifting_bundles: list[str] = []
    if first is not None:
        bad = next(b for b in builds if b.version == first)
        paths = sorted(
            p
            for p in set(good.modules) | set(bad.modules)
            if good.modules.get(p) != bad.modules.get(p)
        )
        store = ObjectStore(config.store_dir)
        sides = _steps_of(configs[versions[0]]), _steps_of(configs[first])
        for path in paths[:DETAIL_LIMIT]:
            if path in good.modules and path in bad.modules:
                drifting.append(
                    _module_drift(
                        config.root, store, *sides, path, good.modules[path], bad.modules[path]
                    )
                )
        drifting.extend(
            ModuleDrift(p, good.modules.get(p, ""), bad.modules.get(p, ""), [], [])
            for p in paths[DETAIL_LIMIT:]
        )
        drifting_bundles = sorted(
            r
            for r in set(good.bundles) | set(bad.bundles)
            if good.bundles.get(r) != bad.bundles.get(r)
        )
    return BisectResult(
        project=str(config.root),
        component=component,
        good=versions[0],
        versions=versions,
        first_drifting=first,
        last_same=(versions[versions.index(first) - 1] if first is not None else None),
        builds=builds,
        max_builds=math.ceil(math.log2(len(versions))) + 1,
        drifting_modules=drifting,
        drifting_bundles=drifting_bundles,
        seconds=time.perf_counter() - started,
    )
