"""Each registry step in its own virtualenv, installed once and then reused.

One virtualenv per (dist, version, interpreter) under the cache directory
(``$VEGA_DAG_CACHE_DIR``, else ``$XDG_CACHE_HOME/vega-dag``, else
``~/.cache/vega-dag``): ``steps/<dist>-<version>-<cp311>-<hash>/``, the hash
naming the exact base interpreter. It is made with the interpreter the build
runs on and filled by pip, which reads the user's configuration as usual
(``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``, pip.conf).

A marker file written last says a virtualenv is complete; one without it is
half made (an interrupted install) and is removed and made again. Installs
hold an exclusive ``flock`` on a lock file beside the virtualenv, so two
builds that need the same step at once install it once.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import msgspec

from vega_dag import _core
from vega_dag.compile.steps.errors import (
    StepCallError,
    StepInstallError,
    StepUnsupportedError,
    StepVersionNotFoundError,
)

#: Written last into a complete virtualenv: what was installed, for whom.
MARKER = "vega-step.json"
#: The standalone script the step's interpreter runs (stdlib only).
WORKER = Path(__file__).with_name("worker.py")

_NETWORK_TROUBLE = (
    "Could not fetch URL",
    "Max retries exceeded",
    "NewConnectionError",
    "Temporary failure in name resolution",
    "ConnectTimeout",
    "Network is unreachable",
)
_BUILD_TROUBLE = (
    "is not a supported wheel on this platform",
    "Failed to build",
    "Could not build wheels",
    "subprocess-exited-with-error",
)


class StepVenv(msgspec.Struct, frozen=True):
    """A complete step virtualenv (the marker's content, plus where it is)."""

    path: str
    dist: str
    #: The version as configured.
    requested: str
    #: The version pip installed (``2.9`` may install ``2.9.0``).
    installed: str
    #: ``sys.version`` of the interpreter it was made with.
    python: str

    @property
    def python_path(self) -> Path:
        return Path(self.path, "bin", "python")

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.requested}"


def cache_dir() -> Path:
    """``$VEGA_DAG_CACHE_DIR``, else ``$XDG_CACHE_HOME/vega-dag``, else ``~/.cache/vega-dag``."""
    if explicit := os.environ.get("VEGA_DAG_CACHE_DIR"):
        return Path(explicit)
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg, "vega-dag")
    return Path.home() / ".cache" / "vega-dag"


def interpreter_tag() -> str:
    """``cp311`` for CPython 3.11 (other implementations by their own name)."""
    name = sys.implementation.name
    short = {"cpython": "cp", "pypy": "pp"}.get(name, name)
    return f"{short}{sys.version_info.major}{sys.version_info.minor}"


def _base_interpreter() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def venv_dir(dist: str, version: str) -> Path:
    """Where the virtualenv of ``dist==version`` for this interpreter lives."""
    who = msgspec.json.encode([dist, version, sys.version, _base_interpreter()])
    digest = _core.hash_bytes(who).removeprefix(_core.DIGEST_PREFIX)[:10]
    safe_version = re.sub(r"[^A-Za-z0-9._-]", "_", version)
    return cache_dir() / "steps" / f"{dist}-{safe_version}-{interpreter_tag()}-{digest}"


def _read_marker(path: Path) -> StepVenv | None:
    try:
        venv = msgspec.json.decode((path / MARKER).read_bytes(), type=StepVenv)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return venv if venv.python_path.exists() else None


def ensure_venv(
    dist: str, version: str, *, on_install: Callable[[str], None] | None = None
) -> StepVenv:
    """The complete virtualenv of ``dist==version``, installing it if need be.

    ``dist`` is PEP 503-normalised. ``on_install`` gets one line when an
    install starts (default: stderr); a cache hit says nothing. Raises
    ``StepVersionNotFoundError``, ``StepUnsupportedError`` or ``StepInstallError``.
    """
    path = venv_dir(dist, version)
    venv = _read_marker(path)
    if venv is not None:
        return venv
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        # Another process may have finished it while this one waited.
        venv = _read_marker(path)
        if venv is not None:
            return venv
        return _install(path, dist, version, on_install)


