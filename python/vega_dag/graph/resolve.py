"""Turning a module's import statements into edges between first-party modules.

``import a.b.c`` depends on ``a``, ``a.b`` and ``a.b.c`` (each package's
``__init__`` runs); ``from a.b import x`` depends on ``a.b`` and on ``a.b.x``
when that is a submodule. Every module depends on its own enclosing packages
too: Python imports ``a`` and ``a.b`` before ``a.b.c`` whoever imports it, so
an entry module nothing imports (``explorer/main.py`` of a one-app project)
still has ``explorer/__init__.py``, and the package's data, in its bundle.
Imports under ``if TYPE_CHECKING:`` are not runtime
edges; imports inside functions are. Stdlib and third-party imports are not
edges. An unresolvable first-party import is an error naming the importing
file and line, unless it sits in a ``try`` that catches ImportError.
"""

from __future__ import annotations

from typing import NamedTuple

from vega_dag.graph.modules import Module, module_parents


class ImportStmt(NamedTuple):
    """One import statement, as the Rust scanner reports it."""

    module: str
    level: int
    names: list[str]
    line: int
    type_checking: bool
    guarded: bool
    in_function: bool


class Unresolved(NamedTuple):
    path: str
    line: int
    target: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def package_names(modules: dict[str, Module]) -> set[str]:
    """Every dotted name that is a package, regular or namespace."""
    packages = set()
    for m in modules.values():
        packages.update(module_parents(m))  # not name.split("."): "api.docs.[...slug]"
    return packages | {m.name for m in modules.values() if m.is_package}


def resolve_imports(
    module: Module,
    imports: list[ImportStmt],
    modules: dict[str, Module],
    packages: set[str],
    first_party: set[str],
) -> tuple[list[str], list[Unresolved]]:
    """The sorted first-party modules ``module`` imports at run time, and errors."""
    targets: set[str] = set()
    errors: list[Unresolved] = []
    for imp in imports:
        if imp.type_checking:
            continue
        if imp.level == 0:
            base = imp.module
            if base.partition(".")[0] not in first_party:
                continue  # stdlib or third-party
        else:
            parts = module.package.split(".") if module.package else []
            up = imp.level - 1
            # Python refuses a relative import that climbs to or past the
            # top-level package ("beyond top-level package", or "no known
            # parent package" in a top-level module).
            if up >= len(parts):
                if not imp.guarded:
                    errors.append(
                        Unresolved(
                            module.path,
                            imp.line,
                            "." * imp.level + imp.module,
                            "relative import beyond the top-level package",
                        )
                    )
                continue
            base = ".".join([*parts[: len(parts) - up], *([imp.module] if imp.module else [])])
        if base and base not in modules and base not in packages:
            if not imp.guarded:
                shown = "." * imp.level + imp.module if imp.level else base
                errors.append(
                    Unresolved(
                        module.path,
                        imp.line,
                        base,
                        f"imports {shown!r}, which is not a module of this project",
                    )
                )
            continue
        prefix_parts = base.split(".") if base else []
        for i in range(1, len(prefix_parts) + 1):
            name = ".".join(prefix_parts[:i])
            if name in modules:
                targets.add(name)
        for name in imp.names:
            sub = f"{base}.{name}" if base else name
            if name != "*" and sub in modules:
                targets.add(sub)
    # Its packages' __init__ run first, however the module is reached.
    targets.update(name for name in module_parents(module) if name in modules)
    targets.discard(module.name)
    return sorted(targets), errors
