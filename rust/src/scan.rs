//! Walk a project root honouring .gitignore-style rules, and report what
//! cannot be taken into a build (symlinks leaving the root, broken links,
//! names that are not UTF-8) instead of following or guessing.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use ignore::{WalkBuilder, WalkState};

use crate::error::{CoreError, Result};

/// One regular file under the root. `path` is project-relative, POSIX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    SymlinkOutsideRoot,
    BrokenSymlink,
    SymlinkToDirectory,
    NonUtf8Name,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::SymlinkOutsideRoot => "symlink-outside-root",
            SkipReason::BrokenSymlink => "broken-symlink",
            SkipReason::SymlinkToDirectory => "symlink-to-directory",
            SkipReason::NonUtf8Name => "non-utf8-name",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub target: Option<String>,
    pub reason: SkipReason,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub files: Vec<FileStat>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub include_hidden: bool,
    /// Directory names never entered, wherever they are (the store, VCS data).
    pub always_skip: Vec<String>,
    /// Extra ignore files honoured like .gitignore (e.g. `.vegaignore`).
    pub ignore_files: Vec<String>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            include_hidden: false,
            always_skip: vec![".git".into(), ".vega".into(), "__pycache__".into()],
            ignore_files: vec![".vegaignore".into()],
        }
    }
}

