"""What a build remembers for the next one, in ``.vega/state/``.

``head.msgpack`` (small) is all a no-op build reads; ``build.msgpack`` holds
each module's digests and edges and each route's closure; ``parsed.msgpack``
is the parse cache, read only when the module set changed; ``tables.msgpack``
holds the tables derived from the file list (``graph.tables``). None of it is
trusted for correctness: a reused output must still be in the store. It
exists so that an unchanged project builds without parsing, resolving or
importing networkx, and so that ``--explain`` can say what changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from vega_dag.compile.toolchain import Toolchain
from vega_dag.daemon import warm
from vega_dag.store.objects import write_durably

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig

STATE_VERSION = 4


def state_paths(config: ProjectConfig, state_dir: Path | None = None) -> tuple[Path, Path, Path]:
    """The stat cache, state and head of the project's builds (or of ``state_dir``'s)."""
    state_dir = state_dir or config.store_dir / "state"
    return state_dir / "stat.cache", state_dir / "build.msgpack", state_dir / "head.msgpack"


#: (module, level, names, line, type_checking, guarded, in_function)
ImportTuple = tuple[str, int, list[str], int, bool, bool, bool]


class Parsed(msgspec.Struct, array_like=True, frozen=True, gc=False):
    imports: list[ImportTuple]
    names: list[str]


class ModuleRecord(msgspec.Struct, array_like=True, frozen=True, gc=False):
    path: str
    source: str
    pyc: str
    deps: list[str]


class RouteRecord(msgspec.Struct, array_like=True, frozen=True, gc=False):
    module: str
    entry: str
    bundle: str


class BuildHead(msgspec.Struct):
    """The small part of the state a no-op build reads (``head.msgpack``)."""

    version: int = STATE_VERSION
    toolchain: Toolchain | None = None
    config: str = ""
    manifest: str | None = None
    layer: str | None = None
    modules: int = 0
    #: route pattern → bundle digest
    routes: dict[str, str] = {}


class BuildState(msgspec.Struct):
    version: int = STATE_VERSION
    toolchain: Toolchain | None = None
    config: str = ""
    #: digest of the sorted module table: resolution must rerun when it changes
    module_set: str = ""
    edges: str = ""
    manifest: str | None = None
    layer: tuple[str, str] | None = None
    modules: dict[str, ModuleRecord] = {}
    routes: dict[str, RouteRecord] = {}
    closures: dict[str, list[str]] = {}
    #: digest of the modules ``include`` globs add to closures ("" for none)
    included: str = ""
    #: route pattern → its bundle's data members (entry name, digest), for routes with any
    route_files: dict[str, list[tuple[str, str]]] = {}


_decoder = msgspec.msgpack.Decoder(BuildState)
_head_decoder = msgspec.msgpack.Decoder(BuildHead)
_encoder = msgspec.msgpack.Encoder()


def load_head(path: Path) -> BuildHead:
    return warm.load(path, _read_head)


def _read_head(path: Path) -> BuildHead:
    try:
        head = _head_decoder.decode(path.read_bytes())
    except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
        return BuildHead()
    return head if head.version == STATE_VERSION else BuildHead()


def save_head(path: Path, head: BuildHead) -> None:
    write_durably(path, _encoder.encode(head), sync=False)
    warm.wrote(path, head)


def load_state(path: Path) -> BuildState:
    return warm.load(path, _read_state)


class ClosureTable(msgspec.Struct):
    """Each route's closure (``closures.msgpack``), for the edges it was computed from.

    Kept apart from ``build.msgpack`` because it is most of the state's size
    and changes only when an import edge does: a build that changed code but
    no import does not rewrite it.
    """

    version: int = STATE_VERSION
    edges: str = ""
    closures: dict[str, list[str]] = {}
    included: str = ""


_closures_decoder = msgspec.msgpack.Decoder(ClosureTable)


def _closures_path(state_path: Path) -> Path:
    return state_path.with_name("closures.msgpack")


def _read_state(path: Path) -> BuildState:
    try:
        state = _decoder.decode(path.read_bytes())
    except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
        return BuildState()
    if state.version != STATE_VERSION:
        return BuildState()
    try:
        table = _closures_decoder.decode(_closures_path(path).read_bytes())
    except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
        table = ClosureTable()
    if (
        table.version == STATE_VERSION
        and table.edges == state.edges
        and table.included == state.included
    ):
        state.closures = table.closures
    # Otherwise the closures are recomputed: they are checked against the
    # edges and routes before use.
    return state


def save_state(path: Path, state: BuildState, previous: BuildState | None = None) -> None:
    """Write ``state``; its closures only if they are not ``previous``'s (same object)."""
    if previous is None or state.closures is not previous.closures:
        table = ClosureTable(edges=state.edges, closures=state.closures, included=state.included)
        write_durably(_closures_path(path), _encoder.encode(table), sync=False)
    on_disk = msgspec.structs.replace(state, closures={})
    write_durably(path, _encoder.encode(on_disk), sync=False)
    warm.wrote(path, state)


#: Bumped when the import scanner reports more (2: constant dynamic imports):
#: what an older scanner parsed is parsed again.
SCANNER_VERSION = 2


class ParseCacheFile(msgspec.Struct, array_like=True):
    version: int
    parsed: dict[str, Parsed]


_parse_decoder = msgspec.msgpack.Decoder(ParseCacheFile)


def load_parse_cache(path: Path) -> dict[str, Parsed]:
    """Parsed imports by content digest (``parsed.msgpack``); empty if unreadable or old."""
    return warm.load(path, _read_parse_cache)


def _read_parse_cache(path: Path) -> dict[str, Parsed]:
    try:
        cache = _parse_decoder.decode(path.read_bytes())
    except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
        return {}
    return cache.parsed if cache.version == SCANNER_VERSION else {}


def save_parse_cache(path: Path, cache: dict[str, Parsed]) -> None:
    write_durably(path, _encoder.encode(ParseCacheFile(SCANNER_VERSION, cache)), sync=False)
    warm.wrote(path, cache)
