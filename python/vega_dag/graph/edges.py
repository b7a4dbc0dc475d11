"""The edge step: each module's first-party imports (``resolve``), and their digest.

With the module set unchanged, only edited modules are resolved again; the
others keep the edges of the last build's record. The edges' digest says
whether the closures must be recomputed (``graph.closures``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from vega_dag import _core
from vega_dag.graph.resolve import ImportStmt, resolve_imports
from vega_dag.pipeline.result import BuildError

if TYPE_CHECKING:
    from vega_dag.daemon.warm import LastBuild
    from vega_dag.graph.tables import FileTables
    from vega_dag.pipeline.context import BuildContext
    from vega_dag.store.state import BuildState, Parsed


def resolve_edges(
    ctx: BuildContext,
    tables: FileTables,
    digests: dict[str, str],
    parsed: dict[str, Parsed],
    edited: set[str] | None,
    state: BuildState,
    last: LastBuild | None,
) -> tuple[dict[str, list[str]], str]:
    """module → the first-party modules it imports at run time; and the digest of those edges."""
    modules = tables.modules
    packages = first_party = None
    problems: list[str] = []
    if edited is not None:
        # The module set is the same: every record's edges stand but the
        # edited modules'.
        if last is not None:
            deps = dict(last.deps)
        else:
            deps = {name: old.deps for name, old in state.modules.items()}
        todo = sorted(edited)
    else:
        deps = {}
        todo = list(modules)
    for name in todo:
        m = modules[name]
        if packages is None:
            packages, base = tables.packages(), tables.top_level()
            # A top-level module deleted since the last build would
            # otherwise pass for a third-party import of the same name
            # (none was when the module set is the same).
            first_party = set(base)
            if edited is None:
                first_party |= _deleted_top_levels(state, base)
        imports = [ImportStmt(*t) for t in parsed[digests[m.path]].imports]
        targets, errors = resolve_imports(m, imports, modules, packages, first_party or set())
        deps[name] = targets
        problems.extend(str(e) for e in errors)
    if problems:
        raise BuildError(sorted(problems))
    if edited is not None and all(deps[n] == state.modules[n].deps for n in edited):
        edges_digest = state.edges  # no edge changed
    else:
        edges_digest = _core.hash_bytes(msgspec.json.encode(sorted(deps.items())))
    return deps, edges_digest


def _deleted_top_levels(state: BuildState, first_party: set[str]) -> set[str]:
    """Top-level names that were first-party last build and are importable from nowhere now."""
    import importlib.util

    gone = {name.partition(".")[0] for name in state.modules} - first_party
    return {name for name in gone if importlib.util.find_spec(name) is None}
