"""The compile step: which modules need compiling, and compiling them.

A module's output is reused when the last build's record has it for the
same (source, path, toolchain), else when the action cache has it; only the
rest are compiled (in parallel, ``compile.pool``), each miss explained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vega_dag import _core
from vega_dag.compile.pool import compile_all
from vega_dag.errors import VegaError
from vega_dag.pipeline.context import short
from vega_dag.pipeline.result import BuildError
from vega_dag.store.actions import action_key

if TYPE_CHECKING:
    from vega_dag.daemon.warm import LastBuild
    from vega_dag.graph.analysis import Analysis
    from vega_dag.graph.modules import Module
    from vega_dag.pipeline.context import BuildContext
    from vega_dag.store.state import BuildState


@dataclass
class Compiled:
    #: module → digest of its compiled bytes, for every module
    pyc: dict[str, str]
    #: the modules compiled now, sorted
    compiled: list[str]
    #: the modules whose output may differ from the last build's record
    #: (the rest are unedited and kept their output)
    checked: list[str] | dict[str, Module]


def compile_modules(
    ctx: BuildContext, a: Analysis, state: BuildState, last: LastBuild | None
) -> Compiled:
    """Every module's compiled output: reused where it stands, compiled otherwise."""
    modules, digests, edited = a.modules, a.digests, a.edited
    pyc: dict[str, str] = {}
    jobs: list[tuple[str, str]] = []
    job_module: dict[str, str] = {}
    keys: dict[str, str] = {}
    misses: list[tuple[str, Module, str, str | None]] = []
    same_toolchain = state.toolchain == ctx.toolchain
    todo: list[str] | dict[str, Module] = modules
    if (
        same_toolchain
        and last is not None
        and edited is not None
        and not ctx.verify
        and last.index is ctx.store.index
    ):
        # The index this process wrote last, holding every output of
        # the last build: those of unedited modules stand as they are.
        pyc.update(last.pyc)
        todo = sorted(edited)
    elif same_toolchain and edited is not None and not ctx.verify:
        # The last build's outputs of every unedited module stand while
        # the store holds them: one pass over the records, the index
        # probed directly (the loop below handles the rest).
        index = ctx.store.index.objects
        todo = []
        for name, record in state.modules.items():
            if name not in edited and record.pyc in index:
                pyc[name] = record.pyc
            else:
                todo.append(name)
    for name in todo:
        m = modules[name]
        digest = digests[m.path]
        old = state.modules.get(name)
        if (
            same_toolchain
            and old is not None
            and old.source == digest
            and old.path == m.path
            and ctx.present(old.pyc)
        ):
            # The last build's output for the same (source, path,
            # toolchain): the action cache would say the same, and
            # skipping the key saves most of a 20,000-module no-change.
            pyc[name] = old.pyc
            continue
        key = action_key("compile", digest, m.path, ctx.tc_key)
        keys[name] = key
        out = ctx.actions.get(key)
        if out is not None and ctx.present(out):
            pyc[name] = out
            continue
        misses.append((name, m, digest, out))
    remote_why = from_remote(ctx, [keys[name] for name, *_ in misses], "compiled modules")
    for name, m, digest, out in misses:
        hit = ctx.remote_hits.get(keys[name])
        if hit is not None:
            pyc[name] = hit
            continue
        jobs.append((m.path, digest))
        job_module[m.path] = name
        explain_module(ctx, name, m, digest, out, state, remote_why.get(keys[name]))
    compiled: list[str] = []
    if not jobs:
        return Compiled(pyc, compiled, todo)
    if ctx.reporter.on_compile_start:
        ctx.reporter.on_compile_start(len(jobs))
    problems = []
    for path, result in compile_all(
        str(ctx.root),
        sorted(jobs),
        ctx.config.vega.optimize,
        workers=ctx.workers,
        on_done=ctx.reporter.on_compiled,
        steps=ctx.steps,
    ):
        if isinstance(result, VegaError):
            problems.append(result)
            continue
        name = job_module[path]
        digest = _core.hash_bytes(result)
        ctx.new_objects[digest] = result
        ctx.new_actions[keys[name]] = digest
        pyc[name] = digest
        compiled.append(name)
    if problems:
        problems.sort(key=lambda e: (getattr(e, "path", ""), getattr(e, "line", 0) or 0))
        raise BuildError([str(p) for p in problems])
    compiled.sort()
    return Compiled(pyc, compiled, todo)


def from_remote(ctx: BuildContext, keys: list[str], what: str) -> dict[str, str]:
    """Look ``keys`` up in the shared store: hits join the build's outputs; why the rest missed.

    A hit's object is verified before it counts (store.remote); it enters
    the local store with the build's commit, and its entry the local cache.
    """
    found = ctx.remote_lookup(keys) if keys and ctx.remote_url and not ctx.dry_run else None
    if found is None:
        ctx.remote_down()
        return {}
    for key, (digest, data) in found.hits.items():
        ctx.new_objects[digest] = data
        ctx.new_actions[key] = digest
        ctx.remote_hits[key] = digest
    ctx.remote_down()
    if found.hits:
        ctx.why(
            f"{len(found.hits)} {what} fetched from the remote cache {ctx.remote_url} (verified)"
        )
    return found.misses


def explain_module(
    ctx: BuildContext,
    name: str,
    m: Module,
    digest: str,
    cached_out: str | None,
    state: BuildState,
    remote_why: str | None = None,
) -> None:
    """Why module ``name`` is compiled (``--explain``)."""
    if not ctx.explain:
        return
    old = state.modules.get(name)
    if cached_out is not None:
        why = f"cached output {short(cached_out)} is missing from the store"
    elif old is None:
        why = "new module"
    elif old.source != digest:
        why = f"source changed ({short(old.source)} → {short(digest)})"
    elif state.toolchain is not None and state.toolchain != ctx.toolchain:
        why = f"toolchain changed ({'; '.join(ctx.toolchain.differences(state.toolchain))})"
    elif old.path != m.path:
        why = f"moved from {old.path}"
    else:
        why = "not in the action cache"
    if remote_why is not None:
        why += f"; remote: {remote_why}"
    ctx.why(f"{m.path}: {why}")
