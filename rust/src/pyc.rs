//! Canonical marshal streams, so that a .pyc depends only on its source.
//!
//! CPython's marshal sets FLAG_REF on an object when its reference count is
//! above one at dump time (CPython issues 78274 and 98819). Reference counts
//! depend on what else the process happens to hold, so the same code object
//! can serialize to different bytes in different processes. A flag that no
//! later TYPE_REF points at changes nothing on load, so the canonical form
//! clears every such flag and renumbers the remaining references; this is the
//! same fix as Fedora's `marshalparser`.
//!
//! Clearing a flag never changes the length of the stream, so the canonical
//! form is the input with some type bytes and reference indices patched in
//! place. The reader mirrors `r_object` in CPython's Python/marshal.c.
//!
//! Whether a string was interned at dump time ('u' vs 't', 'z' vs 'Z') leaks
//! process state too (one-character strings are process-wide singletons), so
//! the interned bit is rewritten by the compiler's own rule; see
//! `intern_as_compiler_would`. Out of scope, because fixing it would change
//! what the stream loads to: before 3.11, the iteration order of frozenset
//! constants (bpo-37596; 3.11 sorts them).

const FLAG_REF: u8 = 0x80;

/// A .pyc header: magic, flags, then mtime and size or a source hash.
const PYC_HEADER_LEN: usize = 16;

/// The bits of the .pyc flags word that PEP 552 defines; importlib rejects
/// any other bit, so a header carrying one is not a .pyc we should rewrite.
const PYC_KNOWN_FLAGS: u32 = 0b11;

#[derive(Debug, thiserror::Error)]
pub enum PycError {
    #[error("marshal data truncated at offset {offset}")]
    Truncated { offset: usize },

    #[error("unknown marshal type code {code:#04x} at offset {offset}")]
    UnknownType { code: u8, offset: usize },

    #[error("invalid marshal reference {index} at offset {offset}")]
    BadRef { index: u32, offset: usize },

    #[error("negative marshal size {size} at offset {offset}")]
    BadSize { size: i32, offset: usize },

    #[error("NULL marshal object where a value is required at offset {offset}")]
    UnexpectedNull { offset: usize },

    #[error("unsupported .pyc magic number {magic:02x?}")]
    UnsupportedMagic { magic: [u8; 4] },

    #[error("malformed .pyc header")]
    BadHeader,

    #[error("trailing data after the marshal object at offset {offset}")]
    TrailingData { offset: usize },
}

/// How a code object is laid out in a marshal stream; every other type has
/// kept its encoding since marshal version 4 (CPython 3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarshalLayout {
    /// CPython 3.8 to 3.10: six int32 fields (argcount, posonlyargcount,
    /// kwonlyargcount, nlocals, stacksize, flags), eight objects, the first
    /// line number, then the line table.
    Py38,
    /// CPython 3.11 to 3.13: five int32 fields (nlocals is gone), eight
    /// objects, the first line number, then the line and exception tables.
    Py311,
}

impl MarshalLayout {
    fn code_leading_ints(self) -> usize {
        match self {
            MarshalLayout::Py38 => 6,
            MarshalLayout::Py311 => 5,
        }
    }

    fn code_trailing_objects(self) -> u32 {
        match self {
            MarshalLayout::Py38 => 1,
            MarshalLayout::Py311 => 2,
        }
    }
}

/// Only release magic numbers are accepted: pre-release builds of one minor
/// version changed the code object layout more than once.
pub fn layout_for_magic(magic: [u8; 4]) -> Option<MarshalLayout> {
    if magic[2..] != *b"\r\n" {
        return None;
    }
    match u16::from_le_bytes([magic[0], magic[1]]) {
        // 3.8, 3.9, 3.10
        3413 | 3425 | 3439 => Some(MarshalLayout::Py38),
        // 3.11, 3.12, 3.13
        3495 | 3531 | 3571 => Some(MarshalLayout::Py311),
        _ => None,
    }
}

