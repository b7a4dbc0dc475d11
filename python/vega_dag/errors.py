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


#: errno → (what happened, what to do), for the write failures that are the
#: machine's, not the project's.
_STORAGE_FAULTS = {
    "ENOSPC": (
        "no space left on the device",
        "free space on that filesystem (`vega-dag gc` removes objects no build or "
        "deployment needs), then run the command again",
    ),
    "EDQUOT": (
        "disk quota exceeded",
        "free space within your quota (`vega-dag gc` removes objects no build or "
        "deployment needs), or raise the quota, then run the command again",
    ),
    "EROFS": (
        "the filesystem is read-only",
        "make it writable, or point [tool.vega] store at a writable directory",
    ),
}


#: sqlite's result codes for "database or disk is full" and "attempt to write a readonly database".
_SQLITE_FULL = 13
_SQLITE_READONLY = 8


class StorageFullError(VegaError, OSError):
    """A write failed for the machine's reason: the disk is full, a quota is hit, or read-only.

    Raised from the store's write paths (``filename`` is the file being
    written) instead of a bare OSError. What was half-written is removed
    first, so the store stays valid: what it holds is what it held.
    """

    def __init__(self, path: str, err: OSError) -> None:
        import errno as errno_names

        name = errno_names.errorcode.get(err.errno or 0, str(err.errno))
        what, todo = _STORAGE_FAULTS.get(name, (err.strerror or str(err), "run it again"))
        super().__init__(err.errno, what, path)
        self.path = path
        self.message = (
            f"{path}: {what} ({name}); {todo}. Nothing half-written was kept: "
            "the store holds what it held before"
        )

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple:
        # Across a process pool too (OSError's own would call __init__ with its args).
        return StorageFullError, (self.path, OSError(self.errno, self.strerror))


def storage_error(err: BaseException, path: object = None) -> StorageFullError | None:
    """``err`` as a StorageFullError, if it is one of the machine's write failures."""
    import errno as errno_names

    if isinstance(err, StorageFullError):
        return err
    if type(err).__module__ == "sqlite3" and getattr(err, "sqlite_errorcode", None) in (
        _SQLITE_FULL,
        _SQLITE_READONLY,
    ):
        # The pointer store (``.vega/fleet/pointers.sqlite``): sqlite names no file.
        code = errno_names.ENOSPC if err.sqlite_errorcode == _SQLITE_FULL else errno_names.EROFS  # type: ignore[attr-defined]
        where = str(path or "the pointer store (.vega/fleet/pointers.sqlite)")
        return StorageFullError(where, OSError(code, str(err)))
    if not isinstance(err, OSError) or err.errno is None:
        return None
    if errno_names.errorcode.get(err.errno) not in _STORAGE_FAULTS:
        return None
    return StorageFullError(str(err.filename or path or "?"), err)
