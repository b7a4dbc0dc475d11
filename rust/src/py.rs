//! The Python boundary: thin wrappers that convert arguments, release the
//! GIL around real work, and turn `CoreError` into the exception classes
//! defined once, in Python, in `vega_dag.errors`.

use std::collections::HashMap;
use std::path::PathBuf;

use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use crate::error::CoreError;
use crate::{archive, digest, hash, imports, pyc, scan, statcache, tree};

/// An instance of the named class of `vega_dag.errors`, built from `args`.
fn vega_error<'py>(py: Python<'py>, class: &str, args: impl pyo3::call::PyCallArgs<'py>) -> PyErr {
    let built = py
        .import("vega_dag.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|cls| cls.call1(args));
    match built {
        Ok(instance) => PyErr::from_value(instance),
        Err(e) => e,
    }
}

fn os_error(path: &std::path::Path, source: &std::io::Error) -> PyErr {
    use std::io::ErrorKind::*;
    let filename = path.display().to_string();
    let message = source.to_string();
    match source.kind() {
        NotFound => {
            PyFileNotFoundError::new_err((source.raw_os_error().unwrap_or(2), message, filename))
        }
        PermissionDenied => {
            PyPermissionError::new_err((source.raw_os_error().unwrap_or(13), message, filename))
        }
        IsADirectory => {
            PyIsADirectoryError::new_err((source.raw_os_error().unwrap_or(21), message, filename))
        }
        _ => PyOSError::new_err((source.raw_os_error().unwrap_or(5), message, filename)),
    }
}

pub(crate) fn to_py(py: Python<'_>, err: CoreError) -> PyErr {
    match err {
        CoreError::Io { path, source } => os_error(&path, &source),
        CoreError::ArchiveEntry { entry, reason } => {
            vega_error(py, "ArchiveEntryError", (entry, reason))
        }
        CoreError::ArchiveFormat { path, reason } => {
            vega_error(py, "ArchiveFormatError", (path, reason))
        }
        CoreError::DigestMismatch {
            path,
            expected,
            actual,
        } => vega_error(py, "DigestMismatchError", (path, expected, actual)),
        CoreError::Scan { path, reason } => vega_error(py, "ScanError", (path, reason)),
        CoreError::BadDigest { text, reason } => {
            vega_error(py, "DigestFormatError", (text, reason))
        }
        CoreError::Pyc(e) => vega_error(py, "BytecodeFormatError", (e.to_string(),)),
        CoreError::Source { path, line, reason } => {
            vega_error(py, "SourceError", (path, line, reason))
        }
    }
}

// ---- hashing ---------------------------------------------------------------

/// Below this many bytes, releasing and re-taking the GIL costs more than the
/// hash (the same threshold CPython's hashlib uses, 2 KiB).
const GIL_RELEASE_THRESHOLD: usize = 2048;

#[pyfunction]
fn hash_bytes(py: Python<'_>, data: &[u8]) -> String {
    if data.len() < GIL_RELEASE_THRESHOLD {
        return digest::format(&hash::hash_bytes(data));
    }
    py.detach(|| digest::format(&hash::hash_bytes(data)))
}

#[pyfunction]
fn hash_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| hash::hash_file(&path))
        .map(|h| digest::format(&h))
        .map_err(|e| to_py(py, e))
}

