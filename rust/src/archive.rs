//! Deterministic zip archives that Python's zipimport can import from.
//!
//! The bytes depend only on the entries' names and contents: entries are
//! sorted, every entry carries one fixed timestamp and mode, and no extra
//! fields, uid/gid or comments are written. The format is written by hand
//! (it is small) so that no library default can leak into the output.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use flate2::write::DeflateEncoder;
use flate2::Compression;

use crate::error::{CoreError, Result};

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const END_SIG: u32 = 0x0605_4b50;
const VERSION_NEEDED: u16 = 20;
/// Made by "Unix" (3), spec 2.0, so that the external attributes hold a mode.
const VERSION_MADE_BY: u16 = (3 << 8) | 20;
/// Bit 11: names are UTF-8.
const FLAGS: u16 = 1 << 11;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATED: u16 = 8;
/// Regular file, rw-r--r--, whatever the source file's mode was.
const FILE_ATTR: u32 = 0o100_644 << 16;
/// Directory, rwxr-xr-x, plus the MS-DOS directory bit.
const DIR_ATTR: u32 = (0o040_755 << 16) | 0x10;
/// Fixed so the archive does not change when the compressor's default does.
const DEFLATE_LEVEL: u32 = 6;
/// The zip epoch; earlier times cannot be represented.
pub const DEFAULT_EPOCH: i64 = 315_532_800;

/// (DOS time, DOS date) for a Unix time, clamped to the range zip can hold.
pub fn dos_datetime(epoch: i64) -> (u16, u16) {
    let epoch = epoch.clamp(DEFAULT_EPOCH, 4_354_819_198); // 1980-01-01 .. 2107-12-31
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant), valid for the clamped range.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let time = ((secs / 3600) << 11) | (((secs % 3600) / 60) << 5) | ((secs % 60) / 2);
    let date = ((year - 1980) << 9) | (month << 5) | day;
    (time as u16, date as u16)
}

/// Why a name cannot be an archive entry, if it cannot.
pub fn check_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.starts_with('/') {
        return Err("absolute name");
    }
    if name.contains('\\') {
        return Err("backslash in name (use '/')");
    }
    if name.contains('\0') {
        return Err("NUL byte in name");
    }
    if name.len() > usize::from(u16::MAX) {
        return Err("name longer than 65535 bytes");
    }
    for part in name.split('/') {
        match part {
            ".." => return Err("'..' component"),
            "." => return Err("'.' component"),
            "" => return Err("empty component (directory entries are not written)"),
            _ => {}
        }
    }
    Ok(())
}

/// Sort and check entries; refuse duplicates.
pub fn prepare<D: AsRef<[u8]> + Default>(entries: Vec<(String, D)>) -> Result<BTreeMap<String, D>> {
    let mut sorted = BTreeMap::new();
    for (name, data) in entries {
        if let Err(reason) = check_name(&name) {
            return Err(CoreError::ArchiveEntry {
                entry: name,
                reason: reason.into(),
            });
        }
        if data.as_ref().len() > u32::MAX as usize {
            return Err(CoreError::ArchiveEntry {
                entry: name,
                reason: "larger than 4 GiB (zip64 is not written)".into(),
            });
        }
        if sorted.contains_key(&name) {
            return Err(CoreError::ArchiveEntry {
                entry: name,
                reason: "duplicate name".into(),
            });
        }
        sorted.insert(name, data);
    }
    // Directory entries for every parent: zipimport (before 3.13) only finds
    // namespace packages through them.
    let mut dirs = Vec::new();
    for name in sorted.keys() {
        let mut end = 0;
        while let Some(i) = name[end..].find('/') {
            end += i + 1;
            dirs.push(name[..end].to_owned());
        }
    }
    for dir in dirs {
        let as_file = &dir[..dir.len() - 1];
        if sorted.contains_key(as_file) {
            return Err(CoreError::ArchiveEntry {
                entry: as_file.to_owned(),
                reason: "is both a file and a directory".into(),
            });
        }
        sorted.entry(dir).or_default();
    }
    if sorted.len() > usize::from(u16::MAX) {
        return Err(CoreError::ArchiveEntry {
            entry: sorted.keys().next_back().cloned().unwrap_or_default(),
            reason: "more than 65535 entries (zip64 is not written)".into(),
        });
    }
    Ok(sorted)
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = DeflateEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        Compression::new(DEFLATE_LEVEL),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

fn overflow(what: &str) -> CoreError {
    CoreError::ArchiveEntry {
        entry: String::new(),
        reason: format!("archive larger than 4 GiB ({what}); zip64 is not written"),
    }
}

/// How entry contents are written. Either way the choice is fixed per
/// archive, so the bytes remain a function of the entries alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// Deflate at a fixed level; stored when that does not shrink the entry.
    Deflate,
    /// Stored as is: building costs a copy and a CRC, which matters when many
    /// archives share most of their entries (route bundles).
    Store,
}

