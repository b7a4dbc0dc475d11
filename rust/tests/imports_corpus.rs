//! Checks the import scanner against Python's own parser over every .py file
//! under a directory tree, e.g. an interpreter's stdlib and site-packages:
//!
//! ```text
//! VEGA_DAG_IMPORTS_CORPUS=/root/.pyenv/versions/3.11.7/lib/python3.11 \
//! VEGA_DAG_PYTHON=/root/.pyenv/versions/3.11.7/bin/python3 \
//!     cargo test --release --test imports_corpus -- --ignored --nocapture
//! ```
//!
//! `VEGA_DAG_PYTHON` (default `python3`) should be the interpreter whose
//! grammar the corpus is written for. Files its `ast` rejects are skipped.
//! For the rest, every import (module, level, sorted names, line and the
//! three flags) and the module-level names must match an `ast`-based
//! extraction that spells out the scanner's documented semantics.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use _core::imports::scan_imports;

/// Reads paths on stdin; prints `F path`, then `S` if the file does not parse
/// or its `I` (import) and `N` (names) records.
const REFERENCE: &str = r##"
import ast, re, sys, warnings
warnings.filterwarnings("ignore")

def is_tc(t):
    if isinstance(t, ast.Name):
        return t.id == "TYPE_CHECKING"
    if isinstance(t, ast.Attribute):
        v = t.value
        while isinstance(v, ast.Attribute):
            v = v.value
        return t.attr == "TYPE_CHECKING" and isinstance(v, ast.Name)
    return False

def cond_tc(t):
    if isinstance(t, ast.BoolOp) and isinstance(t.op, ast.And):
        return any(is_tc(v) for v in t.values), False
    if isinstance(t, ast.UnaryOp) and isinstance(t.op, ast.Not) and is_tc(t.operand):
        return False, True
    return is_tc(t), False

def catches(h):
    return h.type is not None and any(
        isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
        or isinstance(n, ast.Attribute) and n.attr in ("ImportError", "ModuleNotFoundError")
        for n in ast.walk(h.type))

def suppresses(w):
    for it in w.items:
        ids = {getattr(n, "id", getattr(n, "attr", None)) for n in ast.walk(it.context_expr)}
        if "suppress" in ids and ids & {"ImportError", "ModuleNotFoundError"}:
            return True
    return False

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
        return lines[l1 - 1][c1:] + b"".join(lines[l1:l2 - 1]) + lines[l2 - 1][:c2]
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
        if isinstance(f, ast.Attribute) and f.attr == "import_module" and \
                isinstance(f.value, ast.Name) and f.value.id == "importlib":
            dunder = False
        elif isinstance(f, ast.Name) and f.id == "__import__":
            dunder = True
        elif isinstance(f, ast.Name) and any(
                pos < start(call) and name == f.id for pos, name in bound):
            dunder = False
        else:
            continue
        if not call.args or gap(end(f), start(call.args[0])) != b"(":
            continue
        arg = call.args[0]
        rest = sorted([*call.args[1:], *call.keywords], key=start)
        after = gap(end(arg), start(rest[0]) if rest else end(call))
        if (after[:1] != b",") if rest else (after not in (b",)", b")")):
            continue
        name = constant(arg)
        if name is None:
            continue
        if dunder:
            if any(isinstance(a, ast.Starred) for a in call.args) or \
                    any(k.arg in (None, "level") for k in call.keywords) or len(call.args) >= 5:
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
        out += [x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs,
                *(v for v in (a.vararg, a.kwarg) if v)) if x.annotation]
        return out + ([s.returns] if s.returns else [])
    if isinstance(s, ast.ClassDef):
        return [*s.decorator_list, *s.bases, *(k.value for k in s.keywords)]
    if isinstance(s, (ast.Try, getattr(ast, "TryStar", ast.Try))):
        return []
    if type(s).__name__ == "Match":
        return [s.subject]
    return [s]