#[pyfunction]
fn hash_files(py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<Vec<String>> {
    let results = py.detach(|| hash::hash_files(&paths));
    results
        .into_iter()
        .map(|r| r.map(|h| digest::format(&h)).map_err(|e| to_py(py, e)))
        .collect()
}

#[pyfunction]
fn verify_file(py: Python<'_>, path: PathBuf, expected: &str) -> PyResult<()> {
    let want = digest::parse(expected).map_err(|e| to_py(py, e))?;
    let got = py
        .detach(|| hash::hash_file(&path))
        .map_err(|e| to_py(py, e))?;
    if got != want {
        return Err(to_py(
            py,
            CoreError::DigestMismatch {
                path: path.display().to_string(),
                expected: expected.to_owned(),
                actual: digest::format(&got),
            },
        ));
    }
    Ok(())
}

#[pyfunction]
fn check_digest(py: Python<'_>, text: &str) -> PyResult<()> {
    digest::parse(text).map(|_| ()).map_err(|e| to_py(py, e))
}

// ---- scan and stat cache ---------------------------------------------------

type StatTuple = (String, u64, i64, u32, u64, i64);
type CacheTuple = (u64, i64, u64, i64, String);

fn scan_options(
    include_hidden: bool,
    skip_dirs: Option<Vec<String>>,
    ignore_files: Option<Vec<String>>,
) -> scan::ScanOptions {
    let mut o = scan::ScanOptions {
        include_hidden,
        ..Default::default()
    };
    if let Some(d) = skip_dirs {
        o.always_skip = d;
    }
    if let Some(f) = ignore_files {
        o.ignore_files = f;
    }
    o
}

fn stat_tuple(f: &scan::FileStat) -> StatTuple {
    (
        f.path.clone(),
        f.size,
        f.mtime_ns,
        f.mode,
        f.inode,
        f.ctime_ns,
    )
}

fn skipped_tuple(s: &scan::Skipped) -> (String, Option<String>, &'static str) {
    (s.path.clone(), s.target.clone(), s.reason.as_str())
}

/// The result of a scan: the files and what was not taken (see `_core.pyi`).
#[pyclass(get_all, frozen, module = "vega_dag._core")]
struct ScanResult {
    files: Vec<StatTuple>,
    skipped: Vec<(String, Option<String>, &'static str)>,
}

#[pyfunction]
#[pyo3(signature = (root, *, include_hidden=false, skip_dirs=None, ignore_files=None))]
fn scan_tree(
    py: Python<'_>,
    root: PathBuf,
    include_hidden: bool,
    skip_dirs: Option<Vec<String>>,
    ignore_files: Option<Vec<String>>,
) -> PyResult<ScanResult> {
    let options = scan_options(include_hidden, skip_dirs, ignore_files);
    let found = py
        .detach(|| scan::scan(&root, &options))
        .map_err(|e| to_py(py, e))?;
    Ok(ScanResult {
        files: found.files.iter().map(stat_tuple).collect(),
        skipped: found.skipped.iter().map(skipped_tuple).collect(),
    })
}

/// The stat cache, kept on the Rust side (see `_core.pyi`): a resident build
/// process refreshes it without converting 20,000 entries to Python and back.
#[pyclass(frozen, module = "vega_dag._core")]
struct StatTable {
    taken_ns: i64,
    entries: std::sync::Arc<HashMap<String, statcache::CacheEntry>>,
}

#[pymethods]
impl StatTable {
    #[new]
    #[pyo3(signature = (entries=None, taken_ns=0))]
    fn new(entries: Option<HashMap<String, CacheTuple>>, taken_ns: i64) -> Self {
        let entries = entries
            .unwrap_or_default()
            .into_iter()
            .map(|(k, (size, mtime_ns, inode, ctime_ns, digest))| {
                (
                    k,
                    statcache::CacheEntry {
                        size,
                        mtime_ns,
                        inode,
                        ctime_ns,
                        digest,
                    },
                )
            })
            .collect();
        StatTable {
            taken_ns,
            entries: std::sync::Arc::new(entries),
        }
    }

    #[staticmethod]
    fn decode(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let (taken_ns, entries) = py
            .detach(|| statcache::decode(data))
            .map_err(|why| PyValueError::new_err(format!("unreadable stat cache: {why}")))?;
        Ok(StatTable {
            taken_ns,
            entries: std::sync::Arc::new(entries),
        })
    }

    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = py.detach(|| statcache::encode(self.taken_ns, &self.entries));
        PyBytes::new(py, &bytes)
    }

    #[getter]
    fn taken_ns(&self) -> i64 {
        self.taken_ns
    }

    fn __len__(&self) -> usize {
        self.entries.len()
    }

    fn __contains__(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// The content digest of `path`, or None if the table has no such file.
    fn digest(&self, path: &str) -> Option<String> {
        self.entries.get(path).map(|e| e.digest.clone())
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.taken_ns == other.taken_ns && self.entries == other.entries
    }

    /// path -> (size, mtime_ns, inode, ctime_ns, digest)
    fn entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (path, e) in self.entries.iter() {
            out.set_item(path, (e.size, e.mtime_ns, e.inode, e.ctime_ns, &e.digest))?;
        }
        Ok(out)
    }

    /// path -> content digest
    fn digests<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (path, e) in self.entries.iter() {
            out.set_item(path, &e.digest)?;
        }
        Ok(out)
    }
}

