//! Change detection against a stat cache, as git's index does: a file whose
//! size, mtime, ctime and inode are unchanged is not read again.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;

use crate::error::Result;
use crate::scan::FileStat;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    pub ctime_ns: i64,
    pub digest: String,
}

/// A file modified this close to the moment the cache was taken may be
/// modified again within the same timestamp tick without its stat changing
/// ("racy git"), so its cached digest is not trusted.
pub const RACY_WINDOW_NS: i64 = 2_000_000_000;

#[derive(Debug, Default)]
pub struct Refresh {
    /// The new cache, one entry per scanned file, in scan order.
    pub entries: Vec<(String, CacheEntry)>,
    /// Files that are new or whose content digest differs from the cache.
    pub changed: Vec<String>,
    /// Cached files that are gone.
    pub removed: Vec<String>,
    /// How many files were read and hashed.
    pub hashed: usize,
}

fn trusted(stat: &FileStat, cached: &CacheEntry, cache_taken_ns: i64) -> bool {
    cached.size == stat.size
        && cached.mtime_ns == stat.mtime_ns
        && cached.ctime_ns == stat.ctime_ns
        && cached.inode == stat.inode
        && stat.mtime_ns.saturating_add(RACY_WINDOW_NS) <= cache_taken_ns
}

pub fn refresh(
    root: &Path,
    files: &[FileStat],
    cache: &HashMap<String, CacheEntry>,
    cache_taken_ns: i64,
) -> Result<Refresh> {
    let digests: Vec<Result<Option<String>>> = files
        .par_iter()
        .map(|f| match cache.get(&f.path) {
            Some(c) if trusted(f, c, cache_taken_ns) => Ok(None),
            _ => {
                crate::hash::hash_file(&root.join(&f.path)).map(|h| Some(crate::digest::format(&h)))
            }
        })
        .collect();
    let mut out = Refresh::default();
    for (f, digest) in files.iter().zip(digests) {
        let digest = match digest? {
            Some(d) => {
                out.hashed += 1;
                if cache.get(&f.path).is_none_or(|c| c.digest != d) {
                    out.changed.push(f.path.clone());
                }
                d
            }
            None => cache
                .get(&f.path)
                .map(|c| c.digest.clone())
                .unwrap_or_default(),
        };
        out.entries.push((
            f.path.clone(),
            CacheEntry {
                size: f.size,
                mtime_ns: f.mtime_ns,
                inode: f.inode,
                ctime_ns: f.ctime_ns,
                digest,
            },
        ));
    }
    let present: std::collections::HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    out.removed = cache
        .keys()
        .filter(|k| !present.contains(k.as_str()))
        .cloned()
        .collect();
    out.removed.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{scan, ScanOptions};

    fn to_map(r: &Refresh) -> HashMap<String, CacheEntry> {
        r.entries.iter().cloned().collect()
    }

    #[test]
    fn unchanged_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "a").unwrap();
        std::fs::write(dir.path().join("b.py"), "b").unwrap();
        let s = scan(dir.path(), &ScanOptions::default()).unwrap();
        let first = refresh(dir.path(), &s.files, &HashMap::new(), 0).unwrap();
        assert_eq!(first.hashed, 2);
        assert_eq!(first.changed, ["a.py", "b.py"]);
        // Taken long after the files' mtimes: nothing is racy.
        let later = i64::MAX / 2;
        let second = refresh(dir.path(), &s.files, &to_map(&first), later).unwrap();
        assert_eq!(second.hashed, 0);
        assert!(second.changed.is_empty());
        // A racy cache re-reads, but reports no change when content is equal.
        let racy = refresh(dir.path(), &s.files, &to_map(&first), 0).unwrap();
        assert_eq!(racy.hashed, 2);
        assert!(racy.changed.is_empty());
    }

    #[test]
    fn edits_and_removals_are_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "a").unwrap();
        std::fs::write(dir.path().join("b.py"), "b").unwrap();
        let s = scan(dir.path(), &ScanOptions::default()).unwrap();
        let first = refresh(dir.path(), &s.files, &HashMap::new(), 0).unwrap();
        std::fs::write(dir.path().join("a.py"), "changed").unwrap();
        std::fs::remove_file(dir.path().join("b.py")).unwrap();
        let s = scan(dir.path(), &ScanOptions::default()).unwrap();
        let second = refresh(dir.path(), &s.files, &to_map(&first), i64::MAX / 2).unwrap();
        assert_eq!(second.changed, ["a.py"]);
        assert_eq!(second.removed, ["b.py"]);
    }

    #[test]
    fn vanished_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gone.py"), "a").unwrap();
        let s = scan(dir.path(), &ScanOptions::default()).unwrap();
        std::fs::remove_file(dir.path().join("gone.py")).unwrap();
        let err = refresh(dir.path(), &s.files, &HashMap::new(), 0).unwrap_err();
        assert!(err.to_string().contains("gone.py"));
    }
}
