//! BLAKE3 of files: many files in parallel, large ones memory-mapped.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{CoreError, Result};

/// Files at least this large are memory-mapped: below it, one read(2) into a
/// buffer is cheaper than setting up and tearing down a mapping.
const MMAP_THRESHOLD: u64 = 1 << 20;
/// Files at least this large are also hashed with BLAKE3's own multithreading;
/// below it the per-file parallelism of `hash_files` already fills the cores.
const RAYON_THRESHOLD: u64 = 16 << 20;

pub fn hash_bytes(data: &[u8]) -> blake3::Hash {
    blake3::hash(data)
}

/// Most source files fit in one read of this size; a file that does not is
/// hashed incrementally (or memory-mapped, when large).
const FIRST_READ: usize = 64 << 10;

thread_local! {
    static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; FIRST_READ]);
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

pub fn hash_file(path: &Path) -> Result<blake3::Hash> {
    let io = |e| CoreError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    // Small files (nearly every source file) cost open, one read and close:
    // no fstat, no allocation. Only a file that fills the first read is
    // looked at more closely.
    let first = BUFFER.with(|cell| -> Result<Option<blake3::Hash>> {
        let mut buf = cell.borrow_mut();
        let n = read_full(&mut file, &mut buf).map_err(|e| {
            if e.raw_os_error() == Some(21) {
                CoreError::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
                )
            } else {
                io(e)
            }
        })?;
        Ok((n < buf.len()).then(|| blake3::hash(&buf[..n])))
    })?;
    if let Some(hash) = first {
        return Ok(hash);
    }
    let size = file.metadata().map_err(io)?.len();
    let mut hasher = blake3::Hasher::new();
    if size >= MMAP_THRESHOLD {
        // SAFETY: the mapping is read-only and dropped before returning. A
        // file truncated by another process while mapped can raise SIGBUS;
        // that is the same trade-off b3sum and blake3's update_mmap make.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        if size >= RAYON_THRESHOLD {
            hasher.update_rayon(&map);
        } else {
            hasher.update(&map);
        }
        return Ok(hasher.finalize());
    }
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
    std::io::copy(&mut file, &mut hasher).map_err(io)?;
    Ok(hasher.finalize())
}

/// Hash every path, in parallel, keeping the input order in the output.
pub fn hash_files(paths: &[PathBuf]) -> Vec<Result<blake3::Hash>> {
    paths.par_iter().map(|p| hash_file(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn matches_in_memory_hash_across_thresholds() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0usize, 1, 1 << 20, (1 << 20) + 1, (16 << 20) + 3] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let path = dir.path().join(format!("f{size}"));
            File::create(&path).unwrap().write_all(&data).unwrap();
            assert_eq!(
                hash_file(&path).unwrap(),
                blake3::hash(&data),
                "size {size}"
            );
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = hash_file(Path::new("/nonexistent/vega")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/vega"));
    }

    #[test]
    fn keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..50)
            .map(|i| {
                let p = dir.path().join(format!("{i}"));
                std::fs::write(&p, i.to_string()).unwrap();
                p
            })
            .collect();
        let got = hash_files(&paths);
        for (i, h) in got.into_iter().enumerate() {
            assert_eq!(h.unwrap(), blake3::hash(i.to_string().as_bytes()));
        }
    }
}
