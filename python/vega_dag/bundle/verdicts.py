"""Which import checks a changed bundle can skip: its import runs exactly the code it ran.

An import is a deterministic run of code: the bundle's modules' bodies and
whatever they call while importing. When a route's import passed, the driver
also reports which of the bundle's code objects ran (``bundle/isolated.py``
traces each new frame; ``(file, qualified name, first line)``). A later
bundle of that route whose code objects that ran are all unchanged, whose
member names and data files are the same, imported with the same layer, env,
interpreter and time limit, runs the same steps and so passes the same way: a
step can only reach a code object through code that ran, which is unchanged.
So an edit inside a function the import never calls (a handler's body, the
usual edit) needs no import; an edit to a module's body, to a decorator, a
class body or anything called at import time does.

The digest compared is, per module, its code with every code object that did
not run replaced by a marker of its name and first line, and without line and
column positions (``marshal`` version 2, which has no reference flags that
vary between processes), over the
member names, the data members' digests and the context. What ran is kept
per route under ``state/import-check/`` (one small file a route, read only
for the routes a build checks).
"""

from __future__ import annotations

import marshal
from collections.abc import Callable
from pathlib import Path
from types import CodeType

import msgspec

from vega_dag import _core

#: (qualified name, first line) of a code object that ran.
Ran = tuple[str, int]


class RouteVerdict(msgspec.Struct, frozen=True):
    """A route's last passed import: what ran, and the digest it passed with."""

    context: str
    #: module path (as compiled: ``lib/db.py``) → its code objects that ran
    ran: dict[str, list[Ran]]
    #: module path → (pyc digest, digest of its code that ran): unchanged
    #: modules are not read again to compare
    codes: dict[str, tuple[str, str]]
    digest: str


_decoder = msgspec.msgpack.Decoder(RouteVerdict)
_encoder = msgspec.msgpack.Encoder()


def verdict_path(state_dir: Path, pattern: str) -> Path:
    name = _core.hash_bytes(pattern.encode()).removeprefix(_core.DIGEST_PREFIX)[:32]
    return state_dir / "import-check" / f"{name}.msgpack"


def load_verdict(path: Path) -> RouteVerdict | None:
    try:
        return _decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def save_verdict(path: Path, verdict: RouteVerdict) -> None:
    from vega_dag.store.objects import write_durably

    path.parent.mkdir(parents=True, exist_ok=True)
    write_durably(path, _encoder.encode(verdict), sync=False)


def _pruned(code: CodeType, ran: frozenset[Ran], out: list[bytes]) -> None:
    consts: list[object] = []
    for const in code.co_consts:
        if isinstance(const, CodeType):
            key = (const.co_qualname, const.co_firstlineno)
            if key in ran:
                _pruned(const, ran, out)
            consts.append(f"\0code {key[0]} {key[1]}")
        else:
            consts.append(const)
    # Positions left out: a function's last line's end column is in the
    # positions of the statement that defines it, and no import's outcome
    # depends on where its code sits (only tracebacks' text does).
    out.append(marshal.dumps(code.replace(co_consts=tuple(consts), co_linetable=b""), 2))


#: (pyc digest, what ran) → code_digest: a pure function of the two, so a
#: module changed once is unmarshalled once, not once for every route that
#: holds it and again in every later build until those routes' verdicts are
#: rewritten (a hub's change made that most of a daemon's incremental build).
_code_digests: dict[tuple[str, frozenset[Ran]], str] = {}
#: Entries kept at most (a few hundred bytes each); then the memo starts over.
CODE_DIGESTS_KEPT = 20_000


def code_digest_of(digest: str, ran: frozenset[Ran], fetch: Callable[[str], bytes]) -> str:
    """``code_digest`` of the pyc whose content digest is ``digest``, remembered."""
    key = (digest, ran)
    found = _code_digests.get(key)
    if found is None:
        found = code_digest(fetch(digest), ran)
        if len(_code_digests) >= CODE_DIGESTS_KEPT:
            _code_digests.clear()
        _code_digests[key] = found
    return found


def code_digest(pyc: bytes, ran: frozenset[Ran]) -> str:
    """The digest of the module's code objects in ``ran`` (the rest as markers)."""
    code = marshal.loads(pyc[16:])
    if not isinstance(code, CodeType):
        return _core.hash_bytes(pyc)
    if (code.co_qualname, code.co_firstlineno) not in ran:
        # Its body never ran: only that it is there counts (its name is in the names).
        return "not-run"
    out: list[bytes] = []
    _pruned(code, ran, out)
    return _core.hash_bytes(b"".join(out))


def bundle_digest(
    context: str,
    modules: list[tuple[str, str]],
    data: list[tuple[str, str]],
    ran: dict[str, list[Ran]],
    fetch: Callable[[str], bytes],
    known: dict[str, tuple[str, str]],
    codes: dict[str, tuple[str, str]],
) -> str:
    """What a route's import depends on: ``modules`` (path, pyc digest), its ``data`` members.

    ``known`` (path → (pyc digest, code digest), from the last verdict) spares
    reading the modules that did not change; ``codes`` is filled the same way.
    """
    parts: list[object] = [context, sorted(data)]
    for path, digest in sorted(modules):
        runs = sorted((str(q), int(n)) for q, n in ran.get(path, ()))
        last = known.get(path)
        if last is not None and last[0] == digest:
            code = last[1]
        else:
            code = code_digest_of(digest, frozenset(runs), fetch) if runs else "not-run"
        codes[path] = (digest, code)
        parts.append((path, code, runs))
    return _core.hash_bytes(msgspec.json.encode(parts))