/// Scan plus stat-cache refresh, in one call (see `_core.pyi`).
#[pyclass(get_all, frozen, module = "vega_dag._core")]
struct Changes {
    /// The refreshed cache.
    table: Py<StatTable>,
    changed: Vec<String>,
    removed: Vec<String>,
    hashed: usize,
    skipped: Vec<(String, Option<String>, &'static str)>,
}

#[pymethods]
impl Changes {
    /// The refreshed cache as a dict (path -> (size, mtime_ns, inode, ctime_ns, digest)).
    #[getter]
    fn entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.table.get().entries(py)
    }
}

#[pyfunction]
#[pyo3(signature = (root, cache, taken_ns, *, include_hidden=false, skip_dirs=None, ignore_files=None))]
#[allow(clippy::too_many_arguments)]
fn detect_changes(
    py: Python<'_>,
    root: PathBuf,
    cache: &StatTable,
    taken_ns: i64,
    include_hidden: bool,
    skip_dirs: Option<Vec<String>>,
    ignore_files: Option<Vec<String>>,
) -> PyResult<Changes> {
    let options = scan_options(include_hidden, skip_dirs, ignore_files);
    let (found, refreshed, entries) = py
        .detach(|| {
            let found = scan::scan(&root, &options)?;
            let mut refreshed =
                statcache::refresh(&root, &found.files, &cache.entries, cache.taken_ns)?;
            let entries: HashMap<String, statcache::CacheEntry> =
                std::mem::take(&mut refreshed.entries).into_iter().collect();
            Ok::<_, CoreError>((found, refreshed, entries))
        })
        .map_err(|e| to_py(py, e))?;
    let table = StatTable {
        taken_ns,
        entries: std::sync::Arc::new(entries),
    };
    Ok(Changes {
        table: Py::new(py, table)?,
        changed: refreshed.changed,
        removed: refreshed.removed,
        hashed: refreshed.hashed,
        skipped: found.skipped.iter().map(skipped_tuple).collect(),
    })
}

/// `detect_changes` for a caller that knows which files may have changed
/// (a file watcher): only `paths` are stat'ed (and hashed if their stat
/// changed); every other entry of `cache` is carried over. Nothing is
/// reported skipped: use it only for a tree whose last scan skipped nothing.
/// None when a path is no longer a regular file: then scan the tree.
#[pyfunction]
#[pyo3(signature = (root, cache, taken_ns, paths))]
fn refresh_paths(
    py: Python<'_>,
    root: PathBuf,
    cache: &StatTable,
    taken_ns: i64,
    paths: Vec<String>,
) -> PyResult<Option<Changes>> {
    let outcome = py
        .detach(|| {
            let Some(files) = scan::stat_paths(&root, &paths) else {
                return Ok(None);
            };
            // Not `refresh`: its removed files (every cached path but these)
            // would be 20,000 sorted copies, dropped here.
            let mut refreshed =
                statcache::refresh_files(&root, &files, &cache.entries, cache.taken_ns)?;
            // No path had an event (a daemon's no-op build): the table is the
            // cache's, shared, not a copy of its 20,000 entries.
            let entries = if refreshed.entries.is_empty() {
                std::sync::Arc::clone(&cache.entries)
            } else {
                let mut entries = (*cache.entries).clone();
                entries.extend(std::mem::take(&mut refreshed.entries));
                std::sync::Arc::new(entries)
            };
            Ok::<_, CoreError>(Some((refreshed, entries)))
        })
        .map_err(|e| to_py(py, e))?;
    let Some((refreshed, entries)) = outcome else {
        return Ok(None);
    };
    let table = StatTable { taken_ns, entries };
    Ok(Some(Changes {
        table: Py::new(py, table)?,
        changed: refreshed.changed,
        // A removal is not a known path's change: the watcher scans instead.
        removed: Vec::new(),
        hashed: refreshed.hashed,
        skipped: Vec::new(),
    }))
}

