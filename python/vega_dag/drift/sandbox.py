"""Isolated copies of the project, and the conditions each drift build runs under.

The two builds differ in every condition that has leaked into build outputs
in practice (reprotest's variations): the absolute path and its depth, the
working directory, TZ, umask, locale, PYTHONHASHSEED, the order in which the
files were created (so directory order differs), their mtimes, and whether
SOURCE_DATE_EPOCH is set. Neither matches the user's checkout either, whose
outputs the store holds: that is a third set of conditions.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from vega_dag import _core

#: 2001-09-09T01:46:40Z: an mtime no checkout has.
_ODD_MTIME = 1_000_000_000


@dataclass(frozen=True)
class Conditions:
    label: str
    #: Path components between the temporary directory and the project copy.
    subdir: tuple[str, ...]
    tz: str
    umask: int
    locale: str
    hash_seed: int
    #: Create files in reverse byte order (directory listing order differs).
    reverse_order: bool
    #: Set every mtime to this (seconds); None keeps the checkout's mtimes.
    mtime: int | None
    source_date_epoch: int | None
    #: Run the build from the copy's parent rather than from the copy.
    cwd_parent: bool

    def describe(self) -> str:
        return (
            f"TZ={self.tz} umask={self.umask:03o} LC_ALL={self.locale} "
            f"PYTHONHASHSEED={self.hash_seed} "
            f"order={'reversed' if self.reverse_order else 'sorted'} "
            f"mtimes={'checkout' if self.mtime is None else self.mtime} "
            f"SOURCE_DATE_EPOCH={self.source_date_epoch if self.source_date_epoch else 'unset'}"
        )

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in base.items() if k not in ("SOURCE_DATE_EPOCH", "LANG", "LC_ALL")}
        env.update(TZ=self.tz, LC_ALL=self.locale, LANG=self.locale)
        env["PYTHONHASHSEED"] = str(self.hash_seed)
        if self.source_date_epoch is not None:
            env["SOURCE_DATE_EPOCH"] = str(self.source_date_epoch)
        return env


def default_conditions(rng: random.Random | None = None) -> tuple[Conditions, Conditions]:
    """Two builds that differ in every condition; the second hash seed is random."""
    rng = rng or random.SystemRandom()
    a = Conditions(
        label="a",
        subdir=("a",),
        tz="UTC",
        umask=0o022,
        locale="C.UTF-8",
        hash_seed=0,
        reverse_order=False,
        mtime=None,
        source_date_epoch=None,
        cwd_parent=False,
    )
    b = Conditions(
        label="b",
        subdir=("b", "a-much", "deeper", "path"),
        # UTC+12:45 (+13:45 in summer): an offset no default has.
        tz="Pacific/Chatham",
        umask=0o077,
        locale="C",
        hash_seed=rng.randrange(1, 2**32),
        reverse_order=True,
        mtime=_ODD_MTIME,
        source_date_epoch=_ODD_MTIME,
        cwd_parent=True,
    )
    return a, b


def project_files(root: Path, skip_dirs: list[str]) -> tuple[list[str], int]:
    """The files the build would scan, project-relative, byte-sorted; their total size."""
    found = _core.scan_tree(root, skip_dirs=skip_dirs).files
    return [f[0] for f in found], sum(f[1] for f in found)


#: The drift builds' scratch directory, over the choice below.
SCRATCH_ENV = "VEGA_DAG_DRIFT_TMPDIR"
#: Where the copies go when it is a writable tmpfs with room (as Bazel's
#: ``--sandbox_base=/dev/shm``): two copies, two builds' outputs, then a
#: delete, none of which needs to reach a disk.
SHM = Path("/dev/shm")


def scratch_base(project_bytes: int) -> str | None:
    """Where the drift check makes its copies (None: the system's temporary directory).

    A check writes two copies of the project and both builds' outputs, and
    deletes them all when done: on a disk shared with other work (a CI runner,
    an editor indexing) that is most of the hook's time. So it uses /dev/shm
    when that is a writable directory with room for ~8× the project (the
    copies, the bytecode and the bundles of both builds); containers often give
    /dev/shm only 64 MiB, and then the system's temporary directory serves.
    """
    chosen = os.environ.get(SCRATCH_ENV)
    if chosen:
        return chosen
    try:
        st = os.statvfs(SHM)
    except OSError:
        return None
    room = st.f_bavail * st.f_frsize
    if room < 8 * project_bytes + (64 << 20) or not os.access(SHM, os.W_OK | os.X_OK):
        return None
    return str(SHM)


def copy_root(root: Path, dest: Path, cond: Conditions) -> Path:
    """Where ``make_copy`` puts the copy of ``root`` under ``cond``: ``dest/<subdir>/<name>``."""
    return dest.joinpath(*cond.subdir, root.name)


def make_copy(root: Path, files: list[str], dest: Path, cond: Conditions) -> Path:
    """Copy ``files`` of ``root`` to ``copy_root(...)`` under ``cond``; the copy's root.

    The root directory itself may exist already (empty): the check creates it
    first to start the build's worker in it while the files are copied.
    """
    copy = copy_root(root, dest, cond)
    copy.mkdir(parents=True, exist_ok=True)
    order = list(reversed(files)) if cond.reverse_order else files
    old_umask = os.umask(cond.umask)
    try:
        for rel in order:
            src = root / rel
            target = copy / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
            if cond.mtime is None:
                st = src.stat()
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
            else:
                os.utime(target, (cond.mtime, cond.mtime))
    finally:
        os.umask(old_umask)
    return copy
