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

/// Fewer files than this are stated and hashed on the calling thread.
const PARALLEL_MIN: usize = 64;

#[derive(Debug, Default)]
pub struct Refresh {
    /// The new cache, one entry per scanned file, in scan order.
    pub entries: Vec<(String, CacheEntry)>,
    /// Files that are new or whose content digest differs from the cache.
    pub changed: Vec<String>,
    /// Cached files that are gone (`refresh` only).
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

/// Each of `files` against the cache: its new entry, and whether it changed
/// (`removed` is left empty: see `refresh`).
pub fn refresh_files(
    root: &Path,
    files: &[FileStat],
    cache: &HashMap<String, CacheEntry>,
    cache_taken_ns: i64,
) -> Result<Refresh> {
    let digest_of = |f: &FileStat| match cache.get(&f.path) {
        Some(c) if trusted(f, c, cache_taken_ns) => Ok(None),
        _ => crate::hash::hash_file(&root.join(&f.path)).map(|h| Some(crate::digest::format(&h))),
    };
    // A daemon's refresh looks at the few files that had events: handing
    // them to the thread pool costs more than hashing them (on a loaded
    // machine the pool's threads wait to be scheduled: ~0.1 s for none).
    let digests: Vec<Result<Option<String>>> = if files.len() < PARALLEL_MIN {
        files.iter().map(digest_of).collect()
    } else {
        files.par_iter().map(digest_of).collect()
    };
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
    Ok(out)
}

/// `refresh_files`, and which cached files the scan no longer lists: for a
/// scan of the whole tree (a daemon's refresh of a few paths lists no others).
pub fn refresh(
    root: &Path,
    files: &[FileStat],
    cache: &HashMap<String, CacheEntry>,
    cache_taken_ns: i64,
) -> Result<Refresh> {
    let mut out = refresh_files(root, files, cache, cache_taken_ns)?;
    let present: std::collections::HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    out.removed = cache
        .keys()
        .filter(|k| !present.contains(k.as_str()))
        .cloned()
        .collect();
    out.removed.sort_unstable();
    Ok(out)
}

/// The cache's file format: `VGST`, a format number, when it was taken, then
/// every entry (sorted by path). Written and read only here; anything that
/// does not parse exactly is refused (the caller starts from an empty cache).
const MAGIC: &[u8; 4] = b"VGST";
const FORMAT: u32 = 1;

pub fn encode(taken_ns: i64, entries: &HashMap<String, CacheEntry>) -> Vec<u8> {
    let mut paths: Vec<&String> = entries.keys().collect();
    paths.sort_unstable();
    let mut out = Vec::with_capacity(24 + entries.len() * 128);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&taken_ns.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for path in paths {
        let e = &entries[path];
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&e.size.to_le_bytes());
        out.extend_from_slice(&e.mtime_ns.to_le_bytes());
        out.extend_from_slice(&e.inode.to_le_bytes());
        out.extend_from_slice(&e.ctime_ns.to_le_bytes());
        out.extend_from_slice(&(e.digest.len() as u32).to_le_bytes());
        out.extend_from_slice(e.digest.as_bytes());
    }
    out
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.data.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn i64(&mut self) -> std::result::Result<i64, String> {
        self.u64().map(|v| v as i64)
    }
    fn text(&mut self) -> std::result::Result<String, String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| "a path is not UTF-8".into())
    }
}

/// (taken_ns, entries), or why the bytes are not a stat cache of this format.
pub fn decode(data: &[u8]) -> std::result::Result<(i64, HashMap<String, CacheEntry>), String> {
    let mut r = Reader { data };
    if r.take(4)? != MAGIC {
        return Err("not a stat cache".into());
    }
    let format = r.u32()?;
    if format != FORMAT {
        return Err(format!("stat cache format {format}, expected {FORMAT}"));
    }
    let taken_ns = r.i64()?;
    let count = r.u64()?;
    // Each entry takes at least 40 bytes: a count beyond that is damage.
    if count > (data.len() as u64) / 40 {
        return Err("entry count larger than the file".into());
    }
    let mut entries = HashMap::with_capacity(count as usize);
    for _ in 0..count {
        let path = r.text()?;
        let entry = CacheEntry {
            size: r.u64()?,
            mtime_ns: r.i64()?,
            inode: r.u64()?,
            ctime_ns: r.i64()?,
            digest: r.text()?,
        };
        if entries.insert(path, entry).is_some() {
            return Err("duplicate path".into());
        }
    }
    if !r.data.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok((taken_ns, entries))
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
    fn refreshing_some_files_lists_no_removals() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "a").unwrap();
        std::fs::write(dir.path().join("b.py"), "b").unwrap();
        let s = scan(dir.path(), &ScanOptions::default()).unwrap();
        let first = refresh(dir.path(), &s.files, &HashMap::new(), 0).unwrap();
        std::fs::write(dir.path().join("a.py"), "edited").unwrap();
        let edited = crate::scan::stat_paths(dir.path(), &["a.py".into()]).unwrap();
        let some = refresh_files(dir.path(), &edited, &to_map(&first), i64::MAX / 2).unwrap();
        assert_eq!(
            (some.changed.as_slice(), some.hashed),
            (["a.py".to_string()].as_slice(), 1)
        );
        assert!(some.removed.is_empty()); // b.py is only not listed, not gone
        let none = refresh_files(dir.path(), &[], &to_map(&first), i64::MAX / 2).unwrap();
        assert!(none.entries.is_empty() && none.changed.is_empty() && none.removed.is_empty());
    }

    #[test]
    fn encoding_round_trips_and_damage_is_refused() {
        let mut entries = HashMap::new();
        for (i, p) in ["b.py", "a/é.py", "c"].iter().enumerate() {
            entries.insert(
                p.to_string(),
                CacheEntry {
                    size: i as u64,
                    mtime_ns: -(i as i64),
                    inode: 7 + i as u64,
                    ctime_ns: 1 << 40,
                    digest: format!("blake3:{i:064}"),
                },
            );
        }
        let bytes = encode(42, &entries);
        assert_eq!(decode(&bytes).unwrap(), (42, entries.clone()));
        assert_eq!(encode(42, &entries), bytes);
        for cut in [0, 3, 4, 12, 30, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut other = bytes.clone();
        other[4] = 9;
        assert!(decode(&other).unwrap_err().contains("format 9"));
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