// ---- archives --------------------------------------------------------------

fn source_date_epoch(py: Python<'_>, epoch: Option<i64>) -> PyResult<i64> {
    if let Some(e) = epoch {
        return Ok(e);
    }
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.trim().is_empty() => text.trim().parse::<i64>().map_err(|_| {
            let _ = py;
            PyValueError::new_err(format!(
                "SOURCE_DATE_EPOCH={text:?} is not a whole number of seconds"
            ))
        }),
        _ => Ok(archive::DEFAULT_EPOCH),
    }
}

/// Entries as (name, content): a `bytes` content is taken as is, anything
/// else as a path whose file is read.
fn collect_entries(py: Python<'_>, entries: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for item in entries.try_iter()? {
        let item = item?;
        let pair = item.cast::<PyTuple>().map_err(|_| {
            PyValueError::new_err("archive entries are (name, bytes or path) pairs")
        })?;
        if pair.len() != 2 {
            return Err(PyValueError::new_err(
                "archive entries are (name, bytes or path) pairs",
            ));
        }
        let name_obj = pair.get_item(0)?;
        let name = if let Ok(s) = name_obj.cast::<PyString>() {
            s.to_str().map(str::to_owned).map_err(|_| {
                to_py(
                    py,
                    CoreError::ArchiveEntry {
                        entry: s.to_string_lossy().into_owned(),
                        reason: "name is not valid UTF-8".into(),
                    },
                )
            })?
        } else if let Ok(b) = name_obj.cast::<PyBytes>() {
            std::str::from_utf8(b.as_bytes())
                .map(str::to_owned)
                .map_err(|_| {
                    to_py(
                        py,
                        CoreError::ArchiveEntry {
                            entry: String::from_utf8_lossy(b.as_bytes()).into_owned(),
                            reason: "name is not valid UTF-8".into(),
                        },
                    )
                })?
        } else {
            return Err(PyValueError::new_err(format!(
                "archive entry name must be str, not {}",
                name_obj.get_type().name()?
            )));
        };
        let content = pair.get_item(1)?;
        let data = if let Ok(b) = content.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else {
            let path: PathBuf = content.extract()?;
            std::fs::read(&path).map_err(|e| os_error(&path, &e))?
        };
        out.push((name, data));
    }
    Ok(out)
}

fn packing(compress: bool) -> archive::Packing {
    if compress {
        archive::Packing::Deflate
    } else {
        archive::Packing::Store
    }
}

#[pyfunction]
#[pyo3(signature = (entries, *, epoch=None, compress=true))]
fn build_archive<'py>(
    py: Python<'py>,
    entries: &Bound<'py, PyAny>,
    epoch: Option<i64>,
    compress: bool,
) -> PyResult<(Bound<'py, PyBytes>, String)> {
    let epoch = source_date_epoch(py, epoch)?;
    let items = collect_entries(py, entries)?;
    let (bytes, dig) = py
        .detach(|| {
            archive::write(items, epoch, packing(compress)).map(|b| {
                let d = digest::format(&hash::hash_bytes(&b));
                (b, d)
            })
        })
        .map_err(|e| to_py(py, e))?;
    Ok((PyBytes::new(py, &bytes), dig))
}

/// For each tree (a bundle's (entry name, content digest) pairs), its
/// (digest, record): see `tree.rs`. In parallel, without the GIL: a change to
/// a hub module makes thousands of them at once.
#[pyfunction]
#[pyo3(signature = (trees, *, epoch))]
fn tree_records<'py>(
    py: Python<'py>,
    trees: Vec<Vec<(String, String)>>,
    epoch: i64,
) -> PyResult<Vec<(String, Bound<'py, PyBytes>)>> {
    use rayon::prelude::*;
    let records = py
        .detach(|| {
            trees
                .into_par_iter()
                .map(|entries| {
                    let raw = entries
                        .into_iter()
                        .map(|(name, text)| digest::parse(&text).map(|d| (name, *d.as_bytes())))
                        .collect::<Result<Vec<_>, CoreError>>()?;
                    let record = tree::encode(epoch, raw)?;
                    Ok((digest::format(&hash::hash_bytes(&record)), record))
                })
                .collect::<Result<Vec<(String, Vec<u8>)>, CoreError>>()
        })
        .map_err(|e| to_py(py, e))?;
    Ok(records
        .into_iter()
        .map(|(d, record)| (d, PyBytes::new(py, &record)))
        .collect())
}