fn stat_of(path: String, meta: &std::fs::Metadata) -> FileStat {
    FileStat {
        path,
        size: meta.size(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        inode: meta.ino(),
        mode: meta.mode(),
    }
}

/// The project-relative POSIX form of `path`, or None when a component is
/// not valid UTF-8.
fn relative_name(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

enum Found {
    File(FileStat),
    Skip(Skipped),
}

fn classify(root: &Path, canon_root: &Path, path: &Path, is_link: bool) -> Option<Found> {
    let Some(name) = relative_name(root, path) else {
        return Some(Found::Skip(Skipped {
            path: path
                .strip_prefix(root)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned(),
            target: None,
            reason: SkipReason::NonUtf8Name,
        }));
    };
    if !is_link {
        let meta = std::fs::symlink_metadata(path).ok()?;
        return meta.is_file().then(|| Found::File(stat_of(name, &meta)));
    }
    let target = std::fs::read_link(path)
        .ok()
        .map(|t| t.to_string_lossy().into_owned());
    let skip = |reason| {
        Found::Skip(Skipped {
            path: name.clone(),
            target: target.clone(),
            reason,
        })
    };
    let Ok(resolved) = std::fs::canonicalize(path) else {
        return Some(skip(SkipReason::BrokenSymlink));
    };
    if !resolved.starts_with(canon_root) {
        return Some(skip(SkipReason::SymlinkOutsideRoot));
    }
    match std::fs::metadata(&resolved) {
        Ok(meta) if meta.is_file() => Some(Found::File(stat_of(name, &meta))),
        // Not descended: a link to a directory inside the root would make the
        // same files appear under two names, and can form cycles.
        Ok(meta) if meta.is_dir() => Some(skip(SkipReason::SymlinkToDirectory)),
        Ok(_) => None,
        Err(_) => Some(skip(SkipReason::BrokenSymlink)),
    }
}

/// The stat of each of `paths` (project-relative), or None if any is no
/// longer a regular file (gone, a directory, a symlink): the caller then
/// scans the whole tree.
pub fn stat_paths(root: &Path, paths: &[String]) -> Option<Vec<FileStat>> {
    let mut out = Vec::with_capacity(paths.len());
    for rel in paths {
        let meta = std::fs::symlink_metadata(root.join(rel)).ok()?;
        if !meta.is_file() {
            return None;
        }
        out.push(stat_of(rel.clone(), &meta));
    }
    out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Some(out)
}

pub fn scan(root: &Path, options: &ScanOptions) -> Result<Scan> {
    let meta = std::fs::metadata(root).map_err(|e| CoreError::io(root, e))?;
    if !meta.is_dir() {
        return Err(CoreError::Scan {
            path: root.display().to_string(),
            reason: "not a directory".into(),
        });
    }
    let canon_root: PathBuf = std::fs::canonicalize(root).map_err(|e| CoreError::io(root, e))?;
    let mut builder = WalkBuilder::new(root);
    builder
        .hidden(!options.include_hidden)
        .follow_links(false)
        .git_ignore(true)
        // Global excludes and .git/info/exclude differ between machines, and a
        // build's inputs must not.
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .ignore(true);
    for name in &options.ignore_files {
        builder.add_custom_ignore_filename(name);
    }
    let skip_dirs = options.always_skip.clone();
    builder.filter_entry(move |entry| {
        let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
        !(is_dir && entry.depth() > 0 && skip_dirs.iter().any(|d| entry.file_name() == d.as_str()))
    });

    let found: Mutex<Vec<Found>> = Mutex::new(Vec::new());
    let walk_error: Mutex<Option<CoreError>> = Mutex::new(None);
    builder.build_parallel().run(|| {
        let found = &found;
        let walk_error = &walk_error;
        let canon_root = &canon_root;
        Box::new(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(err) => {
                    // Unreadable ignore files and permission errors are not
                    // silently dropped: a build must not lose inputs unseen.
                    if let Ok(mut slot) = walk_error.lock() {
                        slot.get_or_insert(CoreError::Scan {
                            path: root.display().to_string(),
                            reason: err.to_string(),
                        });
                    }
                    return WalkState::Quit;
                }
            };
            let Some(ft) = entry.file_type() else {
                return WalkState::Continue;
            };
            if ft.is_dir() {
                return WalkState::Continue;
            }
            if let Some(item) = classify(root, canon_root, entry.path(), ft.is_symlink()) {
                if let Ok(mut v) = found.lock() {
                    v.push(item);
                }
            }
            WalkState::Continue
        })
    });
    if let Some(err) = walk_error.into_inner().ok().flatten() {
        return Err(err);
    }
    let mut out = Scan::default();
    for item in found.into_inner().unwrap_or_default() {
        match item {
            Found::File(f) => out.files.push(f),
            Found::Skip(s) => out.skipped.push(s),
        }
    }
    // Byte-wise order: the walk's own order depends on thread timing.
    out.files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    out.skipped.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_paths_is_none_unless_every_path_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "a").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let got = stat_paths(dir.path(), &["a.py".into()]).unwrap();
        assert_eq!((got[0].path.as_str(), got[0].size), ("a.py", 1));
        assert!(stat_paths(dir.path(), &["a.py".into(), "gone.py".into()]).is_none());
        assert!(stat_paths(dir.path(), &["d".into()]).is_none());
    }
    use std::fs;

    #[test]
    fn sorted_relative_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/c")).unwrap();
        fs::create_dir_all(root.join(".vega/objects")).unwrap();
        fs::write(root.join("b/c/z.py"), "z").unwrap();
        fs::write(root.join("a.py"), "a").unwrap();
        fs::write(root.join("B.py"), "B").unwrap();
        fs::write(root.join("skip.log"), "x").unwrap();
        fs::write(root.join(".gitignore"), "*.log\n").unwrap();
        fs::write(root.join(".vega/objects/x"), "x").unwrap();
        let scan = scan(root, &ScanOptions::default()).unwrap();
        let names: Vec<_> = scan.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["B.py", "a.py", "b/c/z.py"]);
        assert_eq!(scan.files[1].size, 1);
    }

    #[test]
    fn symlinks_are_reported_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.py"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("real.py"), "r").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.py"), root.join("out.py")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("outdir")).unwrap();
        std::os::unix::fs::symlink(root.join("real.py"), root.join("alias.py")).unwrap();
        std::os::unix::fs::symlink(root.join("nope.py"), root.join("dangling.py")).unwrap();
        let scan = scan(root, &ScanOptions::default()).unwrap();
        let names: Vec<_> = scan.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["alias.py", "real.py"]);
        let skipped: Vec<_> = scan
            .skipped
            .iter()
            .map(|s| (s.path.as_str(), s.reason))
            .collect();
        assert_eq!(
            skipped,
            [
                ("dangling.py", SkipReason::BrokenSymlink),
                ("out.py", SkipReason::SymlinkOutsideRoot),
                ("outdir", SkipReason::SymlinkOutsideRoot),
            ]
        );
    }

    #[test]
    fn missing_root_is_an_io_error() {
        assert!(matches!(
            scan(Path::new("/nonexistent/vega-root"), &ScanOptions::default()),
            Err(CoreError::Io { .. })
        ));
    }
}
