"""Constant dynamic imports found with ``ast``: the scanner's documented rule.

The same extraction as the corpus test's reference (rust/tests/imports_corpus.rs).
"""

# ruff: noqa
import ast
import re

# Dynamic imports with a constant name (see `Analyzer::dynamic_imports`):
# calls of importlib.import_module, of import_module bound earlier by
# `from importlib import import_module [as x]`, and of __import__, whose name
# is one string literal of name characters and dots.
LITERAL = re.compile(rb"[rRuU]?('''|\"\"\"|'|\")([A-Za-z0-9_.\x80-\xff]+)\1")
GAP_JUNK = re.compile(rb"#[^\r\n]*|\\\r?\n|[ \t\f\r\n]")


def dynamic_calls(tree, lines):
    """id(call) -> (lineno, module, level) of every dynamic import call."""
    bound = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module == "importlib" and n.level == 0:
            for a in n.names:
                if a.name == "import_module":
                    bound.append(((n.lineno, n.col_offset), a.asname or a.name))

    def text(a, b):
        (l1, c1), (l2, c2) = a, b
        if l1 == l2:
            return lines[l1 - 1][c1:c2]
        return lines[l1 - 1][c1:] + b"".join(lines[l1 : l2 - 1]) + lines[l2 - 1][:c2]

    def gap(a, b):
        return GAP_JUNK.sub(b"", text(a, b))

    def start(n):
        return (n.lineno, n.col_offset)

    def end(n):
        return (n.end_lineno, n.end_col_offset)

    def constant(n):
        if not (isinstance(n, ast.Constant) and isinstance(n.value, str)):
            return None
        if n.lineno != n.end_lineno:
            return None
        m = LITERAL.fullmatch(text(start(n), end(n)))
        return m.group(2).decode("utf-8", "replace") if m else None

    def dotted(name):
        return name if name == "" or all(name.split(".")) else None

    found = {}
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        f = call.func
        if (
            isinstance(f, ast.Attribute)
            and f.attr == "import_module"
            and isinstance(f.value, ast.Name)
            and f.value.id == "importlib"
        ):
            dunder = False
        elif isinstance(f, ast.Name) and f.id == "__import__":
            dunder = True
        elif isinstance(f, ast.Name) and any(
            pos < start(call) and name == f.id for pos, name in bound
        ):
            dunder = False
        else:
            continue
        if not call.args or gap(end(f), start(call.args[0])) != b"(":
            continue
        arg = call.args[0]
        rest = sorted([*call.args[1:], *call.keywords], key=start)
        after = gap(end(arg), start(rest[0]) if rest else end(call))
        if after not in ((b",",) if rest else (b",)", b")")):
            continue
        name = constant(arg)
        if name is None:
            continue
        if dunder:
            if (
                any(isinstance(a, ast.Starred) for a in call.args)
                or any(k.arg in (None, "level") for k in call.keywords)
                or len(call.args) >= 5
            ):
                continue
            if dotted(name):
                found[id(call)] = (call.lineno, name, 0)
            continue
        dots = len(name) - len(name.lstrip("."))
        rest_name = dotted(name[dots:])
        if rest_name is None:
            continue
        if dots == 0:
            if rest_name:
                found[id(call)] = (call.lineno, rest_name, 0)
            continue
        if len(call.args) + len(call.keywords) != 2:
            continue
        if call.keywords:
            k = call.keywords[0]
            if k.arg != "package" or gap(start(k), start(k.value)) != b"package=":
                continue
            package = k.value
        else:
            package = call.args[1]
        if gap(end(package), end(call)) not in (b")", b",)"):
            continue
        if isinstance(package, ast.Name) and package.id == "__package__":
            found[id(call)] = (call.lineno, rest_name, dots)
            continue
        base = constant(package)
        base = dotted(base) if base is not None else None
        if not base:
            continue
        parts = base.rsplit(".", dots - 1)
        if len(parts) < dots or not parts[0]:
            continue
        module = parts[0] + ("." + rest_name if rest_name else "")
        found[id(call)] = (call.lineno, module, 0)
    return found


def header_exprs(s):
    """The expressions a statement runs where it stands (a compound one's header)."""
    if isinstance(s, (ast.If, ast.While)):
        return [s.test]
    if isinstance(s, (ast.For, ast.AsyncFor)):
        return [s.target, s.iter]
    if isinstance(s, (ast.With, ast.AsyncWith)):
        return [x for it in s.items for x in (it.context_expr, it.optional_vars) if x]
    if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
        a = s.args
        out = [*s.decorator_list, *a.defaults, *(d for d in a.kw_defaults if d)]
        out += [
            x.annotation
            for x in (
                *a.posonlyargs,
                *a.args,
                *a.kwonlyargs,
                *(v for v in (a.vararg, a.kwarg) if v),
            )
            if x.annotation
        ]
        return out + ([s.returns] if s.returns else [])
    if isinstance(s, ast.ClassDef):
        return [*s.decorator_list, *s.bases, *(k.value for k in s.keywords)]
    if isinstance(s, (ast.Try, getattr(ast, "TryStar", ast.Try))):
        return []
    if type(s).__name__ == "Match":
        return [s.subject]
    return [s]
