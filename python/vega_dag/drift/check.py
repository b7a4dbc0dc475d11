"""The drift check as ``vega-dag drift`` and the pre-commit hook run it."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from vega_dag.drift.compare import Drift, compare
from vega_dag.drift.sandbox import (
    Conditions,
    copy_root,
    default_conditions,
    make_copy,
    project_files,
    scratch_base,
)
from vega_dag.errors import VegaError

if TYPE_CHECKING:
    from vega_dag.compile.toolchain import Toolchain
    from vega_dag.config import ProjectConfig


class DriftBuildError(VegaError):
    """An isolated build failed (not drift: the project does not build)."""

    def __init__(self, label: str, problems: list[str]) -> None:
        super().__init__(f"the isolated build {label} failed:\n" + "\n".join(problems))
        self.problems = problems


class DriftReport(msgspec.Struct):
    project: str
    #: "all" (--all) or "change" (the working-tree change)
    scope: str
    #: The changed modules that were checked (with "change").
    touched: list[str]
    modules_checked: int
    bundles_checked: int
    #: Outputs that also had a store record for the same input and toolchain.
    compared_with_store: int
    #: Build label -> its conditions.
    conditions: dict[str, str]
    drifts: list[Drift]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.drifts


class _Workers:
    """The two builds' workers, started ahead of their builds in their (still empty) copies.

    Each is a fresh interpreter started under its build's conditions (its
    environment, hash seed included, umask and working directory); it imports
    the build's code, then waits for its spec on stdin (``drift.worker``), so
    its start-up overlaps finding the change and copying the project.
    """

    def __init__(
        self, root: Path, work: Path, conditions: tuple[Conditions, ...], env: dict[str, str]
    ) -> None:
        self.work = work
        self.conditions = conditions
        self.copies: dict[str, Path] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        #: What the workers were started for: a spare serves only a check of the same.
        self.key: tuple[object, ...] = ()
        for cond in conditions:
            copy = copy_root(root, work / "trees", cond)
            copy.mkdir(parents=True)
            self.copies[cond.label] = copy
            self.procs[cond.label] = subprocess.Popen(
                [sys.executable, "-m", "vega_dag.drift.worker", "-"],
                cwd=copy.parent if cond.cwd_parent else copy,
                env=cond.env(env),
                umask=cond.umask,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

    def alive(self) -> bool:
        return all(proc.poll() is None for proc in self.procs.values())

    def send(self, touched: list[str] | None) -> None:
        for label, proc in self.procs.items():
            spec = {"root": str(self.copies[label]), "touched": touched}
            spec["out"] = str(self.work / f"out-{label}")
            assert proc.stdin is not None
            try:
                # Flushed, not closed: communicate() closes it.
                proc.stdin.write(json.dumps(spec) + "\n")
                proc.stdin.flush()
            except BrokenPipeError:
                pass  # it died: _collect reports its exit status and stderr

    def stop(self) -> None:
        """End the workers that still run (no build to do, or the check failed)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


#: In the build daemon: the next check's workers and scratch directory, started
#: once the previous check has answered (so the next finds its interpreters
#: started and its imports done). Each serves one check; a check whose project,
#: environment or scratch place differs starts its own.
_spare: _Workers | None = None
_exit_registered = False


def _take_spare(key: tuple[object, ...]) -> _Workers | None:
    global _spare
    spare, _spare = _spare, None
    if spare is not None and spare.key == key and spare.alive():
        return spare
    if spare is not None:
        _discard(spare)
    return None


def _discard(workers: _Workers) -> None:
    workers.stop()
    shutil.rmtree(workers.work, ignore_errors=True)


def _discard_spare() -> None:
    global _spare
    if _spare is not None:
        _discard(_spare)
        _spare = None


