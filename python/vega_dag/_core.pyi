"""Typed stub of ``vega_dag._core``, the Rust extension.

Digests are always text of the form ``blake3:<64 lower-case hex>``.
Paths may be ``str`` or ``os.PathLike``. I/O failures raise the built-in
``FileNotFoundError``/``PermissionError``/``IsADirectoryError``/``OSError``
with ``filename`` set; everything else raises a class of ``vega_dag.errors``.
Every call that reads files or compresses releases the GIL while it works.
"""

from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from typing import Literal, TypeAlias, final

_Path: TypeAlias = str | PathLike[str]

__version__: str
#: "blake3:", the prefix of every digest text.
DIGEST_PREFIX: str
#: 315532800, 1980-01-01T00:00:00Z: the time stamped on archive entries
#: when SOURCE_DATE_EPOCH is not set.
DEFAULT_ARCHIVE_EPOCH: int

#: (path, size, mtime_ns, mode, inode, ctime_ns); path is project-relative POSIX.
FileStat: TypeAlias = tuple[str, int, int, int, int, int]
#: (size, mtime_ns, inode, ctime_ns, digest): one stat-cache entry.
CacheEntry: TypeAlias = tuple[int, int, int, int, str]
SkipReason: TypeAlias = Literal[
    "symlink-outside-root", "broken-symlink", "symlink-to-directory", "non-utf8-name"
]
#: (path, symlink target or None, reason): something the scan did not take.
Skipped: TypeAlias = tuple[str, str | None, SkipReason]

def hash_bytes(data: bytes) -> str:
    """The digest of ``data``."""

def hash_file(path: _Path) -> str:
    """The digest of one file (memory-mapped when ≥ 1 MiB)."""

def hash_files(paths: Sequence[_Path]) -> list[str]:
    """Digests of many files, hashed in parallel, in the order given.

    Raises the first failure in input order (``FileNotFoundError`` for a
    missing file, ``IsADirectoryError`` for a directory).
    """

def verify_file(path: _Path, expected: str) -> None:
    """Raise ``DigestMismatchError`` unless the file hashes to ``expected``.

    Raises ``DigestFormatError`` if ``expected`` is not a digest text.
    """

def check_digest(text: str) -> None:
    """Raise ``DigestFormatError`` unless ``text`` is a canonical digest text."""

@final
class ScanResult:
    #: Regular files (and symlinks to files inside the root), sorted byte-wise.
    files: list[FileStat]
    #: Symlinks leaving the root, broken links, links to directories, and
    #: non-UTF-8 names: reported, never followed.
    skipped: list[Skipped]

def scan_tree(
    root: _Path,
    *,
    include_hidden: bool = False,
    skip_dirs: Sequence[str] | None = None,
    ignore_files: Sequence[str] | None = None,
) -> ScanResult:
    """Walk ``root`` honouring ``.gitignore``/``.ignore``/``.vegaignore`` files.

    ``skip_dirs`` (default ``.git``, ``.vega``, ``__pycache__``) are never
    entered; ``ignore_files`` (default ``.vegaignore``) are extra ignore-file
    names. Global git excludes are not read: inputs must not vary by machine.
    Raises ``FileNotFoundError`` for a missing root, ``ScanError`` if it is not
    a directory or a subdirectory cannot be read.
    """

@final
class StatTable:
    """The stat cache: path -> (size, mtime_ns, inode, ctime_ns, digest), taken at ``taken_ns``.

    Kept on the Rust side; ``encode``/``decode`` are its file format (``VGST``,
    a format number, the time taken, the entries sorted by path).
    """

    def __new__(
        cls, entries: Mapping[str, CacheEntry] | None = None, taken_ns: int = 0
    ) -> StatTable: ...
    @staticmethod
    def decode(data: bytes) -> StatTable:
        """Raises ``ValueError`` for bytes that are not exactly a stat cache of this format."""
    def encode(self) -> bytes: ...
    @property
    def taken_ns(self) -> int: ...
    def __len__(self) -> int: ...
    def entries(self) -> dict[str, CacheEntry]: ...
    def digests(self) -> dict[str, str]:
        """path -> content digest"""
    def digest(self, path: str) -> str | None:
        """The content digest of ``path``, or None if the table has no such file."""
    def __contains__(self, path: str, /) -> bool: ...

@final
class Changes:
    #: The refreshed stat cache, taken at the ``taken_ns`` given to ``detect_changes``.
    table: StatTable
    #: ``table.entries()``
    entries: dict[str, CacheEntry]
    #: New files and files whose digest differs from the cache, sorted.
    changed: list[str]
    #: Cached paths no longer present, sorted.
    removed: list[str]
    #: How many files were read and hashed (0 on a no-op).
    hashed: int
    skipped: list[Skipped]

def detect_changes(
    root: _Path,
    cache: StatTable,
    taken_ns: int,
    *,
    include_hidden: bool = False,
    skip_dirs: Sequence[str] | None = None,
    ignore_files: Sequence[str] | None = None,
) -> Changes:
    """Scan ``root`` and refresh ``cache``; the new table is stamped ``taken_ns``.

    A file whose size, mtime, ctime and inode match its entry is not read,
    unless it was modified within 2 s before the cache was taken (it could
    have changed again within one timestamp tick). A file that vanishes
    between scan and hash raises ``FileNotFoundError`` naming it.
    """

def refresh_paths(
    root: _Path, cache: StatTable, taken_ns: int, paths: Sequence[str]
) -> Changes | None:
    """``detect_changes`` for a caller that knows which files may have changed
    (the daemon's file watcher): only ``paths`` are stat'ed, and hashed when
    their stat changed; every other entry of ``cache`` is carried over. None
    when a path is no longer a regular file (then scan the tree). Reports no
    removals and nothing skipped: use it only for a tree whose last scan
    skipped nothing.
    """

