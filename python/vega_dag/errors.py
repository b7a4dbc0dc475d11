"""Every exception vega-dag raises on purpose, defined once.

The Rust core raises these classes too (it imports this module), so a caller
catches one hierarchy whichever side failed. Each carries the file, entry,
route or region involved as an attribute, and names it in its message.
I/O failures stay the built-in ``FileNotFoundError``/``PermissionError`` with
``filename`` set.
"""

from __future__ import annotations


class VegaError(Exception):
    """Base class of vega-dag's own errors."""


class DigestFormatError(VegaError, ValueError):
    """A digest text is not of the form ``blake3:<64 lower-case hex>``."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"invalid digest {text!r}: {reason}")
        self.text = text
        self.reason = reason


class DigestMismatchError(VegaError):
    """Content does not hash to the digest it was stored or expected under."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(f"{path}: digest mismatch: expected {expected}, got {actual}")
        self.path = path
        self.expected = expected
        self.actual = actual


class ArchiveEntryError(VegaError, ValueError):
    """An archive entry was refused (absolute, ``..``, duplicate, not UTF-8, …)."""

    def __init__(self, entry: str, reason: str) -> None:
        super().__init__(f"archive entry {entry!r}: {reason}")
        self.entry = entry
        self.reason = reason


class ArchiveFormatError(VegaError):
    """An archive is truncated, corrupt or not one vega-dag can read."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: not a readable archive: {reason}")
        self.path = path
        self.reason = reason


class ScanError(VegaError):
    """The project tree could not be walked."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class BytecodeFormatError(VegaError):
    """Compiled bytecode could not be parsed for canonicalisation."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot canonicalise bytecode: {reason}")
        self.reason = reason


class SourceError(VegaError):
    """A source file cannot be read as Python (encoding, unterminated string)."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason
