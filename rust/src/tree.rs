//! A route bundle's identity: a digest over its sorted (entry name, content
//! digest) pairs, as a git tree's is, not over the archive's bytes.
//!
//! A stored bundle archive (`archive::write_to`, `Packing::Store`) is a
//! function of its epoch and its entries' names and contents, and each
//! content is named by its BLAKE3 digest: so the record below names the
//! archive's bytes as surely as a digest of those bytes would, at a cost of
//! O(entries) instead of O(bytes). An edit to a module that sits in 2,000
//! bundles then digests 2,000 records of a few KB, not 2,000 archives of
//! ~570 KB each.
//!
//! The record: `TAG`; the epoch (i64, little-endian); then, for each file
//! entry in name order, its UTF-8 name, a NUL (no entry name holds one) and
//! the 32 raw bytes of its content's digest. Directory entries are not
//! listed: the writer derives them from the names. The tag's number is the
//! archive layout's version: a change to the bytes `archive::write_to`
//! lays out for the same entries must bump it, or one identity would name
//! two archives.

use crate::archive;
use crate::error::{CoreError, Result};

pub const TAG: &[u8] = b"vega-tree 1\n";
pub const DIGEST_LEN: usize = 32;
/// An entry: its name and the raw digest of its content.
pub type Entry = (String, [u8; DIGEST_LEN]);

/// The record of the tree of `entries` ((name, content digest) pairs, any
/// order), checked as the archive writer checks its entries: names it would
/// refuse (duplicates, a name that is both a file and a directory, `..`)
/// are refused here, with the same error.
pub fn encode(epoch: i64, entries: Vec<(String, [u8; DIGEST_LEN])>) -> Result<Vec<u8>> {
    let sorted = archive::prepare(entries)?;
    let size = TAG.len()
        + 8
        + sorted
            .keys()
            .map(|n| n.len() + 1 + DIGEST_LEN)
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(TAG);
    out.extend_from_slice(&epoch.to_le_bytes());
    for (name, digest) in &sorted {
        if name.ends_with('/') {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(digest);
    }
    Ok(out)
}

/// A tree, as `decode` reads it from its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub epoch: i64,
    /// (name, content digest), in name order.
    pub entries: Vec<(String, [u8; DIGEST_LEN])>,
}

/// Read a record `encode` wrote. `label` names it in errors. A record whose
/// digest matched its name was written by `encode`; the checks here make a
/// record from elsewhere an error rather than an archive nobody could build.
pub fn decode(record: &[u8], label: &str) -> Result<Tree> {
    let bad = |reason: String| CoreError::ArchiveFormat {
        path: label.to_owned(),
        reason,
    };
    let rest = record
        .strip_prefix(TAG)
        .ok_or_else(|| bad("not a tree record (no vega-tree 1 tag)".into()))?;
    if rest.len() < 8 {
        return Err(bad("truncated before the epoch".into()));
    }
    let (epoch, mut rest) = rest.split_at(8);
    let epoch = i64::from_le_bytes(epoch.try_into().unwrap_or_default());
    let mut entries: Vec<(String, [u8; DIGEST_LEN])> = Vec::new();
    while !rest.is_empty() {
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad(format!("truncated after {} entries", entries.len())))?;
        let name = std::str::from_utf8(&rest[..nul]).map_err(|_| {
            bad(format!(
                "entry {} has a name that is not UTF-8",
                entries.len()
            ))
        })?;
        if let Err(reason) = archive::check_name(name) {
            return Err(bad(format!("entry {name:?}: {reason}")));
        }
        if entries
            .last()
            .is_some_and(|(prev, _)| prev.as_str() >= name)
        {
            return Err(bad(format!("entry {name:?} is out of order")));
        }
        let digest: [u8; DIGEST_LEN] = rest
            .get(nul + 1..nul + 1 + DIGEST_LEN)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| bad(format!("entry {name:?} is truncated")))?;
        entries.push((name.to_owned(), digest));
        rest = &rest[nul + 1 + DIGEST_LEN..];
    }
    Ok(Tree { epoch, entries })
}