def build_archive(
    entries: Iterable[tuple[str | bytes, bytes | _Path]],
    *,
    epoch: int | None = None,
    compress: bool = True,
) -> tuple[bytes, str]:
    """A deterministic zip of ``entries`` and its digest.

    Each entry is (name, content): ``bytes`` content is used as is, anything
    else is a path whose file is read. The bytes depend only on names and
    contents: entries sorted by name, every timestamp ``epoch`` (default
    ``SOURCE_DATE_EPOCH`` when set, else 1980-01-01), mode 0644, no extra
    fields, deflate level 6 (stored when that does not shrink the entry), or
    every entry stored when ``compress`` is false. Entries are compressed in
    parallel.
    Raises ``ArchiveEntryError`` naming the entry for an empty, absolute,
    ``..``/``.``-containing, backslashed, duplicate or non-UTF-8 name, and
    a name that is both a file and a parent directory of another entry.
    """

def tree_records(trees: list[list[tuple[str, str]]], *, epoch: int) -> list[tuple[str, bytes]]:
    """For each tree (a bundle's (entry name, content digest) pairs, any
    order), its ``(digest, record)``: the record is the tag ``vega-tree 1``,
    the epoch and the entries in name order (name, NUL, the digest's 32 raw
    bytes), and the digest is the record's BLAKE3 digest, which names the
    archive ``tree_archive`` makes of those entries. Computed in parallel.
    Raises ``ArchiveEntryError`` for a name ``build_archive`` would refuse,
    ``DigestFormatError`` for a malformed digest.
    """

def tree_patches(
    patches: list[tuple[bytes, list[tuple[str, str]]]],
) -> list[tuple[str, bytes] | None]:
    """For each ``(record, changes)``, the ``(digest, record)`` of that tree
    with the digest of each entry ``changes`` names replaced (as
    ``tree_records`` would make it), or None when a name is not in the tree.
    Raises ``ArchiveFormatError`` for a record ``tree_records`` did not make.
    """

def read_tree(record: bytes, label: str = "tree") -> tuple[int, list[tuple[str, str]]]:
    """A record ``tree_records`` made, read back as ``(epoch, entries)``;
    raises ``ArchiveFormatError`` (naming ``label``) for anything else."""

def tree_archive(entries: list[tuple[str, bytes]], *, epoch: int) -> bytes:
    """The bytes of ``build_archive(entries, epoch=epoch, compress=False)``,
    without their digest (a tree's digest already names them)."""

def write_archive(
    path: _Path,
    entries: Iterable[tuple[str | bytes, bytes | _Path]],
    *,
    epoch: int | None = None,
    compress: bool = True,
) -> str:
    """``build_archive`` written atomically (temp file, fsync, rename) to ``path``."""

@final
class ArchiveEntry:
    name: str
    size: int
    compressed_size: int
    crc32: int
    #: 0 stored, 8 deflated
    method: int
    #: Unix mode from the external attributes (0o100644 for files and 0o40755
    #: for directories in vega-dag archives).
    mode: int
    #: A directory entry (name ends with "/"). The writer adds one for every
    #: parent directory, since zipimport finds namespace packages through them.
    is_dir: bool

def list_archive(source: bytes | _Path) -> list[ArchiveEntry]:
    """The central directory of an archive (given as bytes or a path).

    Raises ``ArchiveFormatError`` naming the archive if it is not readable.
    """

def read_archive(source: bytes | _Path) -> dict[str, bytes]:
    """Every file entry's content (directories left out), each CRC-checked.

    Raises ``ArchiveFormatError`` naming the archive and entry on corruption.
    """

def canonicalize_pyc(data: bytes) -> bytes:
    """A .pyc whose marshal data no longer depends on reference counts.

    Unused FLAG_REF marks are cleared and back-references renumbered, so the
    bytes depend on the code object alone. Idempotent. Raises
    ``BytecodeFormatError`` for truncated or unknown data or an unsupported
    magic number.
    """

#: (module, level, names, line, type_checking, guarded, in_function): one
#: import statement. ``module`` is without leading dots, ``level`` counts them;
#: ``names`` are the names of ``from M import a, b`` (["*"] for a star, []
#: for ``import M``); ``type_checking`` is set under ``if TYPE_CHECKING:``,
#: ``guarded`` inside a ``try`` that catches ImportError, ``in_function``
#: inside a def.
ImportStmt: TypeAlias = tuple[str, int, list[str], int, bool, bool, bool]

def scan_imports(source: bytes, path: str = "<source>") -> tuple[list[ImportStmt], list[str]]:
    """The import statements and the sorted module-level names of ``source``.

    A tokenizer, not a parser: it never executes or fully parses the code.
    Raises ``SourceError`` (naming ``path`` and the line) for source that is
    not UTF-8 and has no PEP 263 coding declaration, or that ends inside a
    string or bracket.
    """

def scan_imports_files(
    root: _Path, paths: Sequence[str]
) -> list[tuple[str, list[ImportStmt], list[str]]]:
    """Read, hash and scan each ``root/path`` in parallel.

    Returns (digest of the bytes scanned, imports, names) per path, in order;
    the digest lets the caller detect a file that changed since it was
    hashed. Raises ``FileNotFoundError`` or ``SourceError`` for the first
    failing path in input order.
    """

def parse_toml(text: str) -> dict[str, object]:
    """Parse TOML text (the ``toml`` crate) into dicts, lists and scalars.

    Dates and times come back as their TOML text. Raises ``ValueError`` with
    the line and column of a syntax error.
    """