def extract(tree, lines):
    imps, names = set(), set()
    dyn = dynamic_calls(tree, lines)
    def target(t):
        if isinstance(t, ast.Name):
            names.add(t.id)
        elif isinstance(t, ast.Starred):
            target(t.value)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                target(e)
    def dynamic(exprs, tc, g, fn):
        for e in exprs:
            for n in ast.walk(e):
                if id(n) in dyn:
                    line, m, lvl = dyn[id(n)]
                    imps.add((m, lvl, "", line, tc, g, fn))
    def visit(body, tc, g, fn, mod):
        bind = mod and not tc
        for s in body:
            if dyn:
                dynamic(header_exprs(s), tc, g, fn)
            if isinstance(s, ast.Import):
                for a in s.names:
                    imps.add((a.name, 0, "", s.lineno, tc, g, fn))
                    if bind:
                        names.add(a.asname or a.name.split(".")[0])
            elif isinstance(s, ast.ImportFrom):
                ns = ",".join(sorted(a.name for a in s.names))
                imps.add((s.module or "", s.level, ns, s.lineno, tc, g, fn))
                if bind:
                    names.update(a.asname or a.name for a in s.names if a.name != "*")
            elif isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if bind:
                    names.add(s.name)
                is_def = not isinstance(s, ast.ClassDef)
                visit(s.body, tc, g and not is_def, fn or is_def, False)
            elif isinstance(s, ast.If):
                body_tc, else_tc = cond_tc(s.test)
                visit(s.body, tc or body_tc, g, fn, mod)
                visit(s.orelse, tc or else_tc, g, fn, mod)
            elif isinstance(s, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                visit(s.body, tc, g or any(catches(h) for h in s.handlers), fn, mod)
                for h in s.handlers:
                    if dyn and h.type is not None:
                        dynamic([h.type], tc, g, fn)
                    visit(h.body, tc, g, fn, mod)
                visit(s.orelse, tc, g, fn, mod)
                visit(s.finalbody, tc, g, fn, mod)
            elif isinstance(s, (ast.With, ast.AsyncWith)):
                visit(s.body, tc, g or suppresses(s), fn, mod)
            elif isinstance(s, (ast.For, ast.AsyncFor, ast.While)):
                visit(s.body, tc, g, fn, mod)
                visit(s.orelse, tc, g, fn, mod)
            elif type(s).__name__ == "Match":
                for c in s.cases:
                    visit(c.body, tc, g, fn, mod)
            elif bind and isinstance(s, ast.Assign):
                for t in s.targets:
                    target(t)
            elif bind and isinstance(s, ast.AnnAssign) and s.value is not None:
                target(s.target)
            elif bind and type(s).__name__ == "TypeAlias":
                names.add(s.name.id)
    visit(tree.body, False, False, False, True)
    return imps, names

out = sys.stdout
for path in sys.stdin.read().splitlines():
    out.write("F\t%s\n" % path)
    try:
        with open(path, "rb") as f:
            source = f.read()
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        out.write("S\n")
        continue
    imps, names = extract(tree, source.splitlines(keepends=True))
    for m, lvl, ns, line, tc, g, fn in imps:
        out.write("I\t%s\t%d\t%s\t%d\t%d\t%d\t%d\n" % (m, lvl, ns, line, tc, g, fn))
    out.write("N\t%s\n" % ",".join(sorted(names)))
"##;

#[derive(Default)]
struct Expected {
    skipped: bool,
    imports: BTreeSet<String>,
    names: String,
}

fn py_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_symlink() {
            continue;
        }
        if path.is_dir() {
            py_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "py") {
            out.push(path);
        }
    }
}

fn reference(python: &str, files: &[PathBuf]) -> HashMap<String, Expected> {
    let mut child = Command::new(python)
        .args(["-c", REFERENCE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let list: String = files.iter().map(|p| format!("{}\n", p.display())).collect();
    let mut stdin = child.stdin.take().expect("child stdin");
    // Write from a thread: the child streams results while still reading.
    let writer = std::thread::spawn(move || stdin.write_all(list.as_bytes()));
    let output = child.wait_with_output().expect("reference extraction");
    writer
        .join()
        .expect("writer thread")
        .expect("write file list");
    assert!(output.status.success(), "{python} failed");

    let mut expected: HashMap<String, Expected> = HashMap::new();
    let mut current = String::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let (tag, rest) = line.split_once('\t').unwrap_or((line, ""));
        match tag {
            "F" => {
                current = rest.to_owned();
                expected.entry(current.clone()).or_default();
            }
            "S" => expected.entry(current.clone()).or_default().skipped = true,
            "I" => {
                expected
                    .entry(current.clone())
                    .or_default()
                    .imports
                    .insert(rest.to_owned());
            }
            "N" => expected.entry(current.clone()).or_default().names = rest.to_owned(),
            _ => panic!("unexpected reference output: {line}"),
        }
    }
    expected
}

#[test]
#[ignore = "needs VEGA_DAG_IMPORTS_CORPUS pointing at a directory of .py files, and Python"]
fn matches_python_ast_on_corpus() {
    let root =
        std::env::var_os("VEGA_DAG_IMPORTS_CORPUS").expect("VEGA_DAG_IMPORTS_CORPUS is not set");
    let python = std::env::var("VEGA_DAG_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut files = Vec::new();
    py_files(Path::new(&root), &mut files);
    files.sort();
    let expected = reference(&python, &files);

    let sources: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("read .py"))
        .collect();
    let bytes: usize = sources.iter().map(Vec::len).sum();
    let start = Instant::now();
    let results: Vec<_> = sources.iter().map(|s| scan_imports(s)).collect();
    let elapsed = start.elapsed().as_secs_f64();

    let (mut compared, mut skipped, mut errors_on_invalid) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for (path, result) in files.iter().zip(&results) {
        let key = path.display().to_string();
        let want = expected.get(&key).expect("reference output for every file");
        if want.skipped {
            skipped += 1;
            errors_on_invalid += usize::from(result.is_err());
            continue;
        }
        compared += 1;
        let module = match result {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{key}: {e}"));
                continue;
            }
        };
        let got: BTreeSet<String> = module
            .imports
            .iter()
            .map(|i| {
                let mut names = i.names.clone();
                names.sort();
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    i.module,
                    i.level,
                    names.join(","),
                    i.line,
                    u8::from(i.type_checking),
                    u8::from(i.guarded),
                    u8::from(i.in_function)
                )
            })
            .collect();
        for missing in want.imports.difference(&got) {
            failures.push(format!("{key}: missing {missing}"));
        }
        for extra in got.difference(&want.imports) {
            failures.push(format!("{key}: unexpected {extra}"));
        }
        if module.top_level_names.join(",") != want.names {
            failures.push(format!(
                "{key}: names {:?} != {:?}",
                module.top_level_names, want.names
            ));
        }
    }
    println!(
        "{} .py files ({:.1} MB): {compared} compared, {skipped} rejected by ast \
         ({errors_on_invalid} of those also rejected by the scanner), {} failures; \
         scanned in {elapsed:.3}s = {:.0} files/s, {:.1} MB/s",
        files.len(),
        bytes as f64 / 1e6,
        failures.len(),
        files.len() as f64 / elapsed,
        bytes as f64 / 1e6 / elapsed,
    );
    assert!(
        failures.is_empty(),
        "{}",
        failures[..failures.len().min(50)].join("\n")
    );
}
