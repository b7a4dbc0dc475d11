"""Deterministic byte-compilation of one module.

The output is an unchecked hash-based .pyc (PEP 552): no timestamp. Its code
is named by the project-relative path, so no build directory leaks into it,
and its marshal data is made canonical by the Rust core, so neither reference
counts (CPython issues 78274 and 98819) nor the hash seed leak into it.

The 8 bytes PEP 552 reserves for the source hash hold the first 8 bytes of
the BLAKE3 digest of the canonical code instead: bundles ship no source, so
there is nothing to check against, and a source hash would make two sources
that compile to the same code (an edited comment) produce different bytes,
defeating early cutoff.
"""

from __future__ import annotations

import importlib.util
import marshal
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from vega_dag import _core
from vega_dag.errors import VegaError

#: PEP 552 flags: bit 0 = hash-based, bit 1 = check_source (off: unchecked).
_FLAGS_UNCHECKED_HASH = (0b01).to_bytes(4, "little")


class CompileStep(Protocol):
    """A source transform run before compile (see vega_dag.plugins.hookspecs)."""

    name: str
    version: str

    def transform(self, path: str, source: bytes) -> bytes: ...


class CompileError(VegaError):
    """A module does not compile; names the file and line."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class SourceChangedError(VegaError):
    """A file changed between the scan and its compile."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: changed during the build; run the build again")
        self.path = path


def compile_source(source: bytes, path: str, optimize: int = 0) -> bytes:
    """The canonical .pyc bytes of ``source``, whose code is named ``path``."""
    try:
        code = compile(source, path, "exec", dont_inherit=True, optimize=optimize)
    except SyntaxError as err:
        detail = err.msg
        if err.text:
            detail += f": {err.text.strip()}"
        raise CompileError(path, err.lineno, f"SyntaxError: {detail}") from None
    except ValueError as err:  # e.g. source with NUL bytes
        raise CompileError(path, None, str(err)) from None
    header = importlib.util.MAGIC_NUMBER + _FLAGS_UNCHECKED_HASH + bytes(8)
    canonical = _core.canonicalize_pyc(header + marshal.dumps(code))
    tag = bytes.fromhex(_core.hash_bytes(canonical[16:])[7:23])
    return canonical[:8] + tag + canonical[16:]


def compile_file(
    root: str, path: str, expected_digest: str, optimize: int, steps: Sequence[CompileStep] = ()
) -> tuple[str, bytes]:
    """Read, transform (``steps``, in order) and compile ``root/path``.

    Refuses a file whose digest is not the scanned one. Returns (path, pyc).
    Runs in worker processes, hence plain arguments.
    """
    try:
        source = Path(root, path).read_bytes()
    except FileNotFoundError:
        raise CompileError(path, None, "vanished during the build; run the build again") from None
    if _core.hash_bytes(source) != expected_digest:
        raise SourceChangedError(path)
    for step in steps:
        try:
            source = step.transform(path, source)
        except Exception as err:
            # vega-dag's own errors (a registry step's remote exception, its
            # worker dying) say what happened; others need their type.
            detail = str(err) if isinstance(err, VegaError) else f"{type(err).__name__}: {err}"
            raise CompileError(
                path, None, f"compile step {step.name} {step.version} failed: {detail}"
            ) from None
        if not isinstance(source, bytes):
            raise CompileError(
                path,
                None,
                f"compile step {step.name} {step.version} returned "
                f"{type(source).__name__}, not bytes",
            )
    return path, compile_source(source, path, optimize)
