//! Runs the canonicalizer over every .pyc under a directory tree, e.g. an
//! interpreter's stdlib `__pycache__` directories:
//!
//! ```text
//! VEGA_DAG_PYC_CORPUS=/root/.pyenv/versions/3.11.7/lib/python3.11 \
//!     cargo test --test pyc_corpus -- --ignored --nocapture
//! ```
//!
//! It checks what can be checked without an interpreter: every supported file
//! parses, the header and length are kept, only FLAG_REF bits and reference
//! indices change, and a second pass changes nothing. Equality of the loaded
//! code objects needs Python and is checked outside the crate.

use std::path::{Path, PathBuf};

use _core::pyc::{canonicalize_pyc, PycError};

fn pyc_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            pyc_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "pyc") {
            out.push(path);
        }
    }
}

#[test]
#[ignore = "needs VEGA_DAG_PYC_CORPUS pointing at a directory of .pyc files"]
fn canonicalizes_pyc_corpus() {
    let root = std::env::var_os("VEGA_DAG_PYC_CORPUS").expect("VEGA_DAG_PYC_CORPUS is not set");
    let mut files = Vec::new();
    pyc_files(Path::new(&root), &mut files);
    files.sort();

    let (mut checked, mut changed, mut unsupported) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for path in &files {
        let data = std::fs::read(path).expect("read .pyc");
        let once = match canonicalize_pyc(&data) {
            Ok(out) => out,
            Err(PycError::UnsupportedMagic { .. }) => {
                unsupported += 1;
                continue;
            }
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        checked += 1;
        changed += usize::from(once != data);
        if once.len() != data.len() || once[..16] != data[..16] {
            failures.push(format!("{}: header or length changed", path.display()));
        }
        // A byte outside a reference index may only lose FLAG_REF or switch a
        // string between its interned and plain spelling ('t'/'u', 'A'/'a',
        // 'Z'/'z'); index bytes follow an 'r' type byte, at most 4 bytes back.
        let string_pair = |a: u8, b: u8| {
            let (a, b) = (a & 0x7f, b & 0x7f);
            matches!(
                (a, b),
                (b't', b'u')
                    | (b'u', b't')
                    | (b'A', b'a')
                    | (b'a', b'A')
                    | (b'Z', b'z')
                    | (b'z', b'Z')
            )
        };
        let stray = data.iter().zip(&once).enumerate().any(|(i, (&a, &b))| {
            a != b
                && b != a & 0x7f
                && !string_pair(a, b)
                && !(i.saturating_sub(4)..i).any(|j| once[j] == b'r')
        });
        if stray {
            failures.push(format!(
                "{}: changed more than flags and refs",
                path.display()
            ));
        }
        match canonicalize_pyc(&once) {
            Ok(twice) if twice == once => {}
            Ok(_) => failures.push(format!("{}: not idempotent", path.display())),
            Err(e) => failures.push(format!("{}: second pass: {e}", path.display())),
        }
    }
    println!(
        "{} .pyc files: {checked} canonicalized ({changed} changed), {unsupported} with unsupported magic, {} failures",
        files.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 0, "no supported .pyc files under {root:?}");
}