/// The record of `record`'s tree with the digests of the named entries
/// replaced: what a rebuilt bundle whose entry names did not change costs
/// (no list of its members is made). `None` when a name is not in the tree.
pub fn patch(
    record: &[u8],
    changes: &[(String, [u8; DIGEST_LEN])],
    label: &str,
) -> Result<Option<Vec<u8>>> {
    let mut tree = decode(record, label)?;
    for (name, digest) in changes {
        match tree
            .entries
            .binary_search_by(|(n, _)| n.as_str().cmp(name.as_str()))
        {
            Ok(i) => tree.entries[i].1 = *digest,
            Err(_) => return Ok(None),
        }
    }
    let mut out = Vec::with_capacity(record.len());
    out.extend_from_slice(TAG);
    out.extend_from_slice(&tree.epoch.to_le_bytes());
    for (name, digest) in &tree.entries {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(digest);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> [u8; DIGEST_LEN] {
        *blake3::hash(&[n]).as_bytes()
    }

    #[test]
    fn order_does_not_matter_and_decode_inverts_encode() {
        let a = encode(7, vec![("b.pyc".into(), d(1)), ("a/x.pyc".into(), d(2))]).unwrap();
        let b = encode(7, vec![("a/x.pyc".into(), d(2)), ("b.pyc".into(), d(1))]).unwrap();
        assert_eq!(a, b);
        let tree = decode(&a, "t").unwrap();
        assert_eq!(tree.epoch, 7);
        // No directory entry: the writer derives "a/" from the names.
        assert_eq!(
            tree.entries,
            vec![("a/x.pyc".to_string(), d(2)), ("b.pyc".to_string(), d(1))]
        );
    }

    #[test]
    fn every_input_is_named() {
        let base = encode(7, vec![("a.pyc".into(), d(1))]).unwrap();
        for other in [
            encode(8, vec![("a.pyc".into(), d(1))]).unwrap(),
            encode(7, vec![("b.pyc".into(), d(1))]).unwrap(),
            encode(7, vec![("a.pyc".into(), d(2))]).unwrap(),
            encode(7, vec![("a.pyc".into(), d(1)), ("b.pyc".into(), d(1))]).unwrap(),
        ] {
            assert_ne!(blake3::hash(&base), blake3::hash(&other));
        }
    }

    #[test]
    fn the_archive_writers_refusals() {
        for bad in ["/abs", "a/../b", "a//b", ""] {
            let err = encode(0, vec![(bad.into(), d(0))]).unwrap_err();
            assert!(matches!(err, CoreError::ArchiveEntry { ref entry, .. } if entry == bad));
        }
        let dup = encode(0, vec![("a".into(), d(0)), ("a".into(), d(1))]).unwrap_err();
        assert!(dup.to_string().contains("duplicate"));
    }

    #[test]
    fn a_patch_is_the_record_of_the_changed_tree() {
        let old = encode(7, vec![("a.pyc".into(), d(1)), ("b/c.pyc".into(), d(2))]).unwrap();
        let want = encode(7, vec![("a.pyc".into(), d(1)), ("b/c.pyc".into(), d(3))]).unwrap();
        let patched = patch(&old, &[("b/c.pyc".into(), d(3))], "t").unwrap();
        assert_eq!(patched, Some(want));
        assert_eq!(patch(&old, &[("x.pyc".into(), d(3))], "t").unwrap(), None);
    }

    #[test]
    fn damaged_records_are_errors() {
        let good = encode(7, vec![("a.pyc".into(), d(1)), ("b.pyc".into(), d(2))]).unwrap();
        assert!(decode(&good[..good.len() - 1], "t").is_err());
        assert!(decode(&good[1..], "t").is_err());
        assert!(decode(&good[..TAG.len() + 3], "t").is_err());
        let mut swapped = good.clone();
        let at = TAG.len() + 8;
        swapped[at] = b'c'; // "c.pyc" before "b.pyc"
        assert!(decode(&swapped, "t").is_err());
    }
}