def _install(
    path: Path, dist: str, version: str, on_install: Callable[[str], None] | None
) -> StepVenv:
    requirement = f"{dist}=={version}"
    if path.exists():
        shutil.rmtree(path)  # half made: the marker is written last
    line = f"Installing compile step {requirement} into {path}…"
    if on_install is not None:
        on_install(line)
    else:
        print(line, file=sys.stderr, flush=True)
    try:
        pip_outside = _pip_supports_python_option()
        # Without pip inside, a virtualenv takes ~0.2 s instead of ~5 s; the
        # build interpreter's pip installs into it (`pip --python`, pip ≥ 22.3).
        create = [sys.executable, "-I", "-m", "venv"]
        create += ["--without-pip", str(path)] if pip_outside else [str(path)]
        _run(create, requirement, "creating its virtualenv")
        python = path / "bin" / "python"
        pip = (
            [sys.executable, "-m", "pip", "--python", str(python)]
            if pip_outside
            else [str(python), "-m", "pip"]
        )
        done = subprocess.run(
            [
                *pip,
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--no-warn-script-location",
                "--progress-bar",
                "off",
                requirement,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise _pip_failure(requirement, version, done.stdout + done.stderr)
        found = probe(python, dist, requirement)
        if not found.get("version"):
            raise StepInstallError(requirement, f"pip installed no dist named {dist} in {path}")
        venv = StepVenv(
            path=str(path),
            dist=dist,
            requested=version,
            installed=str(found["version"]),
            python=sys.version,
        )
        tmp = path / (MARKER + ".tmp")
        tmp.write_bytes(msgspec.json.encode(venv))
        os.replace(tmp, path / MARKER)
        return venv
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def _pip_supports_python_option() -> bool:
    if importlib.util.find_spec("pip") is None:
        return False
    try:
        major, minor = (int(p) for p in importlib.metadata.version("pip").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (22, 3)


def _run(cmd: list[str], requirement: str, doing: str) -> None:
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        raise StepInstallError(requirement, f"{doing} failed: {_tail(done.stdout + done.stderr)}")


def _tail(output: str, lines: int = 6) -> str:
    errors = [line.strip() for line in output.splitlines() if line.startswith("ERROR:")]
    shown = errors or [line.strip() for line in output.splitlines() if line.strip()]
    return " | ".join(shown[-lines:]) or "no output"


def _same_version(a: str, b: str) -> bool:
    # pip's `==` pads releases with zeros: ==2.9 matches 2.9.0.
    def key(v: str) -> str:
        v = v.lower().removeprefix("v")
        while v.endswith(".0"):
            v = v[:-2]
        return v

    return key(a) == key(b)


def parse_available(output: str) -> list[str] | None:
    """The versions pip's "(from versions: …)" lists, or None when it lists none."""
    match = re.search(r"\(from versions: ([^)]*)\)", output)
    if match is None:
        return None
    text = match[1].strip()
    return [] if text == "none" else [v.strip() for v in text.split(",") if v.strip()]


def parse_ignored(output: str) -> dict[str, str]:
    """Versions pip skipped for their Requires-Python: version → the requirement."""
    match = re.search(
        r"Ignored the following versions that require a different python version: (.*)", output
    )
    if match is None:
        return {}
    ignored = {}
    for entry in match[1].split("; "):
        version, _, spec = entry.strip().partition(" Requires-Python ")
        if version:
            ignored[version] = spec.strip()
    return ignored


def _pip_failure(requirement: str, version: str, output: str) -> StepInstallError:
    python = sys.version.split()[0]
    if any(marker in output for marker in _NETWORK_TROUBLE):
        return StepInstallError(
            requirement, f"could not reach the package index: {_tail(output, 3)}"
        )
    available = parse_available(output)
    if available is not None or "No matching distribution found" in output:
        for ignored, spec in parse_ignored(output).items():
            if _same_version(ignored, version):
                return StepUnsupportedError(
                    requirement,
                    f"unsupported on Python {python}: it requires Python {spec}",
                )
        return StepVersionNotFoundError(requirement, available or [])
    # Found, then refused by its metadata (a wheel from --find-links has no
    # index data-requires-python to filter on beforehand).
    refused = re.search(r"requires a different Python: \S+ not in '([^']*)'", output)
    if refused is not None:
        return StepUnsupportedError(
            requirement, f"unsupported on Python {python}: it requires Python {refused[1]}"
        )
    if any(marker in output for marker in _BUILD_TROUBLE):
        return StepUnsupportedError(
            requirement, f"unsupported: does not install on Python {python}: {_tail(output)}"
        )
    return StepInstallError(requirement, f"pip install failed: {_tail(output)}")


def probe(python: Path, dist: str, step: str, call: str = "") -> dict[str, object]:
    """Ask the step's interpreter for dist's installed version and whether ``call`` imports."""
    cmd = [str(python), "-I", str(WORKER), "--probe", dist]
    done = subprocess.run(
        [*cmd, call] if call else cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        raise StepUnsupportedError(
            step, f"unsupported: its interpreter {python} does not run: {_tail(done.stderr)}"
        ) from None


def check_call(venv: StepVenv, call: str, step: str) -> None:
    """Raise unless ``call`` imports in ``venv``; a success is remembered in the venv.

    A missing module or function is ``StepCallError``; any other exception
    while importing is the package not running here, ``StepUnsupportedError``.
    """
    digest = _core.hash_bytes(call.encode()).removeprefix(_core.DIGEST_PREFIX)[:16]
    ok = Path(venv.path, "vega-calls", digest)
    if ok.exists():
        return
    found = probe(venv.python_path, venv.dist, step, call)
    error = found.get("error")
    if isinstance(error, dict):
        detail = f"{error['type']}: {error['message']}"
        if error["kind"] == "missing":
            raise StepCallError(step, f"call {call!r} does not import: {detail}")
        module, python = call.partition(":")[0], sys.version.split()[0]
        raise StepUnsupportedError(
            step, f"unsupported: {module} does not import on Python {python}: {detail}"
        )
    ok.parent.mkdir(exist_ok=True)
    tmp = ok.with_name(f"{digest}.{os.getpid()}.tmp")
    tmp.write_text(call + "\n")
    os.replace(tmp, ok)


def index_versions(dist: str) -> list[str]:
    """The versions of ``dist`` on the configured index that install on this interpreter.

    Oldest first, as pip lists them. For bisecting a step over its releases.
    """
    with tempfile.TemporaryDirectory(prefix="vega-versions-") as nowhere:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--no-input",
                "--no-deps",
                "--dest",
                nowhere,
                # `===` compares strings: no release is called this, so pip
                # fails, listing every version it found.
                f"{dist}===0+vega.no.such.version",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
    output = done.stdout + done.stderr
    available = parse_available(output)
    if available is None:
        raise StepInstallError(dist, f"could not list its versions: {_tail(output)}")
    return available