def _prepare_spare(root: Path, base: str | None, env: dict[str, str], key: tuple) -> None:
    global _spare, _exit_registered
    if not _exit_registered:
        # The daemon's exit ends its spare workers and removes their directory.
        atexit.register(_discard_spare)
        _exit_registered = True
    _discard_spare()
    work = Path(tempfile.mkdtemp(prefix="vega-drift-", dir=base))
    _spare = _Workers(root, work, default_conditions(), env)
    _spare.key = key


def _collect(label: str, proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate()
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise DriftBuildError(label, [f"exit status {proc.returncode}", tail]) from None
    if "error" in result:
        raise DriftBuildError(label, result["error"])
    return result


def check_drift(
    root: Path,
    *,
    everything: bool = False,
    keep: Path | None = None,
    conditions: tuple[Conditions, ...] | None = None,
) -> DriftReport:
    """Rebuild what the change touches (or everything) under varied conditions; compare."""
    from vega_dag.compile.toolchain import check_pin, project_toolchain
    from vega_dag.config import load_config
    from vega_dag.scan.project import scan_skip_dirs

    started = time.perf_counter()
    config = load_config(root)
    _, toolchain = project_toolchain(config)
    check_pin(config, toolchain)
    files, size = project_files(config.root, scan_skip_dirs(config))
    return _check(config, toolchain, files, size, everything, keep, conditions, started)


def _check(
    config: ProjectConfig,
    toolchain: Toolchain,
    files: list[str],
    size: int,
    everything: bool,
    keep: Path | None,
    conditions: tuple[Conditions, ...] | None,
    started: float,
) -> DriftReport:
    from vega_dag.daemon import warm
    from vega_dag.drift.changes import touched_files
    from vega_dag.store.actions import ActionCache
    from vega_dag.store.objects import ObjectStore

    base = scratch_base(size)
    env = dict(os.environ)
    key = (str(config.root), base, tuple(sorted(env.items())))
    workers = _take_spare(key) if keep is None and conditions is None else None
    if workers is None:
        work = keep if keep is not None else Path(tempfile.mkdtemp(prefix="vega-drift-", dir=base))
        workers = _Workers(config.root, work, conditions or default_conditions(), env)
    work = workers.work
    described = {c.label: c.describe() for c in workers.conditions}
    try:
        touched: list[str] | None = None
        if not everything:
            changed = touched_files(config)
            if changed is not None:
                touched = sorted(
                    p for p in changed if p.endswith(".py") and (config.root / p).is_file()
                )
        scope = "all" if touched is None else "change"
        if touched == []:
            return DriftReport(
                str(config.root), scope, [], 0, 0, 0, described, [], time.perf_counter() - started
            )
        for cond in workers.conditions:
            make_copy(config.root, files, work / "trees", cond)
        workers.send(touched)
        procs = workers.procs
        results = {label: _collect(label, proc) for label, proc in procs.items()}
        keys = {label: r["toolchain_key"] for label, r in results.items()}
        if set(keys.values()) != {toolchain.key}:
            raise DriftBuildError(
                ",".join(keys),
                [f"the isolated builds ran with another toolchain: {results}"],
            )
        scratch = work / "store-copies"
        scratch.mkdir(exist_ok=True)
        drifts, with_store = compare(
            results,
            ObjectStore(config.store_dir),
            ActionCache(config.store_dir / "state" / "actions.msgpack"),
            scratch,
        )
        first = next(iter(results.values()))
        return DriftReport(
            project=str(config.root),
            scope=scope,
            touched=touched or [],
            modules_checked=len(first["modules"]),
            bundles_checked=len(first["bundles"]),
            compared_with_store=with_store,
            conditions=described,
            drifts=drifts,
            seconds=time.perf_counter() - started,
        )
    finally:
        workers.stop()
        if keep is None and not warm.defer(lambda: shutil.rmtree(work, ignore_errors=True)):
            shutil.rmtree(work, ignore_errors=True)
        if keep is None and conditions is None and warm.enabled():
            warm.defer(lambda: _prepare_spare(config.root, base, env, key))