/// Canonicalize a bare marshal stream (one top-level object) as produced by
/// marshal.dumps for the running interpreter's version; `version` must be
/// that interpreter's layout. Trailing bytes, which marshal.loads would
/// ignore, are an error rather than silently kept or dropped.
pub fn canonicalize_marshal(data: &[u8], version: MarshalLayout) -> Result<Vec<u8>, PycError> {
    let mut reader = Reader::new(data, version);
    reader.read_stream()?;
    Ok(reader.rewrite())
}

/// Canonicalize a whole .pyc (16-byte header + marshal stream); the header is
/// kept as is and its magic number selects the layout.
pub fn canonicalize_pyc(data: &[u8]) -> Result<Vec<u8>, PycError> {
    let (header, body) = match (data.get(..PYC_HEADER_LEN), data.get(PYC_HEADER_LEN..)) {
        (Some(header), Some(body)) => (header, body),
        _ => return Err(PycError::BadHeader),
    };
    let magic = [header[0], header[1], header[2], header[3]];
    let layout = layout_for_magic(magic).ok_or(PycError::UnsupportedMagic { magic })?;
    let flags = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if flags & !PYC_KNOWN_FLAGS != 0 {
        return Err(PycError::BadHeader);
    }
    let body = canonicalize_marshal(body, layout).map_err(|e| shift_offsets(e, PYC_HEADER_LEN))?;
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(header);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Offsets in errors from the marshal reader are relative to the stream;
/// callers of `canonicalize_pyc` think in file offsets.
fn shift_offsets(err: PycError, by: usize) -> PycError {
    match err {
        PycError::Truncated { offset } => PycError::Truncated {
            offset: offset + by,
        },
        PycError::UnknownType { code, offset } => PycError::UnknownType {
            code,
            offset: offset + by,
        },
        PycError::BadRef { index, offset } => PycError::BadRef {
            index,
            offset: offset + by,
        },
        PycError::BadSize { size, offset } => PycError::BadSize {
            size,
            offset: offset + by,
        },
        PycError::UnexpectedNull { offset } => PycError::UnexpectedNull {
            offset: offset + by,
        },
        PycError::TrailingData { offset } => PycError::TrailingData {
            offset: offset + by,
        },
        other @ (PycError::UnsupportedMagic { .. } | PycError::BadHeader) => other,
    }
}

/// One entry of CPython's reader-side ref table.
struct RefSlot {
    /// Offset of the type byte whose FLAG_REF created the slot.
    type_offset: usize,
    /// CPython reserves a slot for code objects and non-empty frozensets
    /// before reading their fields but only fills it afterwards; a TYPE_REF
    /// to a slot still pending is rejected ("invalid reference").
    pending: bool,
    used: bool,
}

/// The reader keeps its own stack instead of recursing, so hostile input
/// cannot overflow the native stack.
enum Task {
    /// Read this many more objects, none of which may be NULL.
    Objects(u32),
    /// A code object's int32 first line number between its object fields.
    Int32,
    /// A dict reads key/value pairs until either of them is NULL.
    DictKey,
    DictValue,
    /// The object that reserved this slot is complete.
    Finish(usize),
}

struct Reader<'a> {
    data: &'a [u8],
    layout: MarshalLayout,
    pos: usize,
    slots: Vec<RefSlot>,
    /// (offset of the 4 index bytes, index as read) for every TYPE_REF.
    refs: Vec<(usize, u32)>,
    /// Type bytes carrying FLAG_REF on a type that never takes a slot
    /// (singletons, NULL, TYPE_REF itself): the flag is dead by construction.
    dead_flags: Vec<usize>,
    /// (offset, new type code) for strings whose interned bit is rewritten.
    retyped: Vec<(usize, u8)>,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], layout: MarshalLayout) -> Self {
        Reader {
            data,
            layout,
            pos: 0,
            slots: Vec::new(),
            refs: Vec::new(),
            dead_flags: Vec::new(),
            retyped: Vec::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PycError> {
        let bytes = self
            .pos
            .checked_add(n)
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or(PycError::Truncated { offset: self.pos })?;
        self.pos += n;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, PycError> {
        Ok(self.take(1)?[0])
    }

    fn peek_u8(&self) -> Result<u8, PycError> {
        self.data
            .get(self.pos)
            .copied()
            .ok_or(PycError::Truncated { offset: self.pos })
    }

    fn i32(&mut self) -> Result<i32, PycError> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Sizes are signed int32 on the wire; CPython rejects negative ones.
    fn size(&mut self) -> Result<u32, PycError> {
        let offset = self.pos;
        let size = self.i32()?;
        u32::try_from(size).map_err(|_| PycError::BadSize { size, offset })
    }

    fn skip_sized(&mut self) -> Result<(), PycError> {
        let n = self.size()?;
        self.take(n as usize).map(drop)
    }

    fn skip_short_sized(&mut self) -> Result<(), PycError> {
        let n = self.u8()?;
        self.take(usize::from(n)).map(drop)
    }

    fn slot(&mut self, flagged: bool, type_offset: usize, pending: bool) -> Option<usize> {
        if !flagged {
            return None;
        }
        self.slots.push(RefSlot {
            type_offset,
            pending,
            used: false,
        });
        Some(self.slots.len() - 1)
    }

    fn read_stream(&mut self) -> Result<(), PycError> {
        let mut stack = vec![Task::Objects(1)];
        while let Some(task) = stack.pop() {
            match task {
                Task::Objects(0) => {}
                Task::Objects(n) => {
                    stack.push(Task::Objects(n - 1));
                    self.object(&mut stack)?;
                }
                Task::Int32 => {
                    self.take(4)?;
                }
                Task::DictKey => {
                    if !self.dict_terminator()? {
                        stack.push(Task::DictValue);
                        self.object(&mut stack)?;
                    }
                }
                Task::DictValue => {
                    if !self.dict_terminator()? {
                        stack.push(Task::DictKey);
                        self.object(&mut stack)?;
                    }
                }
                Task::Finish(slot) => self.slots[slot].pending = false,
            }
        }
        if self.pos != self.data.len() {
            return Err(PycError::TrailingData { offset: self.pos });
        }
        Ok(())
    }

    /// Consumes a NULL if one is next. CPython ends a dict on a NULL value as
    /// well as on a NULL key, silently dropping the dangling key.
    fn dict_terminator(&mut self) -> Result<bool, PycError> {
        let code = self.peek_u8()?;
        if code & !FLAG_REF != b'0' {
            return Ok(false);
        }
        if code & FLAG_REF != 0 {
            self.dead_flags.push(self.pos);
        }
        self.pos += 1;
        Ok(true)
    }

    /// Reads one object's own bytes; its children, if any, are pushed onto
    /// `stack` and read after this returns.
    fn object(&mut self, stack: &mut Vec<Task>) -> Result<(), PycError> {
        let offset = self.pos;
        let code = self.u8()?;
        let flagged = code & FLAG_REF != 0;
        match code & !FLAG_REF {
            b'0' => return Err(PycError::UnexpectedNull { offset }),
            b'N' | b'F' | b'T' | b'S' | b'.' => {
                if flagged {
                    self.dead_flags.push(offset);
                }
            }
            b'i' => {
                self.take(4)?;
                self.slot(flagged, offset, false);
            }
            // TYPE_INT64: no longer written, still read.
            b'I' | b'g' => {
                self.take(8)?;
                self.slot(flagged, offset, false);
            }
            b'y' => {
                self.take(16)?;
                self.slot(flagged, offset, false);
            }
            b'f' => {
                self.skip_short_sized()?;
                self.slot(flagged, offset, false);
            }
            b'x' => {
                self.skip_short_sized()?;
                self.skip_short_sized()?;
                self.slot(flagged, offset, false);
            }
            b'l' => {
                // A signed count of 15-bit digits, two bytes each; the sign
                // is the number's.
                let digits = self.i32()?.unsigned_abs() as usize;
                self.take(digits * 2)?;
                self.slot(flagged, offset, false);
            }
            b's' => {
                self.skip_sized()?;
                self.slot(flagged, offset, false);
            }
            kind @ (b't' | b'u' | b'a' | b'A') => {
                let n = self.size()? as usize;
                let text = self.take(n)?;
                self.intern_as_compiler_would(offset, kind, text);
                self.slot(flagged, offset, false);
            }
            kind @ (b'z' | b'Z') => {
                let n = usize::from(self.u8()?);
                let text = self.take(n)?;
                self.intern_as_compiler_would(offset, kind, text);
                self.slot(flagged, offset, false);
            }
            b'(' | b'[' | b'<' => {
                let n = self.size()?;
                // Tuples, lists and sets enter the table before their items,
                // so an item may refer back to its own container.
                self.slot(flagged, offset, false);
                stack.push(Task::Objects(n));
            }
            b')' => {
                let n = self.u8()?;
                self.slot(flagged, offset, false);
                stack.push(Task::Objects(u32::from(n)));
            }
            b'>' => {
                let n = self.size()?;
                // The empty frozenset is a singleton created up front; any
                // other frozenset reserves its slot and fills it when done.
                if let Some(slot) = self.slot(flagged, offset, n != 0) {
                    if n != 0 {
                        stack.push(Task::Finish(slot));
                    }
                }
                stack.push(Task::Objects(n));
            }
            b'{' => {
                self.slot(flagged, offset, false);
                stack.push(Task::DictKey);
            }
            b'c' => {
                if let Some(slot) = self.slot(flagged, offset, true) {
                    stack.push(Task::Finish(slot));
                }
                self.take(4 * self.layout.code_leading_ints())?;
                stack.push(Task::Objects(self.layout.code_trailing_objects()));
                stack.push(Task::Int32);
                stack.push(Task::Objects(8));
            }
            b'r' => {
                let index_offset = self.pos;
                // Negative indices are out of range, like any index past
                // the slots seen so far.
                let index = self.i32()? as u32;
                match self.slots.get_mut(index as usize) {
                    Some(slot) if !slot.pending => slot.used = true,
                    _ => return Err(PycError::BadRef { index, offset }),
                }
                self.refs.push((index_offset, index));
                if flagged {
                    self.dead_flags.push(offset);
                }
            }
            other => {
                return Err(PycError::UnknownType {
                    code: other,
                    offset,
                })
            }
        }
        Ok(())
    }

    /// Whether marshal wrote a string as interned depends on whether anything
    /// in the dumping process interned an equal string first: one-character
    /// strings are process-wide singletons, so `'{'` comes out `z` in a fresh
    /// process and `Z` in one that interned it along the way. Loading interns
    /// names and identifier-like constants itself (code object creation runs
    /// the compiler's `all_name_chars` rule), so the bit changes nothing a
    /// program can observe but identity; the canonical form applies that same
    /// rule: interned exactly when the text is ASCII letters, digits and `_`.
    fn intern_as_compiler_would(&mut self, offset: usize, kind: u8, text: &[u8]) {
        let name_like = text.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
        let (plain, interned) = match kind {
            b't' | b'u' => (b'u', b't'),
            b'a' | b'A' => (b'a', b'A'),
            _ => (b'z', b'Z'),
        };
        let want = if name_like { interned } else { plain };
        if want != kind {
            self.retyped.push((offset, want));
        }
    }

    fn rewrite(&self) -> Vec<u8> {
        let mut out = self.data.to_vec();
        for &(offset, code) in &self.retyped {
            out[offset] = (out[offset] & FLAG_REF) | code;
        }
        // New index of each slot: the number of used slots before it.
        let mut renumbered = Vec::with_capacity(self.slots.len());
        let mut next: u32 = 0;
        for slot in &self.slots {
            renumbered.push(next);
            if slot.used {
                // Used slots are all below i32::MAX (a TYPE_REF reached
                // them), so this cannot overflow.
                next += 1;
            } else {
                out[slot.type_offset] &= !FLAG_REF;
            }
        }
        for &offset in &self.dead_flags {
            out[offset] &= !FLAG_REF;
        }
        for &(offset, old) in &self.refs {
            let new = renumbered[old as usize];
            out[offset..offset + 4].copy_from_slice(&new.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u8 = FLAG_REF;

    fn int(v: i32) -> Vec<u8> {
        let mut b = vec![b'i'];
        b.extend_from_slice(&v.to_le_bytes());
        b
    }

    /// A short ASCII string, interned exactly when it is name-like (the
    /// canonical spelling).
    fn short_ascii(flag: u8, s: &str) -> Vec<u8> {
        let name_like = s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let mut b = vec![if name_like { b'Z' } else { b'z' } | flag, s.len() as u8];
        b.extend_from_slice(s.as_bytes());
        b
    }

    fn small_tuple(flag: u8, items: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![b')' | flag, items.len() as u8];
        for item in items {
            b.extend_from_slice(item);
        }
        b
    }

    fn reference(index: u32) -> Vec<u8> {
        let mut b = vec![b'r'];
        b.extend_from_slice(&index.to_le_bytes());
        b
    }

    fn bytes_obj(flag: u8, data: &[u8]) -> Vec<u8> {
        let mut b = vec![b's' | flag];
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    /// A 3.11-layout code object: the eight object fields are `objects`
    /// (consts is objects[1]), followed by linetable and exceptiontable.
    fn code311(flag: u8, consts: Vec<u8>, name: Vec<u8>, filename: Vec<u8>) -> Vec<u8> {
        let mut b = vec![b'c' | flag];
        for v in [0i32, 0, 0, 1, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend(bytes_obj(0, b"\x97\x00d\x00S\x00")); // code
        b.extend(consts);
        b.extend(small_tuple(0, &[])); // names
        b.extend(small_tuple(0, &[])); // localsplusnames
        b.extend(bytes_obj(0, b"")); // localspluskinds
        b.extend(filename);
        b.extend(name.clone()); // name
        b.extend(name); // qualname
        b.extend_from_slice(&1i32.to_le_bytes()); // firstlineno
        b.extend(bytes_obj(0, b"")); // linetable
        b.extend(bytes_obj(0, b"")); // exceptiontable
        b
    }

    fn canon(data: &[u8]) -> Vec<u8> {
        canonicalize_marshal(data, MarshalLayout::Py311).expect("canonicalize")
    }

    #[test]
    fn unused_flag_is_cleared() {
        let mut input = int(7);
        input[0] |= F;
        assert_eq!(canon(&input), int(7));
    }

    #[test]
    fn unflagged_stream_is_unchanged() {
        let input = small_tuple(0, &[int(1), short_ascii(0, "x"), vec![b'N']]);
        assert_eq!(canon(&input), input);
    }

    #[test]
    fn used_ref_is_kept_and_renumbered() {
        // Slot 0 (unused) and slot 1 (used); the ref must become 0.
        let input = small_tuple(0, &[short_ascii(F, "a"), short_ascii(F, "b"), reference(1)]);
        let expected = small_tuple(0, &[short_ascii(0, "a"), short_ascii(F, "b"), reference(0)]);
        assert_eq!(canon(&input), expected);
    }

    #[test]
    fn container_takes_its_index_before_its_children() {
        // The flagged tuple is slot 0 and its flagged item slot 1, even
        // though the item is complete first.
        let input = small_tuple(0, &[small_tuple(F, &[short_ascii(F, "a")]), reference(1)]);
        let expected = small_tuple(0, &[small_tuple(0, &[short_ascii(F, "a")]), reference(0)]);
        assert_eq!(canon(&input), expected);
    }

    #[test]
    fn list_may_refer_to_itself() {
        let mut input = vec![b'[' | F];
        input.extend_from_slice(&1u32.to_le_bytes());
        input.extend(reference(0));
        assert_eq!(canon(&input), input);
    }

    #[test]
    fn pending_code_and_frozenset_cannot_be_referenced() {
        let self_ref_set = {
            let mut b = vec![b'>' | F];
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend(reference(0));
            b
        };
        assert!(matches!(
            canonicalize_marshal(&self_ref_set, MarshalLayout::Py311),
            Err(PycError::BadRef {
                index: 0,
                offset: 5
            })
        ));

        let self_ref_code = code311(F, reference(0), short_ascii(0, "f"), short_ascii(0, "f.py"));
        assert!(matches!(
            canonicalize_marshal(&self_ref_code, MarshalLayout::Py311),
            Err(PycError::BadRef { index: 0, .. })
        ));
    }

    #[test]
    fn empty_frozenset_is_registered_immediately() {
        let mut input = vec![b')', 2, b'>' | F];
        input.extend_from_slice(&0u32.to_le_bytes());
        input.extend(reference(0));
        assert_eq!(canon(&input), input);
    }

    #[test]
    fn nested_code_objects() {
        // Slots in stream order: outer code 0, consts tuple 1, inner code 2,
        // inner filename 3, inner name 4, inner qualname 5. Only slot 3 is
        // referenced (by the outer filename), so it becomes slot 0.
        let inner = |flag| {
            code311(
                flag,
                small_tuple(0, &[vec![b'N']]),
                short_ascii(flag, "inner"),
                short_ascii(F, "mod.py"),
            )
        };
        let outer = |flag, filename_ref| {
            code311(
                flag,
                small_tuple(flag, &[inner(flag), int(3)]),
                short_ascii(0, "<module>"),
                reference(filename_ref),
            )
        };
        let out = canon(&outer(F, 3));
        assert_eq!(out, outer(0, 0));
        assert_eq!(canon(&out), out);
    }

    #[test]
    fn py38_code_layout() {
        let mut b = vec![b'c' | F];
        for v in [0i32, 0, 0, 0, 1, 64] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend(bytes_obj(0, b"d\x00S\x00")); // code
        b.extend(small_tuple(0, &[vec![b'N']])); // consts
        for _ in 0..4 {
            b.extend(small_tuple(0, &[])); // names, varnames, freevars, cellvars
        }
        b.extend(short_ascii(F, "m.py")); // filename
        b.extend(reference(1)); // name
        b.extend_from_slice(&1i32.to_le_bytes());
        b.extend(bytes_obj(0, b"")); // lnotab
        let out = canonicalize_marshal(&b, MarshalLayout::Py38).expect("canonicalize");
        let mut expected = b.clone();
        expected[0] = b'c';
        let r = expected.len() - 5 - 4 - 5;
        expected[r + 1..r + 5].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(out, expected);
        // The 3.11 reader expects one field fewer up front and must not
        // accept the same bytes as a complete object.
        assert!(canonicalize_marshal(&b, MarshalLayout::Py311).is_err());
    }

    #[test]
    fn streams_differing_only_in_unused_flags_agree() {
        let a = small_tuple(
            F,
            &[
                short_ascii(F, "x"),
                int(1),
                short_ascii(F, "y"),
                reference(2),
            ],
        );
        // Here the slots are the int (0) and "y" (1), so the same reference
        // carries a different index in the raw stream.
        let mut one = int(1);
        one[0] |= F;
        let b = small_tuple(
            0,
            &[short_ascii(0, "x"), one, short_ascii(F, "y"), reference(1)],
        );
        assert_ne!(a, b);
        assert_eq!(canon(&a), canon(&b));
    }

    #[test]
    fn interned_bit_follows_the_compilers_rule() {
        // '{' interned by process state is written plain; "abc" not interned
        // is written interned; both keep their length and flags.
        let stream = [b')', 2, b'Z' | F, 1, b'{', b'z', 3, b'a', b'b', b'c'];
        let out = canon(&stream);
        assert_eq!(out, [b')', 2, b'z', 1, b'{', b'Z', 3, b'a', b'b', b'c']);
        let unicode = [b'(', 1, 0, 0, 0, b't', 2, 0, 0, 0, 0xc3, 0xa4];
        assert_eq!(canon(&unicode)[5], b'u');
        assert_eq!(canon(&out), out);
    }

    #[test]
    fn idempotent() {
        let input = small_tuple(
            F,
            &[
                short_ascii(F, "a"),
                short_ascii(F, "b"),
                reference(2),
                reference(0),
                short_ascii(F, "c"),
            ],
        );
        let once = canon(&input);
        assert_ne!(once, input);
        assert_eq!(canon(&once), once);
    }

    #[test]
    fn flags_on_singletons_and_refs_are_dead() {
        // A flagged None takes no slot, so the ref to slot 0 still means
        // the string.
        let input = small_tuple(
            0,
            &[vec![b'N' | F], short_ascii(F, "s"), {
                let mut r = reference(0);
                r[0] |= F;
                r
            }],
        );
        let expected = small_tuple(0, &[vec![b'N'], short_ascii(F, "s"), reference(0)]);
        assert_eq!(canon(&input), expected);
    }

    #[test]
    fn dict_ends_at_null_key_or_null_value() {
        let mut input = vec![b'{' | F];
        input.extend(short_ascii(F, "k"));
        input.extend(reference(1));
        input.push(b'0');
        let expected = {
            let mut b = vec![b'{'];
            b.extend(short_ascii(F, "k"));
            b.extend(reference(0));
            b.push(b'0');
            b
        };
        assert_eq!(canon(&input), expected);

        // A NULL value ends the dict too, so the final None is trailing.
        let mut dangling = vec![b'{'];
        dangling.extend(int(1));
        dangling.push(b'0' | F);
        dangling.push(b'N');
        assert!(matches!(
            canonicalize_marshal(&dangling, MarshalLayout::Py311),
            Err(PycError::TrailingData { offset: 7 })
        ));
        dangling.pop();
        assert_eq!(canon(&dangling), {
            let mut b = vec![b'{'];
            b.extend(int(1));
            b.push(b'0');
            b
        });
    }

    #[test]
    fn long_and_float_forms() {
        let mut input = vec![b'(' | F];
        input.extend_from_slice(&4u32.to_le_bytes());
        input.push(b'l');
        input.extend_from_slice(&(-2i32).to_le_bytes());
        input.extend_from_slice(&[1, 0, 1, 0]);
        input.extend_from_slice(&[b'g', 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
        input.extend_from_slice(&[b'x', 1, b'1', 3, b'2', b'.', b'5']);
        input.push(b'y' | F);
        input.extend_from_slice(&[0; 16]);
        let mut expected = input.clone();
        expected[0] = b'(';
        let y = expected.len() - 17;
        expected[y] = b'y';
        assert_eq!(canon(&input), expected);
    }

    #[test]
    fn truncated_input() {
        let full = small_tuple(0, &[short_ascii(0, "abc"), int(5)]);
        for len in 0..full.len() {
            assert!(
                matches!(
                    canonicalize_marshal(&full[..len], MarshalLayout::Py311),
                    Err(PycError::Truncated { .. })
                ),
                "prefix of length {len}"
            );
        }
        let mut huge = vec![b's'];
        huge.extend_from_slice(&i32::MAX.to_le_bytes());
        assert!(matches!(
            canonicalize_marshal(&huge, MarshalLayout::Py311),
            Err(PycError::Truncated { offset: 5 })
        ));
    }

    #[test]
    fn unknown_type() {
        for code in [b'?', b'Q', b':', b'?' | F] {
            let input = small_tuple(0, &[int(1), vec![code]]);
            assert!(matches!(
                canonicalize_marshal(&input, MarshalLayout::Py311),
                Err(PycError::UnknownType { code: c, offset: 7 }) if c == code & !F
            ));
        }
    }

    #[test]
    fn bad_ref_index() {
        let forward = small_tuple(0, &[reference(0), short_ascii(F, "a")]);
        assert!(matches!(
            canonicalize_marshal(&forward, MarshalLayout::Py311),
            Err(PycError::BadRef {
                index: 0,
                offset: 2
            })
        ));
        let negative = small_tuple(0, &[short_ascii(F, "a"), reference(u32::MAX)]);
        assert!(matches!(
            canonicalize_marshal(&negative, MarshalLayout::Py311),
            Err(PycError::BadRef {
                index: u32::MAX,
                ..
            })
        ));
    }

    #[test]
    fn null_and_negative_sizes_are_rejected() {
        assert!(matches!(
            canonicalize_marshal(&small_tuple(0, &[vec![b'0']]), MarshalLayout::Py311),
            Err(PycError::UnexpectedNull { offset: 2 })
        ));
        let mut neg = vec![b'('];
        neg.extend_from_slice(&(-1i32).to_le_bytes());
        assert!(matches!(
            canonicalize_marshal(&neg, MarshalLayout::Py311),
            Err(PycError::BadSize {
                size: -1,
                offset: 1
            })
        ));
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let depth = 200_000;
        let mut input = Vec::with_capacity(depth * 2 + 1);
        for _ in 0..depth {
            input.extend_from_slice(&[b')' | F, 1]);
        }
        input.push(b'N');
        let out = canon(&input);
        assert!(out[..depth * 2].chunks(2).all(|c| c == [b')', 1]));
    }

    fn pyc(magic: [u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = magic.to_vec();
        b.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn pyc_header_is_kept() {
        let mut body = int(9);
        body[0] |= F;
        let out = canonicalize_pyc(&pyc([0xa7, 0x0d, 0x0d, 0x0a], &body)).expect("pyc");
        assert_eq!(out, pyc([0xa7, 0x0d, 0x0d, 0x0a], &int(9)));
    }

    #[test]
    fn pyc_errors() {
        assert!(matches!(
            canonicalize_pyc(&[0xa7, 0x0d, 0x0d, 0x0a, 0, 0]),
            Err(PycError::BadHeader)
        ));
        assert!(matches!(
            canonicalize_pyc(&pyc([0x42, 0x0d, 0x0d, 0x0a], &int(1))),
            Err(PycError::UnsupportedMagic {
                magic: [0x42, 0x0d, 0x0d, 0x0a]
            })
        ));
        let mut bad_flags = pyc([0xa7, 0x0d, 0x0d, 0x0a], &int(1));
        bad_flags[4] = 4;
        assert!(matches!(
            canonicalize_pyc(&bad_flags),
            Err(PycError::BadHeader)
        ));
        assert!(matches!(
            canonicalize_pyc(&pyc([0xa7, 0x0d, 0x0d, 0x0a], &[b'i', 0])),
            Err(PycError::Truncated { offset: 17 })
        ));
    }

    #[test]
    fn magic_numbers() {
        let m = |n: u16| {
            let [a, b] = n.to_le_bytes();
            layout_for_magic([a, b, b'\r', b'\n'])
        };
        assert_eq!(m(3413), Some(MarshalLayout::Py38));
        assert_eq!(m(3425), Some(MarshalLayout::Py38));
        assert_eq!(m(3439), Some(MarshalLayout::Py38));
        assert_eq!(m(3495), Some(MarshalLayout::Py311));
        assert_eq!(m(3531), Some(MarshalLayout::Py311));
        assert_eq!(m(3571), Some(MarshalLayout::Py311));
        assert_eq!(m(3394), None);
        assert_eq!(m(3600), None);
        assert_eq!(layout_for_magic([0xa7, 0x0d, 0x0d, 0x00]), None);
    }
}
