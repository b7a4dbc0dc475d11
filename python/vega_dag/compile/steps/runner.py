"""Running a registry step: one persistent worker process per step, per process.

The worker (worker.py, run by the step's own interpreter) starts on the first
module a process transforms, then serves every later one over a pipe: a
build pays the interpreter's start and the package's import once, not per
module. A forked compile worker inherits the parent's worker but must not
share its pipe, so it starts its own (``os.getpid()`` tells).
"""

from __future__ import annotations

import atexit
import io
import json
import os
import signal
import struct
import subprocess
import tempfile
import tokenize
from collections.abc import Callable
from typing import IO

import msgspec

from vega_dag.compile.steps.errors import RemoteStepError, StepCallError, StepWorkerError
from vega_dag.compile.steps.spec import StepSpec
from vega_dag.compile.steps.venv import WORKER, StepVenv, check_call, ensure_venv

_LEN = struct.Struct(">I")
#: How much of a dead worker's stderr an error shows.
_STDERR_TAIL = 2000


def decode_source(source: bytes) -> str:
    """Source bytes as text, decoded as PEP 263 says (coding cookie, BOM, else UTF-8)."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    return source.decode(encoding)


def encode_output(text: str) -> bytes:
    """A step's output as bytes: UTF-8, unless it keeps a coding cookie for another encoding."""
    data = text.encode("utf-8")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        return data  # an unknown coding cookie: compile reports it, naming the file
    if encoding in ("utf-8", "utf-8-sig"):
        return data
    # The bytes must say what the cookie says, or compile() would misread them.
    return text.encode(encoding)


class _Worker:
    """One worker process serving one (interpreter, call, options)."""

    def __init__(self, python: str, call: str, options: str, step: str) -> None:
        self.step = step
        self.pid = os.getpid()
        # A file, not a pipe: nobody reads stderr while the worker runs, and a
        # full pipe would block it. Read back only when it dies; closed by close().
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [python, "-I", str(WORKER), call, options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        hello = self._reply("starting")
        if hello[:1] == b"!":
            error = json.loads(hello[1:])
            self.close()
            raise StepCallError(step, f"call {call!r} does not import: {_remote(error)}")

    def transform(self, path: str, text: str) -> str:
        stdin = self.proc.stdin
        assert stdin is not None
        p, t = path.encode("utf-8"), text.encode("utf-8")
        try:
            stdin.write(_LEN.pack(len(p)) + p + _LEN.pack(len(t)) + t)
            stdin.flush()
        except (BrokenPipeError, ValueError):
            raise self._died(f"transforming {path}") from None
        reply = self._reply(f"transforming {path}")
        if reply[:1] == b"+":
            return reply[1:].decode("utf-8")
        error = json.loads(reply[1:])
        raise RemoteStepError(error.get("type", "Exception"), error.get("message", ""))

    def _reply(self, doing: str) -> bytes:
        stdout = self.proc.stdout
        assert stdout is not None
        (size,) = _LEN.unpack(self._read(stdout, _LEN.size, doing))
        reply = self._read(stdout, size, doing)
        if reply[:1] not in (b"+", b"!"):
            self.close()
            raise StepWorkerError(self.step, f"its worker broke the protocol while {doing}")
        return reply

    def _read(self, stream: IO[bytes], size: int, doing: str) -> bytes:
        data = stream.read(size)
        if len(data) != size:
            raise self._died(doing)
        return data

    def _died(self, doing: str) -> StepWorkerError:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        how = f"exit status {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        self.stderr.seek(0, io.SEEK_END)
        self.stderr.seek(max(0, self.stderr.tell() - _STDERR_TAIL))
        tail = self.stderr.read().decode("utf-8", "replace").strip()
        self.close()
        detail = f"; its stderr ends: {tail}" if tail else ""
        return StepWorkerError(self.step, f"its worker process died ({how}) while {doing}{detail}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """Let the worker see EOF and exit; kill it if it does not."""
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()

    def abandon(self) -> None:
        """In a forked child: drop this process's copies of the parent's pipes."""
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self.stderr.close()


def _remote(error: dict) -> str:
    return str(RemoteStepError(error.get("type", "Exception"), error.get("message", "")))


#: (interpreter, call, options JSON) → this process's worker for it.
_WORKERS: dict[tuple[str, str, str], _Worker] = {}


def _worker_for(key: tuple[str, str, str], step: str) -> _Worker:
    worker = _WORKERS.get(key)
    if worker is not None and worker.pid != os.getpid():
        worker.abandon()  # forked: the parent's worker, not ours
        worker = None
    elif worker is not None and not worker.alive():
        worker.close()
        worker = None
    if worker is None:
        worker = _WORKERS[key] = _Worker(*key, step)
    return worker


@atexit.register
def close_workers() -> None:
    """Stop this process's workers (they would also stop at EOF when it exits)."""
    for key, worker in list(_WORKERS.items()):
        if worker.pid == os.getpid():
            worker.close()
        del _WORKERS[key]


class RegistryStep:
    """A compile step run by a package from the index, in its own virtualenv.

    Implements ``CompileStep``: ``name`` is the dist, ``version`` the version
    installed (plus ``+<digest>`` for a call or options of its own).
    """

    def __init__(self, spec: StepSpec, venv: StepVenv) -> None:
        self.spec = spec
        self.venv = venv
        self.name, self.version = spec.identity(venv.installed)
        options = msgspec.json.encode(spec.options, order="sorted").decode()
        self._key = (str(venv.python_path), spec.call, options)

    def transform(self, path: str, source: bytes) -> bytes:
        text = _worker_for(self._key, self.spec.requirement).transform(path, decode_source(source))
        return encode_output(text)

    def __repr__(self) -> str:
        return f"RegistryStep({self.name} {self.version}, {self.spec.call})"


def load_registry_step(
    spec: StepSpec, *, on_install: Callable[[str], None] | None = None
) -> RegistryStep:
    """The step ``spec`` describes, its virtualenv installed and its call checked.

    Cheap once installed (a marker and a remembered call check are read; no
    process starts). Raises the ``StepError`` subclasses of
    vega_dag.compile.steps.errors.
    """
    venv = ensure_venv(spec.dist, spec.version, on_install=on_install)
    check_call(venv, spec.call, spec.requirement)
    return RegistryStep(spec, venv)
