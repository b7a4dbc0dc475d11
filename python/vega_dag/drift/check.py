"""The drift check as ``vega-dag drift`` and the pre-commit hook run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from vega_dag.drift.compare import Drift, compare
from vega_dag.drift.sandbox import (
    Conditions,
    default_conditions,
    make_copy,
    project_files,
    scratch_base,
)
from vega_dag.errors import VegaError


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


def _spawn(copy: Path, touched: list[str] | None, out: Path, cond: Conditions) -> subprocess.Popen:
    spec = json.dumps({"root": str(copy), "touched": touched, "out": str(out)})
    return subprocess.Popen(
        [sys.executable, "-m", "vega_dag.drift.worker", spec],
        cwd=copy.parent if cond.cwd_parent else copy,
        env=cond.env(dict(os.environ)),
        umask=cond.umask,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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
    from vega_dag.drift.changes import touched_files
    from vega_dag.scan.project import scan_skip_dirs
    from vega_dag.store.actions import ActionCache
    from vega_dag.store.objects import ObjectStore

    started = time.perf_counter()
    config = load_config(root)
    _, toolchain = project_toolchain(config)
    check_pin(config, toolchain)
    conditions = conditions or default_conditions()
    described = {c.label: c.describe() for c in conditions}

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

    files, size = project_files(config.root, scan_skip_dirs(config))
    if keep is None:
        work = Path(tempfile.mkdtemp(prefix="vega-drift-", dir=scratch_base(size)))
    else:
        work = keep
    try:
        procs = {}
        for cond in conditions:
            copy = make_copy(config.root, files, work / "trees", cond)
            procs[cond.label] = _spawn(copy, touched, work / f"out-{cond.label}", cond)
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
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
