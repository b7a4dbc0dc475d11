"""The parse step: the imports and top-level names of the modules that must be resolved.

Scanning is the Rust tokenizer (``_core.scan_imports_files``); results are
kept by content digest in the parse cache (``parsed.msgpack``), which is read
only when the module set changed (every module is resolved again then).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vega_dag import _core
from vega_dag.errors import VegaError
from vega_dag.pipeline.result import BuildError
from vega_dag.store.state import Parsed, load_parse_cache

if TYPE_CHECKING:
    from vega_dag.graph.modules import Module
    from vega_dag.pipeline.context import BuildContext


def parse_modules(
    ctx: BuildContext,
    modules: dict[str, Module],
    digests: dict[str, str],
    edited: set[str] | None,
    same_set: bool,
) -> tuple[dict[str, Parsed], dict[str, Parsed] | None]:
    """Parsed imports of every module that must be (re)resolved, by content digest.

    With an unchanged module set only new or edited modules (``edited``) are
    resolved again, and they are scanned directly. When the module set
    changed, every module is resolved again: then the parse cache (by
    digest) is read, so only files not seen before are scanned. The second
    value is the parse cache to write back (None: it was not read).
    """
    wanted: dict[str, str] = {}
    for name in sorted(edited) if edited is not None else modules:
        path = modules[name].path
        wanted.setdefault(digests[path], path)
    parsed: dict[str, Parsed] = {}
    parse_cache: dict[str, Parsed] | None = None
    if not same_set:
        parse_cache = load_parse_cache(ctx.parse_cache_path)
        parsed = {d: parse_cache[d] for d in wanted if d in parse_cache}
    todo = {d: path for d, path in wanted.items() if d not in parsed}
    if todo:
        from vega_dag.compile.bytecode import SourceChangedError

        paths = sorted(todo.values())
        try:
            results = _core.scan_imports_files(ctx.root, paths)
        except VegaError as err:
            raise BuildError([str(err)]) from None
        except FileNotFoundError as err:
            raise BuildError(
                [
                    f"{Path(err.filename).relative_to(ctx.root)}: vanished during the build; "
                    "run the build again"
                ]
            ) from None
        problems = []
        for path, (digest, imports, names) in zip(paths, results, strict=True):
            if digest != digests[path]:
                problems.append(str(SourceChangedError(path)))
                continue
            parsed[digest] = Parsed(imports=imports, names=names)
        if problems:
            raise BuildError(problems)
    if parse_cache is not None:
        live = {digests[m.path] for m in modules.values()}
        parse_cache = {d: v for d, v in {**parse_cache, **parsed}.items() if d in live}
    return parsed, parse_cache