/// (entry name, content digest) pairs, as Python passes them.
type NamedDigests = Vec<(String, String)>;
type DigestAndRecord<'py> = (String, Bound<'py, PyBytes>);

/// For each (record, changes) pair, the (digest, record) of that tree with
/// the digests of the entries `changes` names replaced, or None when one is
/// not in the tree. In parallel, without the GIL.
#[pyfunction]
fn tree_patches<'py>(
    py: Python<'py>,
    patches: Vec<(Bound<'py, PyBytes>, NamedDigests)>,
) -> PyResult<Vec<Option<DigestAndRecord<'py>>>> {
    use rayon::prelude::*;
    let mut borrowed: Vec<(&[u8], Vec<tree::Entry>)> = Vec::with_capacity(patches.len());
    for (record, changes) in &patches {
        let raw = changes
            .iter()
            .map(|(name, text)| digest::parse(text).map(|d| (name.clone(), *d.as_bytes())))
            .collect::<Result<Vec<_>, CoreError>>()
            .map_err(|e| to_py(py, e))?;
        borrowed.push((record.as_bytes(), raw));
    }
    let made = py
        .detach(|| {
            borrowed
                .into_par_iter()
                .map(|(record, changes)| {
                    Ok(tree::patch(record, &changes, "tree")?
                        .map(|r| (digest::format(&hash::hash_bytes(&r)), r)))
                })
                .collect::<Result<Vec<_>, CoreError>>()
        })
        .map_err(|e| to_py(py, e))?;
    Ok(made
        .into_iter()
        .map(|m| m.map(|(d, r)| (d, PyBytes::new(py, &r))))
        .collect())
}

/// A tree record read back: (epoch, [(entry name, content digest)]).
#[pyfunction]
#[pyo3(signature = (record, label = "tree"))]
fn read_tree(py: Python<'_>, record: &[u8], label: &str) -> PyResult<(i64, Vec<(String, String)>)> {
    let t = tree::decode(record, label).map_err(|e| to_py(py, e))?;
    let entries = t
        .entries
        .iter()
        .map(|(name, d)| (name.clone(), digest::format(&blake3::Hash::from_bytes(*d))))
        .collect();
    Ok((t.epoch, entries))
}

/// The stored (uncompressed) archive of a tree's entries, given their
/// contents: `build_archive(entries, epoch=epoch, compress=False)`'s bytes,
/// without hashing them (a tree's digest already names them).
#[pyfunction]
#[pyo3(signature = (entries, *, epoch))]
fn tree_archive<'py>(
    py: Python<'py>,
    entries: Vec<(String, Bound<'py, PyBytes>)>,
    epoch: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let borrowed: Vec<(String, &[u8])> = entries
        .iter()
        .map(|(name, data)| (name.clone(), data.as_bytes()))
        .collect();
    let bytes = py
        .detach(|| archive::write(borrowed, epoch, archive::Packing::Store))
        .map_err(|e| to_py(py, e))?;
    Ok(PyBytes::new(py, &bytes))
}

/// Write to a temporary file beside `dest`, fsync, then rename: a reader sees
/// the old archive or the new one, never half of one.
fn write_atomically(dest: &std::path::Path, bytes: &[u8]) -> Result<(), CoreError> {
    use std::io::Write;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(CoreError::io(dest, e));
    }
    Ok(())
}

#[pyfunction]
#[pyo3(signature = (path, entries, *, epoch=None, compress=true))]
fn write_archive(
    py: Python<'_>,
    path: PathBuf,
    entries: &Bound<'_, PyAny>,
    epoch: Option<i64>,
    compress: bool,
) -> PyResult<String> {
    let epoch = source_date_epoch(py, epoch)?;
    let items = collect_entries(py, entries)?;
    py.detach(|| {
        let bytes = archive::write(items, epoch, packing(compress))?;
        write_atomically(&path, &bytes)?;
        Ok(digest::format(&hash::hash_bytes(&bytes)))
    })
    .map_err(|e| to_py(py, e))
}