/// Where an archive's bytes go: a buffer, or only a digest of them.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
    /// Bytes put so far.
    fn written(&self) -> usize;
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn written(&self) -> usize {
        self.len()
    }
}

/// Hashes what would be written, without keeping it: the digest of an
/// archive that is stored as its entries (see `vega_dag.store`). Writes are
/// gathered into blocks first: BLAKE3 hashes several 1 KiB chunks at once
/// (SIMD) only when one update holds them, and an archive's pieces are small.
pub struct DigestSink {
    hasher: blake3::Hasher,
    block: Vec<u8>,
    written: usize,
}

const DIGEST_BLOCK: usize = 64 * 1024;

impl Default for DigestSink {
    fn default() -> Self {
        DigestSink {
            hasher: blake3::Hasher::new(),
            block: Vec::with_capacity(DIGEST_BLOCK),
            written: 0,
        }
    }
}

impl DigestSink {
    pub fn finalize(mut self) -> blake3::Hash {
        self.hasher.update(&self.block);
        self.hasher.finalize()
    }
}

impl Sink for DigestSink {
    fn put(&mut self, bytes: &[u8]) {
        self.written += bytes.len();
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.block.is_empty() && rest.len() >= DIGEST_BLOCK {
                // Whole blocks straight from the input, no copy.
                let whole = rest.len() - rest.len() % DIGEST_BLOCK;
                self.hasher.update(&rest[..whole]);
                rest = &rest[whole..];
                continue;
            }
            let take = rest.len().min(DIGEST_BLOCK - self.block.len());
            self.block.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.block.len() == DIGEST_BLOCK {
                self.hasher.update(&self.block);
                self.block.clear();
            }
        }
    }
    fn written(&self) -> usize {
        self.written
    }
}

/// Write the archive. `epoch` is the Unix time stamped on every entry.
pub fn write<D: AsRef<[u8]> + Default + Sync>(
    entries: Vec<(String, D)>,
    epoch: i64,
    packing: Packing,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_to(entries, epoch, packing, &mut out)?;
    Ok(out)
}

/// The digest of the archive `write` would return, computed as it streams
/// (no copy of the entries is made).
pub fn digest<D: AsRef<[u8]> + Default + Sync>(
    entries: Vec<(String, D)>,
    epoch: i64,
    packing: Packing,
) -> Result<blake3::Hash> {
    let mut sink = DigestSink::default();
    write_to(entries, epoch, packing, &mut sink)?;
    Ok(sink.finalize())
}

