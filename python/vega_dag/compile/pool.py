"""Compiling many modules in parallel.

CPython's compiler holds the GIL, so parallel compiles need processes. A pool
costs tens of milliseconds to start, which is most of an incremental build's
budget, so small batches compile in this process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

from vega_dag.compile.bytecode import CompileError, CompileStep, SourceChangedError, compile_file
from vega_dag.errors import VegaError

#: Below this many modules, a pool's start-up costs more than it saves.
POOL_THRESHOLD = 48

#: (path, expected source digest)
Job = tuple[str, str]
#: (path, pyc bytes) or (path, error)
Outcome = tuple[str, bytes | VegaError]


#: The build's compile steps. Set before a pool forks, so workers inherit the
#: plugin objects instead of unpickling them.
_STEPS: Sequence[CompileStep] = ()


def _compile_one(root: str, job: Job, optimize: int) -> Outcome:
    path, digest = job
    try:
        return compile_file(root, path, digest, optimize, _STEPS)
    except VegaError as err:
        return path, err


def _compile_chunk(
    root: str, jobs: list[Job], optimize: int
) -> list[tuple[str, bytes | tuple[str, str, int | None, str]]]:
    # Errors cross the process boundary as plain tuples: exception classes
    # with keyword-ful constructors do not pickle.
    out: list[tuple[str, bytes | tuple[str, str, int | None, str]]] = []
    for path, result in (_compile_one(root, job, optimize) for job in jobs):
        if isinstance(result, CompileError):
            out.append((path, ("compile", result.path, result.line, result.reason)))
        elif isinstance(result, SourceChangedError):
            out.append((path, ("changed", result.path, None, "")))
        elif isinstance(result, VegaError):
            out.append((path, ("compile", path, None, str(result))))
        else:
            out.append((path, result))
    return out


def _revive(path: str, value: bytes | tuple[str, str, int | None, str]) -> Outcome:
    if isinstance(value, bytes):
        return path, value
    kind, epath, line, reason = value
    if kind == "changed":
        return path, SourceChangedError(epath)
    return path, CompileError(epath, line, reason)


def compile_all(
    root: str,
    jobs: list[Job],
    optimize: int,
    *,
    workers: int | None = None,
    on_done: Callable[[str], None] | None = None,
    steps: Sequence[CompileStep] = (),
) -> Iterator[Outcome]:
    """Compile every job, yielding outcomes as they finish (order not kept)."""
    global _STEPS
    _STEPS = steps
    workers = workers or os.cpu_count() or 1
    if len(jobs) < POOL_THRESHOLD or workers == 1:
        for job in jobs:
            outcome = _compile_one(root, job, optimize)
            if on_done:
                on_done(outcome[0])
            yield outcome
        return
    # Chunks amortise the per-task pickling; enough of them to balance load.
    size = max(8, min(256, len(jobs) // (workers * 8) or 1))
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    # Imported here: an incremental build compiles in-process and should not
    # pay for multiprocessing's imports.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for chunk_result in pool.map(
            _compile_chunk, [root] * len(chunks), chunks, [optimize] * len(chunks)
        ):
            for path, value in chunk_result:
                if on_done:
                    on_done(path)
                yield _revive(path, value)