/// One entry of an archive (see `_core.pyi`).
#[pyclass(get_all, frozen, module = "vega_dag._core")]
struct ArchiveEntry {
    name: String,
    size: u32,
    compressed_size: u32,
    crc32: u32,
    method: u16,
    mode: u32,
    is_dir: bool,
}

#[pymethods]
impl ArchiveEntry {
    fn __repr__(&self) -> String {
        format!(
            "ArchiveEntry(name={:?}, size={}, mode=0o{:o})",
            self.name, self.size, self.mode
        )
    }
}

/// The archive's bytes and a label for errors, from a path or from bytes.
fn archive_source(source: &Bound<'_, PyAny>) -> PyResult<(Vec<u8>, String)> {
    if let Ok(b) = source.cast::<PyBytes>() {
        return Ok((b.as_bytes().to_vec(), "<bytes>".into()));
    }
    let path: PathBuf = source.extract()?;
    let data = std::fs::read(&path).map_err(|e| os_error(&path, &e))?;
    Ok((data, path.display().to_string()))
}

#[pyfunction]
fn list_archive(py: Python<'_>, source: &Bound<'_, PyAny>) -> PyResult<Vec<ArchiveEntry>> {
    let (data, label) = archive_source(source)?;
    let listed = archive::list(&data, &label).map_err(|e| to_py(py, e))?;
    Ok(listed
        .into_iter()
        .map(|e| ArchiveEntry {
            is_dir: e.is_dir(),
            name: e.name,
            size: e.size,
            compressed_size: e.compressed_size,
            crc32: e.crc32,
            method: e.method,
            mode: e.mode,
        })
        .collect())
}

