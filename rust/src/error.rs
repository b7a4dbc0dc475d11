//! The one error type of the core. Every variant carries the path or archive
//! entry involved, so the Python exception it becomes can name it.

use std::io;
use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, CoreError>;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error("archive entry {entry:?}: {reason}")]
    ArchiveEntry { entry: String, reason: String },

    #[error("{path}: not a readable archive: {reason}")]
    ArchiveFormat { path: String, reason: String },

    #[error("{path}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        path: String,
        expected: String,
        actual: String,
    },

    #[error("{path}: {reason}")]
    Scan { path: String, reason: String },

    #[error("invalid digest {text:?}: {reason}")]
    BadDigest { text: String, reason: String },

    #[error("{0}")]
    Pyc(#[from] crate::pyc::PycError),

    #[error("{path}:{line}: {reason}")]
    Source {
        path: String,
        line: u32,
        reason: String,
    },
}

impl CoreError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            source,
        }
    }
}
