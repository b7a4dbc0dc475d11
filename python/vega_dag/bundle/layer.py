"""The dependency layer: third-party packages pinned by the project's lock file.

The layer is a deterministic archive of the pinned wheels installed into one
directory, content-addressed, and keyed by the lock's pins and the target
interpreter: it is rebuilt only when the lock (or the interpreter) changes.
Locks are requirements-style (``name==version`` per line) or pylock.toml.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from vega_dag import _core
from vega_dag.errors import VegaError
from vega_dag.store.actions import action_key

if TYPE_CHECKING:
    from vega_dag.pipeline.context import BuildContext
    from vega_dag.store.state import BuildState

_PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)\s*(;.*)?$"
)
#: Installer bookkeeping that names the machine or tool rather than the package.
_SKIPPED_NAMES = {"RECORD", "INSTALLER", "direct_url.json", "REQUESTED"}


class LockError(VegaError):
    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> list[tuple[str, str]]:
    """The lock's pins as sorted (normalized name, version) pairs."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(path, None, "lock file not found") from None
    pins: dict[str, str] = {}
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise LockError(path, None, f"invalid TOML: {err}") from None
        for i, pkg in enumerate(data.get("packages", [])):
            if "name" not in pkg or "version" not in pkg:
                raise LockError(path, None, f"packages[{i}] needs a name and an exact version")
            pins[_normalize(pkg["name"])] = str(pkg["version"])
    else:
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            m = _PIN.match(line)
            if m is None:
                raise LockError(path, number, f"not an exact pin (name==version): {raw.strip()!r}")
            name = _normalize(m.group(1))
            if name in pins and pins[name] != m.group(3):
                raise LockError(path, number, f"{name} is pinned twice")
            pins[name] = m.group(3)
    return sorted(pins.items())


def target_tag() -> str:
    """The interpreter and platform the layer's wheels are chosen for."""
    return f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}"


def build_layer(pins: list[tuple[str, str]], lock_path: Path) -> bytes:
    """Install the pinned wheels into a fresh directory and archive it."""
    with tempfile.TemporaryDirectory(prefix="vega-layer-") as tmp:
        target = Path(tmp) / "site"
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--no-compile",
            "--target",
            str(target),
            *(f"{name}=={version}" for name, version in pins),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise LockError(lock_path, None, f"installing the pinned packages failed:\n{tail}")
        entries = []
        for path in sorted(target.rglob("*")):
            rel = path.relative_to(target).as_posix()
            if (
                not path.is_file()
                or rel.startswith("bin/")
                or "__pycache__" in path.parts
                or path.suffix == ".pyc"
                or (path.name in _SKIPPED_NAMES and ".dist-info/" in rel)
            ):
                continue
            entries.append((rel, path))
        data, _digest = _core.build_archive(entries, epoch=_core.DEFAULT_ARCHIVE_EPOCH)
        return data


def dependency_layer(ctx: BuildContext, lock: Path, state: BuildState) -> tuple[str, str]:
    """The layer step: (action key, layer digest) for ``lock``, built only on a cache miss."""
    pins = read_lock(lock)
    key = action_key("layer", pins, target_tag())
    out = ctx.actions.get(key)
    if out is not None and ctx.present(out):
        return key, out
    from vega_dag.compile.dirty import from_remote

    remote_why = from_remote(ctx, [key], "dependency layer")
    if key in ctx.remote_hits:
        return key, ctx.remote_hits[key]
    why = "lock changed" if state.layer else "first build of"
    why = f"layer: {why} {lock.name} ({len(pins)} pins)"
    ctx.why(why + (f"; remote: {remote_why[key]}" if key in remote_why else ""))
    data = build_layer(pins, lock)
    digest = _core.hash_bytes(data) if ctx.dry_run else ctx.store.put_loose(data)
    ctx.new_actions[key] = digest
    return key, digest