#[pyfunction]
fn read_archive<'py>(py: Python<'py>, source: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let (data, label) = archive_source(source)?;
    let contents = py
        .detach(|| {
            let listed = archive::list(&data, &label)?;
            listed
                .iter()
                .filter(|info| !info.is_dir())
                .map(|info| {
                    archive::read_entry(&data, info, &label).map(|c| (info.name.clone(), c))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| to_py(py, e))?;
    let out = PyDict::new(py);
    for (name, content) in contents {
        out.set_item(name, PyBytes::new(py, &content))?;
    }
    Ok(out)
}

// ---- bytecode ---------------------------------------------------------------

#[pyfunction]
fn canonicalize_pyc<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let out = py
        .detach(|| pyc::canonicalize_pyc(data))
        .map_err(|e| to_py(py, e.into()))?;
    Ok(PyBytes::new(py, &out))
}

// ---- imports ---------------------------------------------------------------

type ImportTuple = (String, u32, Vec<String>, u32, bool, bool, bool);
/// (digest of the bytes scanned, imports, module-level names)
type ScannedFile = (String, Vec<ImportTuple>, Vec<String>);

fn import_tuples(scanned: imports::ScannedModule) -> (Vec<ImportTuple>, Vec<String>) {
    let list = scanned
        .imports
        .into_iter()
        .map(|i| {
            (
                i.module,
                i.level,
                i.names,
                i.line,
                i.type_checking,
                i.guarded,
                i.in_function,
            )
        })
        .collect();
    (list, scanned.top_level_names)
}

fn source_error(path: &str, err: imports::ScanError) -> CoreError {
    let line = match err {
        imports::ScanError::NotUtf8 { line } | imports::ScanError::Unterminated { line, .. } => {
            line
        }
    };
    CoreError::Source {
        path: path.to_owned(),
        line,
        reason: err.to_string(),
    }
}

/// Imports and module-level names of one source text (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (source, path="<source>"))]
fn scan_imports(
    py: Python<'_>,
    source: &[u8],
    path: &str,
) -> PyResult<(Vec<ImportTuple>, Vec<String>)> {
    let scanned = imports::scan_imports(source).map_err(|e| to_py(py, source_error(path, e)))?;
    Ok(import_tuples(scanned))
}

/// Read, hash and scan many files in parallel (see `_core.pyi`).
#[pyfunction]
fn scan_imports_files(
    py: Python<'_>,
    root: PathBuf,
    paths: Vec<String>,
) -> PyResult<Vec<ScannedFile>> {
    use rayon::prelude::*;
    let scan = |rel: &String| {
        let full = root.join(rel);
        let source = std::fs::read(&full).map_err(|e| CoreError::io(&full, e))?;
        let digest = digest::format(&hash::hash_bytes(&source));
        let scanned = imports::scan_imports(&source).map_err(|e| source_error(rel, e))?;
        let (list, names) = import_tuples(scanned);
        Ok((digest, list, names))
    };
    let results: Vec<Result<ScannedFile, CoreError>> = py.detach(|| {
        // A few files (an incremental build's edits) are cheaper here than
        // handed to the thread pool, whose threads may wait to be scheduled.
        if paths.len() < 16 {
            paths.iter().map(scan).collect()
        } else {
            paths.par_iter().map(scan).collect()
        }
    });
    results
        .into_iter()
        .map(|r| r.map_err(|e| to_py(py, e)))
        .collect()
}

// ---- configuration ----------------------------------------------------------

fn toml_to_py<'py>(py: Python<'py>, value: &toml::Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        toml::Value::String(s) => PyString::new(py, s).into_any(),
        toml::Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        toml::Value::Float(f) => f.into_pyobject(py)?.into_any(),
        toml::Value::Boolean(b) => pyo3::types::PyBool::new(py, *b).to_owned().into_any(),
        // Configuration has no dates; keep their text rather than guess a type.
        toml::Value::Datetime(d) => PyString::new(py, &d.to_string()).into_any(),
        toml::Value::Array(items) => {
            let list = pyo3::types::PyList::empty(py);
            for item in items {
                list.append(toml_to_py(py, item)?)?;
            }
            list.into_any()
        }
        toml::Value::Table(table) => {
            let dict = PyDict::new(py);
            for (k, v) in table {
                dict.set_item(k, toml_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Parse TOML text into dicts and lists (see `_core.pyi`). tomllib is pure
/// Python and costs ~0.1 s on a pyproject with a few thousand probe paths;
/// every build reads the configuration first.
#[pyfunction]
fn parse_toml<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| PyValueError::new_err(e.to_string()))?;
    toml_to_py(py, &toml::Value::Table(table))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DIGEST_PREFIX", digest::PREFIX)?;
    m.add("DEFAULT_ARCHIVE_EPOCH", archive::DEFAULT_EPOCH)?;
    m.add_function(wrap_pyfunction!(hash_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(hash_file, m)?)?;
    m.add_function(wrap_pyfunction!(hash_files, m)?)?;
    m.add_function(wrap_pyfunction!(verify_file, m)?)?;
    m.add_function(wrap_pyfunction!(check_digest, m)?)?;
    m.add_function(wrap_pyfunction!(scan_tree, m)?)?;
    m.add_function(wrap_pyfunction!(detect_changes, m)?)?;
    m.add_function(wrap_pyfunction!(refresh_paths, m)?)?;
    m.add_function(wrap_pyfunction!(build_archive, m)?)?;
    m.add_function(wrap_pyfunction!(tree_records, m)?)?;
    m.add_function(wrap_pyfunction!(tree_patches, m)?)?;
    m.add_function(wrap_pyfunction!(read_tree, m)?)?;
    m.add_function(wrap_pyfunction!(tree_archive, m)?)?;
    m.add_function(wrap_pyfunction!(write_archive, m)?)?;
    m.add_function(wrap_pyfunction!(list_archive, m)?)?;
    m.add_function(wrap_pyfunction!(read_archive, m)?)?;
    m.add_function(wrap_pyfunction!(canonicalize_pyc, m)?)?;
    m.add_function(wrap_pyfunction!(scan_imports, m)?)?;
    m.add_function(wrap_pyfunction!(parse_toml, m)?)?;
    m.add_function(wrap_pyfunction!(scan_imports_files, m)?)?;
    m.add_class::<ScanResult>()?;
    m.add_class::<Changes>()?;
    m.add_class::<StatTable>()?;
    m.add_class::<ArchiveEntry>()?;
    Ok(())
}
