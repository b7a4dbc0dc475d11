"""Readable differences between two outputs that should have been identical.

A .pyc is shown as a dump of its code objects (every field that reaches the
marshal data: names, constants, file name, line table, disassembly), so a
leaked path or timestamp shows up as a line. A bundle is compared entry by
entry (name, size, CRC, mode, timestamp, content), with each differing .pyc
entry dumped the same way. diffoscope's view is added when it is installed.
"""

from __future__ import annotations

import difflib
import dis
import importlib.util
import io
import marshal
import re
import shutil
import subprocess
import types
import zipfile
from pathlib import Path

from vega_dag import _core

_ADDRESS = re.compile(r" at 0x[0-9a-f]+")

#: Longest diff shown for one output, in lines.
MAX_LINES = 80


def code_dump(pyc: bytes) -> list[str]:
    """One line per fact of the .pyc: header fields, then every code object."""
    if len(pyc) < 16:
        return [f"truncated .pyc ({len(pyc)} bytes)"]
    lines = [
        f"magic {pyc[:4].hex()}  flags {int.from_bytes(pyc[4:8], 'little'):#x}  "
        f"hash {pyc[8:16].hex()}"
    ]
    if pyc[:4] != importlib.util.MAGIC_NUMBER:
        return [*lines, "(bytecode of another Python version: compared as bytes)"]
    try:
        code = marshal.loads(pyc[16:])
    except (ValueError, EOFError, TypeError) as err:
        return [*lines, f"unreadable marshal data: {err}"]
    _dump_code(code, lines)
    return lines


def _dump_code(code: types.CodeType, out: list[str]) -> None:
    out.append(f"code {code.co_qualname} (file {code.co_filename!r}, line {code.co_firstlineno})")
    out.append(
        f"  flags {code.co_flags:#x} args {code.co_argcount}/{code.co_posonlyargcount}/"
        f"{code.co_kwonlyargcount} stack {code.co_stacksize}"
    )
    out.append(f"  names {code.co_names!r}")
    out.append(f"  varnames {code.co_varnames!r}")
    if code.co_freevars or code.co_cellvars:
        out.append(f"  freevars {code.co_freevars!r} cellvars {code.co_cellvars!r}")
    consts = [
        f"<code {c.co_qualname}>" if isinstance(c, types.CodeType) else repr(c)
        for c in code.co_consts
    ]
    out.append(f"  consts ({', '.join(consts)})")
    out.append(f"  linetable {code.co_linetable.hex()}")
    if code.co_exceptiontable:
        out.append(f"  exceptiontable {code.co_exceptiontable.hex()}")
    buf = io.StringIO()
    dis.dis(code, file=buf, depth=0)
    # Nested code objects print with their memory address: not part of the .pyc.
    text = _ADDRESS.sub("", buf.getvalue())
    out.extend("  " + line for line in text.splitlines() if line.strip())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _dump_code(const, out)


def _first_difference(a: bytes, b: bytes) -> str:
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return (
        f"bytes differ first at offset {n} (sizes {len(a)} and {len(b)}): "
        f"{a[n : n + 16].hex()} vs {b[n : n + 16].hex()}"
    )


def _clip(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[:MAX_LINES], f"… {len(lines) - MAX_LINES} more lines"]


def pyc_diff(a: bytes, b: bytes, label_a: str, label_b: str) -> list[str]:
    """A unified diff of the code dumps of two .pyc files."""
    diff = list(
        difflib.unified_diff(code_dump(a), code_dump(b), label_a, label_b, n=3, lineterm="")
    )
    if not diff:
        # Same code, different bytes: marshal-level (references, interning).
        return [f"code objects are identical; {_first_difference(a, b)}"]
    return _clip(diff)


def _entries(data: bytes) -> dict[str, tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {
            info.filename: (info, b"" if info.is_dir() else zf.read(info)) for info in zf.infolist()
        }


def bundle_diff(
    a: bytes,
    b: bytes,
    label_a: str,
    label_b: str,
    members: dict[str, str],
    known: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[str], list[str]]:
    """An entry-by-entry comparison of two bundles, and the modules whose entries differ.

    ``members`` maps archive names to the source file each came from; the
    entries named in ``known`` (modules already reported) are not dumped again.
    """
    try:
        ea, eb = _entries(a), _entries(b)
    except (zipfile.BadZipFile, ValueError) as err:
        return [f"not comparable as archives: {err}; {_first_difference(a, b)}"], []
    lines: list[str] = []
    culprits: list[str] = []
    for name in sorted(set(ea) - set(eb)):
        lines.append(f"entry {name}: only in {label_a}")
    for name in sorted(set(eb) - set(ea)):
        lines.append(f"entry {name}: only in {label_b}")
    for name in sorted(set(ea) & set(eb)):
        (ia, da), (ib, db) = ea[name], eb[name]
        facts = []
        for field in ("date_time", "external_attr", "compress_type", "extra", "comment"):
            va, vb = getattr(ia, field), getattr(ib, field)
            if va != vb:
                facts.append(f"{field} {va!r} vs {vb!r}")
        if da != db:
            facts.append(
                f"content {_core.hash_bytes(da)[7:19]} ({len(da)} B) vs "
                f"{_core.hash_bytes(db)[7:19]} ({len(db)} B)"
            )
        if not facts:
            continue
        source = members.get(name)
        lines.append(
            f"entry {name}" + (f" (from {source})" if source else "") + ": " + "; ".join(facts)
        )
        if source:
            culprits.append(source)
        if name in known:
            lines.append("    (its compiled output drifts: see the module above)")
        elif da != db and name.endswith(".pyc"):
            lines.extend("    " + line for line in pyc_diff(da, db, label_a, label_b))
        elif da != db:
            lines.extend(
                "    " + line
                for line in difflib.unified_diff(
                    da.decode("utf-8", "replace").splitlines(),
                    db.decode("utf-8", "replace").splitlines(),
                    label_a,
                    label_b,
                    n=1,
                    lineterm="",
                )
            )
    if not lines:
        lines.append(f"every entry is identical; {_first_difference(a, b)} (archive headers)")
    return _clip(lines), culprits


def diffoscope(a: Path, b: Path, timeout: float = 120.0) -> list[str] | None:
    """diffoscope's text output for two files, or None when it is not installed."""
    exe = shutil.which("diffoscope")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "--text", "-", "--no-progress", str(a), str(b)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [f"diffoscope gave no answer within {timeout:.0f}s"]
    out = proc.stdout.splitlines() or proc.stderr.splitlines()
    return _clip(out)