/// `write`, into any sink: the one place the layout is decided.
pub fn write_to<D: AsRef<[u8]> + Default + Sync, S: Sink>(
    entries: Vec<(String, D)>,
    epoch: i64,
    packing: Packing,
    out: &mut S,
) -> Result<()> {
    use rayon::prelude::*;
    let sorted = prepare(entries)?;
    let (time, date) = dos_datetime(epoch);
    // Compress in parallel; assemble in order.
    let packed: Vec<Option<Vec<u8>>> = match packing {
        Packing::Deflate => sorted
            .par_iter()
            .map(|(_, data)| Some(deflate(data.as_ref())).filter(|p| p.len() < data.as_ref().len()))
            .collect(),
        Packing::Store => vec![None; sorted.len()],
    };
    let mut header = Vec::with_capacity(64);
    let mut central = Vec::new();
    for ((name, data), packed) in sorted.iter().zip(&packed) {
        let data = data.as_ref();
        let crc = crc32fast::hash(data);
        let is_dir = name.ends_with('/');
        let (method, body) = match packed {
            Some(p) => (METHOD_DEFLATED, p.as_slice()),
            None => (METHOD_STORED, data),
        };
        let offset = u32::try_from(out.written()).map_err(|_| overflow("offset"))?;
        let name_len = name.len() as u16;
        let size = data.len() as u32;
        let csize = body.len() as u32;
        header.clear();
        put32(&mut header, LOCAL_SIG);
        for v in [VERSION_NEEDED, FLAGS, method, time, date] {
            put16(&mut header, v);
        }
        for v in [crc, csize, size] {
            put32(&mut header, v);
        }
        put16(&mut header, name_len);
        put16(&mut header, 0);
        header.extend_from_slice(name.as_bytes());
        out.put(&header);
        out.put(body);

        put32(&mut central, CENTRAL_SIG);
        for v in [VERSION_MADE_BY, VERSION_NEEDED, FLAGS, method, time, date] {
            put16(&mut central, v);
        }
        for v in [crc, csize, size] {
            put32(&mut central, v);
        }
        for v in [name_len, 0, 0, 0, 0] {
            put16(&mut central, v);
        }
        put32(&mut central, if is_dir { DIR_ATTR } else { FILE_ATTR });
        put32(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset =
        u32::try_from(out.written()).map_err(|_| overflow("central directory offset"))?;
    let cd_size = u32::try_from(central.len()).map_err(|_| overflow("central directory size"))?;
    let count = sorted.len() as u16;
    put32(&mut central, END_SIG);
    for v in [0, 0, count, count] {
        put16(&mut central, v);
    }
    put32(&mut central, cd_size);
    put32(&mut central, cd_offset);
    put16(&mut central, 0);
    out.put(&central);
    Ok(())
}

/// One entry of an archive's central directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    pub name: String,
    pub size: u32,
    pub compressed_size: u32,
    pub crc32: u32,
    pub method: u16,
    pub mode: u32,
    header_offset: u32,
}

impl EntryInfo {
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    label: &'a str,
}

impl<'a> Cursor<'a> {
    fn bad(&self, reason: impl Into<String>) -> CoreError {
        CoreError::ArchiveFormat {
            path: self.label.to_owned(),
            reason: reason.into(),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| self.bad(format!("truncated at byte {}", self.pos)))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Read the central directory. `label` names the archive in errors.
pub fn list(data: &[u8], label: &str) -> Result<Vec<EntryInfo>> {
    let bad = |reason: &str| CoreError::ArchiveFormat {
        path: label.to_owned(),
        reason: reason.to_owned(),
    };
    // The end record is 22 bytes plus a comment of at most 65535 bytes.
    let lowest = data.len().saturating_sub(22 + usize::from(u16::MAX));
    let end = (lowest..=data.len().saturating_sub(22))
        .rev()
        .find(|&i| data.len() >= 22 && data[i..i + 4] == END_SIG.to_le_bytes())
        .ok_or_else(|| bad("no end-of-central-directory record"))?;
    let mut c = Cursor {
        data,
        pos: end + 10,
        label,
    };
    let count = c.u16()?;
    let _cd_size = c.u32()?;
    let cd_offset = c.u32()? as usize;
    let mut c = Cursor {
        data,
        pos: cd_offset,
        label,
    };
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        if c.u32()? != CENTRAL_SIG {
            return Err(c.bad("bad central directory signature"));
        }
        let _made_by = c.u16()?;
        let _needed = c.u16()?;
        let _flags = c.u16()?;
        let method = c.u16()?;
        let _time = c.u16()?;
        let _date = c.u16()?;
        let crc32 = c.u32()?;
        let compressed_size = c.u32()?;
        let size = c.u32()?;
        let name_len = c.u16()?;
        let extra_len = c.u16()?;
        let comment_len = c.u16()?;
        let _disk = c.u16()?;
        let _internal = c.u16()?;
        let external = c.u32()?;
        let header_offset = c.u32()?;
        let name_bytes = c.take(usize::from(name_len))?;
        let name = std::str::from_utf8(name_bytes)
            .map_err(|_| {
                c.bad(format!(
                    "entry name is not UTF-8: {}",
                    String::from_utf8_lossy(name_bytes)
                ))
            })?
            .to_owned();
        c.take(usize::from(extra_len) + usize::from(comment_len))?;
        out.push(EntryInfo {
            name,
            size,
            compressed_size,
            crc32,
            method,
            mode: external >> 16,
            header_offset,
        });
    }
    Ok(out)
}

/// The content of one entry, decompressed and checked against its CRC.
pub fn read_entry(data: &[u8], info: &EntryInfo, label: &str) -> Result<Vec<u8>> {
    let mut c = Cursor {
        data,
        pos: info.header_offset as usize,
        label,
    };
    let entry_bad = |reason: String| CoreError::ArchiveFormat {
        path: format!("{label}:{}", info.name),
        reason,
    };
    if c.u32()? != LOCAL_SIG {
        return Err(entry_bad("bad local header signature".into()));
    }
    c.take(22)?;
    let name_len = c.u16()?;
    let extra_len = c.u16()?;
    c.take(usize::from(name_len) + usize::from(extra_len))?;
    let body = c.take(info.compressed_size as usize)?;
    let content = match info.method {
        METHOD_STORED => body.to_vec(),
        METHOD_DEFLATED => {
            let mut out = Vec::with_capacity(info.size as usize);
            flate2::read::DeflateDecoder::new(body)
                .take(u64::from(info.size) + 1)
                .read_to_end(&mut out)
                .map_err(|e| entry_bad(format!("corrupt deflate data: {e}")))?;
            out
        }
        m => return Err(entry_bad(format!("unsupported compression method {m}"))),
    };
    if content.len() != info.size as usize {
        return Err(entry_bad(format!(
            "size {} does not match the recorded {}",
            content.len(),
            info.size
        )));
    }
    if crc32fast::hash(&content) != info.crc32 {
        return Err(entry_bad("CRC-32 mismatch".into()));
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(names: &[&str]) -> Vec<(String, Vec<u8>)> {
        names
            .iter()
            .map(|n| (n.to_string(), n.repeat(40).into_bytes()))
            .collect()
    }

    #[test]
    fn order_does_not_matter() {
        let a = write(
            entries(&["b.py", "a/x.py", "a.py"]),
            DEFAULT_EPOCH,
            Packing::Deflate,
        )
        .unwrap();
        let b = write(
            entries(&["a.py", "b.py", "a/x.py"]),
            DEFAULT_EPOCH,
            Packing::Deflate,
        )
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn digest_is_the_digest_of_the_written_bytes() {
        for packing in [Packing::Store, Packing::Deflate] {
            let mut input = entries(&["pkg/__init__.py", "pkg/mod.py", "e", "ns/deep/m.py"]);
            // Larger than the sink's block, and not a multiple of it.
            let big: Vec<u8> = (0..200_001u32).map(|i| (i * 7 % 251) as u8).collect();
            input.push(("big.bin".into(), big));
            let bytes = write(input.clone(), DEFAULT_EPOCH + 86_400, packing).unwrap();
            let borrowed: Vec<(String, &[u8])> = input
                .iter()
                .map(|(n, d)| (n.clone(), d.as_slice()))
                .collect();
            let streamed = digest(borrowed, DEFAULT_EPOCH + 86_400, packing).unwrap();
            assert_eq!(streamed, crate::hash::hash_bytes(&bytes));
        }
    }

    #[test]
    fn round_trip() {
        let input = entries(&["pkg/__init__.py", "pkg/mod.py", "e"]);
        let bytes = write(input.clone(), DEFAULT_EPOCH, Packing::Deflate).unwrap();
        let listed = list(&bytes, "t.zip").unwrap();
        let names: Vec<_> = listed.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["e", "pkg/", "pkg/__init__.py", "pkg/mod.py"]);
        assert_eq!(listed[1].mode, 0o040_755);
        for info in listed.iter().filter(|e| !e.is_dir()) {
            let want = &input.iter().find(|(n, _)| *n == info.name).unwrap().1;
            assert_eq!(&read_entry(&bytes, info, "t.zip").unwrap(), want);
            assert_eq!(info.mode, 0o100_644);
        }
    }

    #[test]
    fn refused_names() {
        for bad in ["/abs", "a/../b", "..", "./a", "a//b", "dir/", "", "a\\b"] {
            let err = write(
                vec![(bad.to_string(), vec![])],
                DEFAULT_EPOCH,
                Packing::Deflate,
            )
            .unwrap_err();
            assert!(
                matches!(err, CoreError::ArchiveEntry { ref entry, .. } if entry == bad),
                "{bad}"
            );
        }
        let dup = write(
            vec![("a".into(), vec![1]), ("a".into(), vec![2])],
            DEFAULT_EPOCH,
            Packing::Deflate,
        )
        .unwrap_err();
        assert!(dup.to_string().contains("duplicate"));
        let clash = write(
            vec![("a".into(), vec![1]), ("a/b".into(), vec![2])],
            DEFAULT_EPOCH,
            Packing::Deflate,
        )
        .unwrap_err();
        assert!(clash.to_string().contains("both a file and a directory"));
    }

    #[test]
    fn dos_times() {
        assert_eq!(dos_datetime(0), (0, (1 << 5) | 1));
        assert_eq!(dos_datetime(DEFAULT_EPOCH), (0, (1 << 5) | 1));
        // 2000-02-29 12:34:56 UTC
        assert_eq!(
            dos_datetime(951_827_696),
            ((12 << 11) | (34 << 5) | 28, (20 << 9) | (2 << 5) | 29)
        );
    }

    #[test]
    fn corrupt_archives_are_errors() {
        let bytes = write(entries(&["a.py"]), DEFAULT_EPOCH, Packing::Deflate).unwrap();
        assert!(list(&bytes[..10], "t").is_err());
        let mut flipped = bytes.clone();
        flipped[40] ^= 0xff;
        let listed = list(&flipped, "t").unwrap();
        assert!(read_entry(&flipped, &listed[0], "t").is_err());
    }
}
