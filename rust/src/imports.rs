//! Import-statement scanner for a single Python source file.
//!
//! Building a module import graph only needs the `import`/`from` statements
//! and a little of the block structure around them, so instead of a full
//! parser this is a tokenizer that tracks exactly what decides where a
//! logical line ends (strings, f-strings, brackets, comments, backslash
//! continuations) plus an indentation-based block stack. That keeps it a
//! single forward pass over the bytes with no per-token allocation, which is
//! what makes it an order of magnitude faster than `ast.parse`.
//!
//! Everything is done on bytes: all syntax that matters is ASCII, so the same
//! code handles UTF-8 and legacy-encoded (PEP 263) files.

/// One `import` / `from ... import` statement (an `import a, b` statement
/// yields one `Import` per module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// Dotted module as written, without leading dots ("" for `from . import x`).
    pub module: String,
    /// Number of leading dots (0 = absolute import).
    pub level: u32,
    /// Imported names for `from M import a, b as c` (`["a", "b"]`), `["*"]`
    /// for a star import, empty for a plain `import M`.
    pub names: Vec<String>,
    /// 1-based line of the `import` / `from` keyword.
    pub line: u32,
    /// Inside an `if TYPE_CHECKING:` block, so not a runtime edge.
    pub type_checking: bool,
    /// Inside a `try:` body whose handlers catch `ImportError` /
    /// `ModuleNotFoundError` (or a `with suppress(ImportError):` block).
    pub guarded: bool,
    /// Nested inside a `def` (a lazy import).
    pub in_function: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScannedModule {
    pub imports: Vec<Import>,
    /// Names bound at module scope at runtime, sorted and deduplicated.
    pub top_level_names: Vec<String>,
    /// PEP 263 coding cookie on line 1 or 2.
    pub has_encoding_declaration: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("source is not valid UTF-8 (line {line}) and has no coding declaration")]
    NotUtf8 { line: u32 },
    #[error("unterminated {what} starting on line {line}")]
    Unterminated { what: &'static str, line: u32 },
}

/// Extract the import statements and module-level names of one Python file.
///
/// # Errors
///
/// [`ScanError::NotUtf8`] if the source is not UTF-8 and declares no other
/// encoding; [`ScanError::Unterminated`] if a string or bracket is still
/// open at end of input (the file would not compile either).
pub fn scan_imports(source: &[u8]) -> Result<ScannedModule, ScanError> {
    let src = source.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(source);
    let has_encoding_declaration = has_coding_cookie(src);
    if let Err(e) = std::str::from_utf8(src) {
        // With a cookie the file is in some other (ASCII-compatible) encoding
        // and the byte-wise scan is still exact for keywords and module names.
        if !has_encoding_declaration {
            let line = count_newlines(&src[..e.valid_up_to()]).saturating_add(1);
            return Err(ScanError::NotUtf8 { line });
        }
    }

    let mut lexer = Lexer::new(src);
    let mut analyzer = Analyzer::new(src);
    let mut toks = Vec::with_capacity(64);
    while let Some(indent) = lexer.next_logical_line(&mut toks)? {
        analyzer.logical_line(&toks, indent, lexer.summary);
    }

    let mut top_level_names = analyzer.names;
    top_level_names.sort_unstable();
    top_level_names.dedup();
    Ok(ScannedModule {
        imports: analyzer.imports,
        top_level_names,
        has_encoding_declaration,
    })
}

/// Python's own limit is 150 nested f-strings and 200 nested brackets; the
/// bound keeps hostile input from overflowing the stack of the recursive
/// f-string and assignment-target code.
const MAX_NESTING: u32 = 200;

fn count_newlines(bytes: &[u8]) -> u32 {
    let mut n: u32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => n = n.saturating_add(1),
            // A lone CR is a line break for Python's tokenizer; CRLF counts once.
            b'\r' if bytes.get(i + 1) != Some(&b'\n') => n = n.saturating_add(1),
            _ => {}
        }
        i += 1;
    }
    n
}

/// PEP 263, matching what `tokenize.detect_encoding` accepts: the regex
/// `^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+` on line 1, or on line 2 if line 1
/// is blank or a comment.
fn has_coding_cookie(src: &[u8]) -> bool {
    let line_end = |s: &[u8]| {
        s.iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(s.len())
    };
    let first_end = line_end(src);
    let first = &src[..first_end];
    if is_cookie_line(first) {
        return true;
    }
    let trimmed = trim_start_ws(first);
    if !(trimmed.is_empty() || trimmed[0] == b'#') {
        return false;
    }
    let ([b'\r', b'\n', rest @ ..] | [b'\n' | b'\r', rest @ ..]) = &src[first_end..] else {
        return false;
    };
    is_cookie_line(&rest[..line_end(rest)])
}

fn trim_start_ws(line: &[u8]) -> &[u8] {
    let n = line
        .iter()
        .take_while(|&&b| matches!(b, b' ' | b'\t' | b'\x0c'))
        .count();
    &line[n..]
}

fn is_cookie_line(line: &[u8]) -> bool {
    let line = trim_start_ws(line);
    if line.first() != Some(&b'#') {
        return false;
    }
    let mut from = 1;
    while let Some(off) = find(&line[from..], b"coding") {
        let after = from + off + b"coding".len();
        if matches!(line.get(after), Some(b':' | b'=')) {
            let value = trim_start_ws_no_ff(&line[after + 1..]);
            if value
                .first()
                .is_some_and(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return true;
            }
        }
        from = from + off + 1;
    }
    false
}

fn trim_start_ws_no_ff(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Name,
    Op,
    Str,
    Num,
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
    line: u32,
}

// Byte classes, so that the hot loops (identifiers, string bodies, runs of
// blanks) test one table entry per byte instead of a chain of comparisons.
const NAME: u8 = 1;
const BLANK: u8 = 2;
/// Bytes that may end a run of ordinary text inside a '...' / "..." string.
const STOP_SQ: u8 = 4;
const STOP_DQ: u8 = 8;
/// The same inside an f-string, where braces matter too.
const STOP_FSQ: u8 = 16;
const STOP_FDQ: u8 = 32;

static CLASS: [u8; 256] = build_classes();

const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        // Bytes >= 0x80 are parts of non-ASCII identifiers (or, in legacy
        // encodings, of identifiers we never need to interpret).
        if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            t[b] |= NAME;
        }
        if c == b' ' || c == b'\t' || c == 0x0c {
            t[b] |= BLANK;
        }
        if c == b'\\' || c == b'\n' || c == b'\r' {
            t[b] |= STOP_SQ | STOP_DQ | STOP_FSQ | STOP_FDQ;
        }
        if c == b'{' || c == b'}' {
            t[b] |= STOP_FSQ | STOP_FDQ;
        }
        if c == b'\'' {
            t[b] |= STOP_SQ | STOP_FSQ;
        }
        if c == b'"' {
            t[b] |= STOP_DQ | STOP_FDQ;
        }
        b += 1;
    }
    t
}

#[inline]
fn is_name_start(b: u8) -> bool {
    CLASS[b as usize] & NAME != 0 && !b.is_ascii_digit()
}

/// Offset of the first byte in `s` whose class intersects `mask`.
#[inline]
fn find_class(s: &[u8], mask: u8) -> Option<usize> {
    s.iter().position(|&c| CLASS[c as usize] & mask != 0)
}

/// `(raw, formatted)` if `word` is a string prefix such as `rb` or `F`.
/// Invalid combinations (`ub`) are accepted too: erring on the side of
/// "this is a string" never turns string text into code.
fn string_prefix(word: &[u8]) -> Option<(bool, bool)> {
    if word.is_empty() || word.len() > 2 {
        return None;
    }
    let mut raw = false;
    let mut fmt = false;
    for &b in word {
        match b.to_ascii_lowercase() {
            b'r' => raw = true,
            // `t` is the PEP 750 template-string prefix, lexed like `f`.
            b'f' | b't' => fmt = true,
            b'b' | b'u' => {}
            _ => return None,
        }
    }
    Some((raw, fmt))
}

/// The part of an f-string's state that nested fields need to see.
#[derive(Clone, Copy)]
struct FStr {
    quote: u8,
    triple: bool,
    raw: bool,
    start_line: u32,
}

/// Facts about a logical line gathered while lexing it, so that the
/// analyzer can dismiss the vast majority of lines (no `import`, no
/// module-level assignment) without walking their tokens again.
#[derive(Clone, Copy, Default)]
struct LineSummary {
    has_import: bool,
    /// A name `import_module` or `__import__`: the line may hold a dynamic
    /// import with a constant name (see `Analyzer::dynamic_imports`).
    has_dynamic: bool,
    has_semicolon: bool,
    /// Index of the last `=` outside brackets: no assignment target can
    /// come after it.
    last_assign: Option<usize>,
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
    /// Lines of the currently open brackets, for the EOF error message.
    open: Vec<u32>,
    summary: LineSummary,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a [u8]) -> Self {
        Lexer {
            src,
            pos: 0,
            line: 1,
            open: Vec::new(),
            summary: LineSummary::default(),
        }
    }

    #[inline]
    fn peek(&self, off: usize) -> Option<u8> {
        self.src.get(self.pos + off).copied()
    }

    /// Consume one line break (LF, CRLF or a lone CR).
    #[inline]
    fn eat_newline(&mut self) {
        if self.src.get(self.pos) == Some(&b'\r') && self.src.get(self.pos + 1) == Some(&b'\n') {
            self.pos += 2;
        } else {
            self.pos += 1;
        }
        self.line = self.line.saturating_add(1);
    }

    /// Leave `pos` on the line break (or EOF) that ends the comment.
    fn skip_comment(&mut self) {
        let rest = &self.src[self.pos..];
        self.pos += rest
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(rest.len());
    }

    /// Fill `toks` with the next logical line and return its indentation
    /// column, or `None` at end of input. Blank and comment-only lines are
    /// skipped because they do not take part in indentation.
    fn next_logical_line(&mut self, toks: &mut Vec<Tok>) -> Result<Option<u32>, ScanError> {
        toks.clear();
        loop {
            let mut col: u32 = 0;
            while let Some(b) = self.src.get(self.pos) {
                match b {
                    b' ' => col = col.saturating_add(1),
                    b'\t' => col = col.saturating_add(8 - col % 8),
                    // Python resets the column on a form feed.
                    b'\x0c' => col = 0,
                    _ => break,
                }
                self.pos += 1;
            }
            match self.src.get(self.pos) {
                None => return Ok(None),
                Some(b'\n' | b'\r') => {
                    self.eat_newline();
                    continue;
                }
                Some(b'#') => {
                    self.skip_comment();
                    continue;
                }
                Some(_) => {}
            }
            self.lex_line(toks)?;
            if !toks.is_empty() {
                return Ok(Some(col));
            }
        }
    }

    fn push(&self, toks: &mut Vec<Tok>, kind: Kind, start: usize, line: u32) {
        toks.push(Tok {
            kind,
            start,
            end: self.pos,
            line,
        });
    }

    fn lex_line(&mut self, toks: &mut Vec<Tok>) -> Result<(), ScanError> {
        self.open.clear();
        self.summary = LineSummary::default();
        loop {
            let Some(&b) = self.src.get(self.pos) else {
                return match self.open.last() {
                    Some(&line) => Err(ScanError::Unterminated {
                        what: "bracket",
                        line,
                    }),
                    None => Ok(()),
                };
            };
            let start = self.pos;
            let line = self.line;
            match b {
                b' ' | b'\t' | b'\x0c' => {
                    let rest = &self.src[self.pos..];
                    self.pos += rest
                        .iter()
                        .position(|&c| CLASS[c as usize] & BLANK == 0)
                        .unwrap_or(rest.len());
                }
                b'\n' | b'\r' => {
                    self.eat_newline();
                    if self.open.is_empty() {
                        return Ok(());
                    }
                }
                b'#' => self.skip_comment(),
                b'\\' => {
                    self.pos += 1;
                    if matches!(self.peek(0), Some(b'\n' | b'\r')) {
                        self.eat_newline();
                    } else {
                        self.push(toks, Kind::Other, start, line);
                    }
                }
                b'"' | b'\'' => {
                    self.lex_string(false, false, 0)?;
                    self.push(toks, Kind::Str, start, line);
                }
                b'0'..=b'9' => {
                    self.lex_number();
                    self.push(toks, Kind::Num, start, line);
                }
                b'.' => {
                    if self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
                        self.lex_number();
                        self.push(toks, Kind::Num, start, line);
                    } else {
                        self.pos += if self.peek(1) == Some(b'.') && self.peek(2) == Some(b'.') {
                            3
                        } else {
                            1
                        };
                        self.push(toks, Kind::Op, start, line);
                    }
                }
                b'(' | b'[' | b'{' => {
                    self.open.push(line);
                    self.pos += 1;
                    self.push(toks, Kind::Op, start, line);
                }
                b')' | b']' | b'}' => {
                    self.open.pop();
                    self.pos += 1;
                    self.push(toks, Kind::Op, start, line);
                }
                _ if is_name_start(b) => {
                    if self.lex_name_or_prefixed_string(0)? {
                        self.push(toks, Kind::Str, start, line);
                    } else {
                        match &self.src[start..self.pos] {
                            b"import" => self.summary.has_import = true,
                            b"import_module" | b"__import__" => self.summary.has_dynamic = true,
                            _ => {}
                        }
                        self.push(toks, Kind::Name, start, line);
                    }
                }
                _ => {
                    self.lex_op();
                    if self.open.is_empty() {
                        match &self.src[start..self.pos] {
                            b";" => self.summary.has_semicolon = true,
                            b"=" => self.summary.last_assign = Some(toks.len()),
                            _ => {}
                        }
                    }
                    self.push(toks, Kind::Op, start, line);
                }
            }
        }
    }

    /// Returns true if the name turned out to be a string prefix.
    fn lex_name_or_prefixed_string(&mut self, level: u32) -> Result<bool, ScanError> {
        let start = self.pos;
        let rest = &self.src[start..];
        self.pos += rest
            .iter()
            .position(|&c| CLASS[c as usize] & NAME == 0)
            .unwrap_or(rest.len());
        if matches!(self.peek(0), Some(b'"' | b'\'')) {
            if let Some((raw, fmt)) = string_prefix(&self.src[start..self.pos]) {
                self.lex_string(raw, fmt, level)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn lex_number(&mut self) {
        // Exponent signs (`1e+5`) end the token early; harmless, because a
        // number is never part of anything the analyzer looks at.
        while self
            .peek(0)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        {
            self.pos += 1;
        }
    }

    fn lex_op(&mut self) {
        let b = self.src[self.pos];
        self.pos += 1;
        match b {
            b'*' | b'/' | b'<' | b'>' if self.peek(0) == Some(b) => self.pos += 1,
            b'-' if self.peek(0) == Some(b'>') => {
                self.pos += 1;
                return;
            }
            _ => {}
        }
        // Keeping `==`, `<=`, `+=`, `:=` ... distinct from `=` is what lets
        // the analyzer find assignment targets by splitting on `=`.
        if self.peek(0) == Some(b'=') && b"=<>!+-*/%&|^@:".contains(&b) {
            self.pos += 1;
        }
    }

    /// `pos` is on the opening quote.
    fn lex_string(&mut self, raw: bool, fmt: bool, level: u32) -> Result<(), ScanError> {
        let quote = self.src[self.pos];
        let start_line = self.line;
        if level > MAX_NESTING {
            return Err(ScanError::Unterminated {
                what: "string (nested too deeply)",
                line: start_line,
            });
        }
        let triple = self.peek(1) == Some(quote) && self.peek(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        if fmt {
            let f = FStr {
                quote,
                triple,
                raw,
                start_line,
            };
            self.lex_fstring_body(f, level)
        } else {
            self.lex_plain_body(quote, triple, start_line)
        }
    }

    fn unterminated_string(line: u32) -> ScanError {
        ScanError::Unterminated {
            what: "string",
            line,
        }
    }

    /// Handle the closing-quote candidate at `pos`; true if the string ended.
    #[inline]
    fn at_quote_ends(&mut self, quote: u8, triple: bool) -> bool {
        if !triple {
            self.pos += 1;
            return true;
        }
        if self.peek(1) == Some(quote) && self.peek(2) == Some(quote) {
            self.pos += 3;
            return true;
        }
        self.pos += 1;
        false
    }

    fn lex_plain_body(
        &mut self,
        quote: u8,
        triple: bool,
        start_line: u32,
    ) -> Result<(), ScanError> {
        loop {
            let rest = &self.src[self.pos..];
            let stop = if quote == b'"' { STOP_DQ } else { STOP_SQ };
            let Some(i) = find_class(rest, stop) else {
                return Err(Self::unterminated_string(start_line));
            };
            self.pos += i;
            match rest[i] {
                // Raw strings too: `r"\""` does not end at the escaped quote.
                b'\\' => {
                    self.pos += 1;
                    match self.peek(0) {
                        Some(b'\n' | b'\r') => self.eat_newline(),
                        Some(_) => self.pos += 1,
                        None => {}
                    }
                }
                b'\n' | b'\r' => {
                    if !triple {
                        return Err(Self::unterminated_string(start_line));
                    }
                    self.eat_newline();
                }
                _ => {
                    if self.at_quote_ends(quote, triple) {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn lex_fstring_body(&mut self, f: FStr, level: u32) -> Result<(), ScanError> {
        let FStr {
            quote,
            triple,
            raw,
            start_line,
        } = f;
        loop {
            let rest = &self.src[self.pos..];
            let stop = if quote == b'"' { STOP_FDQ } else { STOP_FSQ };
            let Some(i) = find_class(rest, stop) else {
                return Err(Self::unterminated_string(start_line));
            };
            self.pos += i;
            match rest[i] {
                b'\\' => {
                    self.pos += 1;
                    match self.peek(0) {
                        Some(b'\n' | b'\r') => self.eat_newline(),
                        // `\N{EM DASH}` is an escape, not a replacement field.
                        Some(b'N') if !raw && self.peek(1) == Some(b'{') => {
                            let rest = &self.src[self.pos..];
                            let stop = rest
                                .iter()
                                .position(|&c| matches!(c, b'}' | b'\n' | b'\r'))
                                .unwrap_or(rest.len());
                            self.pos += stop;
                            if self.peek(0) == Some(b'}') {
                                self.pos += 1;
                            }
                        }
                        // In raw f-strings `\{` still opens a field; only a
                        // quote or backslash is shielded from its usual role.
                        Some(c) if !raw || c == quote || c == b'\\' => self.pos += 1,
                        _ => {}
                    }
                }
                b'\n' | b'\r' => {
                    if !triple {
                        return Err(Self::unterminated_string(start_line));
                    }
                    self.eat_newline();
                }
                b'{' => {
                    if self.peek(1) == Some(b'{') {
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                        self.lex_fstring_field(f, level + 1)?;
                    }
                }
                b'}' => self.pos += 1,
                _ => {
                    if self.at_quote_ends(quote, triple) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// A replacement field: code up to the matching `}` (with an optional
    /// format spec after a top-level `:`). Lexed like ordinary code so that
    /// nested strings, even ones reusing the outer quote (PEP 701), are
    /// skipped as a whole.
    fn lex_fstring_field(&mut self, f: FStr, level: u32) -> Result<(), ScanError> {
        if level > MAX_NESTING {
            return Err(ScanError::Unterminated {
                what: "f-string (nested too deeply)",
                line: f.start_line,
            });
        }
        let mut depth: u32 = 0;
        loop {
            let Some(b) = self.peek(0) else {
                return Err(Self::unterminated_string(f.start_line));
            };
            match b {
                b'\n' | b'\r' => self.eat_newline(),
                b'#' => self.skip_comment(),
                b'(' | b'[' | b'{' => {
                    depth = depth.saturating_add(1);
                    self.pos += 1;
                }
                b')' | b']' => {
                    depth = depth.saturating_sub(1);
                    self.pos += 1;
                }
                b'}' => {
                    self.pos += 1;
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                b':' if depth == 0 => {
                    self.pos += 1;
                    return self.lex_format_spec(f, level);
                }
                b'"' | b'\'' => self.lex_string(false, false, level + 1)?,
                _ if is_name_start(b) => {
                    self.lex_name_or_prefixed_string(level + 1)?;
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Format spec of a replacement field: literal text up to the field's
    /// closing `}`, possibly with nested `{...}` fields.
    fn lex_format_spec(&mut self, f: FStr, level: u32) -> Result<(), ScanError> {
        loop {
            let rest = &self.src[self.pos..];
            let Some(i) = rest
                .iter()
                .position(|&c| matches!(c, b'{' | b'}' | b'\\' | b'\n' | b'\r'))
            else {
                return Err(Self::unterminated_string(f.start_line));
            };
            self.pos += i;
            match rest[i] {
                b'{' => {
                    self.pos += 1;
                    self.lex_fstring_field(f, level + 1)?;
                }
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {
                    self.pos += 1;
                    match self.peek(0) {
                        Some(b'\n' | b'\r') => self.eat_newline(),
                        Some(_) => self.pos += 1,
                        None => {}
                    }
                }
                _ => {
                    if !f.triple {
                        return Err(Self::unterminated_string(f.start_line));
                    }
                    self.eat_newline();
                }
            }
        }
    }
}

/// `bytes` as a dotted module name (`a.b`; empty is allowed), or None if a
/// component is empty.
fn dotted_name(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    (text.is_empty() || text.split('.').all(|c| !c.is_empty())).then_some(text)
}

// ---------------------------------------------------------------------------
// Analyzer: block structure and statements over logical lines
// ---------------------------------------------------------------------------

/// What holds for code in a block's body.
#[derive(Clone, Copy)]
struct Ctx {
    type_checking: bool,
    /// Set directly only by `with suppress(ImportError)`; `try` bodies are
    /// marked after the fact once their handlers are known.
    guarded: bool,
    in_function: bool,
    module_scope: bool,
    func_depth: u32,
}

const ROOT: Ctx = Ctx {
    type_checking: false,
    guarded: false,
    in_function: false,
    module_scope: true,
    func_depth: 0,
};

#[derive(Clone, Copy)]
enum BlockKind {
    Plain,
    /// A `match` statement: only directly inside one is `case` a keyword.
    Match,
    /// An `if`/`elif` clause; `else_reach_tc` says the following `elif` /
    /// `else` only runs when `TYPE_CHECKING` is true (after `if not TYPE_CHECKING`).
    If {
        else_reach_tc: bool,
    },
    /// A `try` body whose imports start at index `start`.
    Try {
        start: usize,
    },
    /// An `except` clause, remembering the try body's import range for the
    /// handlers that follow it.
    Handler {
        start: usize,
        end: usize,
    },
}

#[derive(Clone, Copy)]
struct Block {
    /// Indentation of the header line; the block lasts while logical lines
    /// are indented deeper.
    indent: u32,
    kind: BlockKind,
    ctx: Ctx,
}

struct Analyzer<'a> {
    src: &'a [u8],
    blocks: Vec<Block>,
    imports: Vec<Import>,
    /// `func_depth` of each import, parallel to `imports`: a `try` only
    /// guards imports that run when the try body runs, not ones in functions
    /// defined there.
    import_depth: Vec<u32>,
    names: Vec<String>,
    /// Names bound so far by `from importlib import import_module [as x]`.
    import_module_names: Vec<Vec<u8>>,
    /// One of them is not `import_module` (which the lexer spots itself).
    import_module_aliased: bool,
}

fn is_tc_name(src: &[u8], toks: &[Tok]) -> bool {
    // `TYPE_CHECKING` or any dotted `x.y.TYPE_CHECKING`.
    let Some(last) = toks.last() else {
        return false;
    };
    if last.kind != Kind::Name || &src[last.start..last.end] != b"TYPE_CHECKING" {
        return false;
    }
    toks.iter().enumerate().all(|(i, t)| {
        if i % 2 == 0 {
            t.kind == Kind::Name
        } else {
            t.kind == Kind::Op && &src[t.start..t.end] == b"."
        }
    })
}

impl<'a> Analyzer<'a> {
    fn new(src: &'a [u8]) -> Self {
        Analyzer {
            src,
            blocks: Vec::new(),
            imports: Vec::new(),
            import_depth: Vec::new(),
            names: Vec::new(),
            import_module_names: Vec::new(),
            import_module_aliased: false,
        }
    }

    #[inline]
    fn text(&self, t: &Tok) -> &'a [u8] {
        &self.src[t.start..t.end]
    }

    #[inline]
    fn is(&self, t: Option<&Tok>, s: &[u8]) -> bool {
        t.is_some_and(|t| t.kind != Kind::Str && self.text(t) == s)
    }

    #[inline]
    fn is_name(&self, t: Option<&Tok>) -> bool {
        t.is_some_and(|t| t.kind == Kind::Name)
    }

    fn string(&self, t: &Tok) -> String {
        String::from_utf8_lossy(self.text(t)).into_owned()
    }

    fn ctx(&self) -> Ctx {
        self.blocks.last().map_or(ROOT, |b| b.ctx)
    }

    fn logical_line(&mut self, toks: &[Tok], indent: u32, summary: LineSummary) {
        // Close every block this line is not inside. The one at exactly this
        // indentation (there is at most one) is the clause an `else` /
        // `elif` / `except` on this line continues.
        let mut closed = None;
        while let Some(top) = self.blocks.last() {
            if top.indent < indent {
                break;
            }
            let top = *top;
            self.blocks.pop();
            if top.indent == indent {
                closed = Some(top);
            }
        }
        let mut summary = summary;
        if !summary.has_dynamic && self.import_module_aliased {
            summary.has_dynamic = toks.iter().any(|t| {
                t.kind == Kind::Name
                    && self
                        .import_module_names
                        .iter()
                        .any(|n| n.as_slice() == self.text(t))
            });
        }
        let mut i = 0;
        while i < toks.len() {
            i = self.statement(toks, i, indent, closed.take(), summary);
        }
    }

    /// Index of the `:` ending a compound-statement header that starts at
    /// `from`, skipping colons inside brackets and those of lambdas.
    fn header_colon(&self, toks: &[Tok], from: usize) -> Option<usize> {
        let mut depth: u32 = 0;
        let mut lambdas: u32 = 0;
        for (i, t) in toks.iter().enumerate().skip(from) {
            if t.kind == Kind::Name {
                if depth == 0 && self.text(t) == b"lambda" {
                    lambdas = lambdas.saturating_add(1);
                }
                continue;
            }
            if t.kind != Kind::Op {
                continue;
            }
            match self.text(t) {
                b"(" | b"[" | b"{" => depth = depth.saturating_add(1),
                b")" | b"]" | b"}" => depth = depth.saturating_sub(1),
                b":" if depth == 0 => {
                    if lambdas == 0 {
                        return Some(i);
                    }
                    lambdas -= 1;
                }
                b";" if depth == 0 => return None,
                _ => {}
            }
        }
        None
    }

    fn statement_end(&self, toks: &[Tok], from: usize) -> usize {
        toks[from..]
            .iter()
            .position(|t| t.kind == Kind::Op && self.text(t) == b";")
            .map_or(toks.len(), |p| from + p)
    }

    /// Handle the statement starting at `i`; return where the next one starts.
    fn statement(
        &mut self,
        toks: &[Tok],
        i: usize,
        indent: u32,
        closed: Option<Block>,
        summary: LineSummary,
    ) -> usize {
        let first = &toks[i];
        let kw: &[u8] = if first.kind == Kind::Name {
            self.text(first)
        } else {
            b""
        };
        let is_header_kw = matches!(
            kw,
            b"if"
                | b"elif"
                | b"else"
                | b"while"
                | b"for"
                | b"with"
                | b"try"
                | b"except"
                | b"finally"
                | b"def"
                | b"class"
                | b"async"
        );
        // `match` and `case` are soft keywords. A `match` header always ends
        // its line (its body must be an indented block) and no simple
        // statement ends in a colon; `case` can be followed by a body on the
        // same line, so it is recognised by its enclosing `match` instead.
        let is_soft_header = match kw {
            b"match" => toks.len() > i + 2 && self.is(toks.last(), b":"),
            b"case" => {
                toks.len() > i + 2
                    && matches!(
                        self.blocks.last(),
                        Some(Block {
                            kind: BlockKind::Match,
                            ..
                        })
                    )
            }
            _ => false,
        };
        if is_header_kw || is_soft_header {
            if let Some(colon) = self.header_colon(toks, i + 1) {
                if kw != b"match" || colon == toks.len() - 1 {
                    let expr_ctx = self.header(toks, i, colon, indent, closed);
                    // Calls in a `case` pattern or guard are not read: a
                    // class pattern looks like a call and is none.
                    if summary.has_dynamic && kw != b"case" {
                        self.dynamic_imports(&toks[i + 1..colon], expr_ctx);
                    }
                    return colon + 1;
                }
            }
        }

        if !summary.has_import && !summary.has_dynamic && summary.last_assign.is_none() {
            // Nothing after this point can record anything.
            return toks.len();
        }
        let end = if summary.has_semicolon {
            self.statement_end(toks, i)
        } else {
            toks.len()
        };
        let stmt = &toks[i..end];
        match kw {
            b"import" => self.import_stmt(&stmt[1..], first.line),
            b"from" => self.import_from_stmt(&stmt[1..], first.line),
            _ => {
                if let Some(last) = summary.last_assign.filter(|&k| k > i) {
                    if self.binds_names() {
                        self.bind_assignment(stmt, last - i);
                    }
                }
                if summary.has_dynamic {
                    self.dynamic_imports(stmt, self.ctx());
                }
            }
        }
        end + 1
    }

    /// Open the block of the compound statement whose header is
    /// `toks[i..=colon]`; returns the context its header's expressions run in.
    fn header(
        &mut self,
        toks: &[Tok],
        i: usize,
        colon: usize,
        indent: u32,
        closed: Option<Block>,
    ) -> Ctx {
        let parent = self.ctx();
        let mut ctx = parent;
        let mut expr_ctx = parent;
        let mut kind = BlockKind::Plain;
        let mut kw = self.text(&toks[i]);
        let mut head = i + 1;
        if kw == b"async" {
            if let Some(t) = toks.get(i + 1).filter(|t| t.kind == Kind::Name) {
                kw = self.text(t);
                head = i + 2;
            }
        }
        let cond = &toks[head.min(colon)..colon];
        match kw {
            b"if" => {
                let (tc, not_tc) = self.classify_condition(cond);
                ctx.type_checking |= tc;
                kind = BlockKind::If {
                    else_reach_tc: not_tc,
                };
            }
            b"elif" => {
                let reach = match closed {
                    Some(Block {
                        kind: BlockKind::If { else_reach_tc },
                        ..
                    }) => else_reach_tc,
                    _ => false,
                };
                let (tc, not_tc) = self.classify_condition(cond);
                // The condition itself runs only where the `elif` is reached.
                expr_ctx.type_checking = parent.type_checking || reach;
                ctx.type_checking = parent.type_checking || reach || tc;
                kind = BlockKind::If {
                    else_reach_tc: reach || not_tc,
                };
            }
            b"else" => {
                if let Some(Block {
                    kind: BlockKind::If { else_reach_tc },
                    ..
                }) = closed
                {
                    ctx.type_checking = parent.type_checking || else_reach_tc;
                }
            }
            b"try" => {
                kind = BlockKind::Try {
                    start: self.imports.len(),
                };
            }
            b"except" => {
                let (start, end) = match closed.map(|b| b.kind) {
                    Some(BlockKind::Try { start }) => (start, self.imports.len()),
                    Some(BlockKind::Handler { start, end }) => (start, end),
                    _ => (self.imports.len(), self.imports.len()),
                };
                if self.catches_import_error(cond) {
                    for k in start..end {
                        if self.import_depth[k] == parent.func_depth {
                            self.imports[k].guarded = true;
                        }
                    }
                }
                kind = BlockKind::Handler { start, end };
            }
            b"def" | b"class" => {
                if kw == b"def" {
                    ctx.in_function = true;
                    ctx.func_depth = ctx.func_depth.saturating_add(1);
                    // The body runs later, outside any enclosing suppress().
                    ctx.guarded = false;
                }
                ctx.module_scope = false;
                if parent.module_scope && !parent.type_checking {
                    if let Some(name) = toks.get(head).filter(|t| t.kind == Kind::Name) {
                        self.names.push(self.string(name));
                    }
                }
            }
            b"match" => kind = BlockKind::Match,
            b"with" if self.suppresses_import_error(cond) => ctx.guarded = true,
            _ => {}
        }
        self.blocks.push(Block { indent, kind, ctx });
        expr_ctx
    }

    /// `(body is type-checking only, else branch is type-checking only)`.
    fn classify_condition(&self, cond: &[Tok]) -> (bool, bool) {
        if self.is(cond.first(), b"not") && is_tc_name(self.src, &cond[1..]) {
            return (false, true);
        }
        // `TYPE_CHECKING and X` also only runs under a type checker.
        let tc = cond
            .split(|t| t.kind == Kind::Name && self.text(t) == b"and")
            .any(|part| is_tc_name(self.src, part));
        (tc, false)
    }

    fn catches_import_error(&self, cond: &[Tok]) -> bool {
        cond.iter()
            .take_while(|t| !(t.kind == Kind::Name && self.text(t) == b"as"))
            .any(|t| {
                t.kind == Kind::Name
                    && matches!(self.text(t), b"ImportError" | b"ModuleNotFoundError")
            })
    }

    fn suppresses_import_error(&self, cond: &[Tok]) -> bool {
        cond.iter()
            .any(|t| t.kind == Kind::Name && self.text(t) == b"suppress")
            && self.catches_import_error(cond)
    }

    /// Parse `a.b.c` at `toks[*j..]`; empty if there is no name there.
    fn dotted(&self, toks: &[Tok], j: &mut usize) -> String {
        let mut out = String::new();
        while let Some(t) = toks.get(*j).filter(|t| t.kind == Kind::Name) {
            if self.text(t) == b"import" {
                break;
            }
            out.push_str(&String::from_utf8_lossy(self.text(t)));
            *j += 1;
            if self.is(toks.get(*j), b".") && self.is_name(toks.get(*j + 1)) {
                out.push('.');
                *j += 1;
            } else {
                break;
            }
        }
        out
    }

    fn push_import(&mut self, module: String, level: u32, names: Vec<String>, line: u32) {
        self.push_import_in(self.ctx(), module, level, names, line);
    }

    fn push_import_in(
        &mut self,
        ctx: Ctx,
        module: String,
        level: u32,
        names: Vec<String>,
        line: u32,
    ) {
        self.imports.push(Import {
            module,
            level,
            names,
            line,
            type_checking: ctx.type_checking,
            guarded: ctx.guarded,
            in_function: ctx.in_function,
        });
        self.import_depth.push(ctx.func_depth);
    }

    fn binds_names(&self) -> bool {
        let ctx = self.ctx();
        ctx.module_scope && !ctx.type_checking
    }

    /// `import a.b as c, d` (the tokens after `import`).
    fn import_stmt(&mut self, toks: &[Tok], line: u32) {
        let bind = self.binds_names();
        let mut j = 0;
        loop {
            let start = j;
            let module = self.dotted(toks, &mut j);
            if module.is_empty() {
                return;
            }
            let mut bound = &toks[start];
            if self.is(toks.get(j), b"as") && self.is_name(toks.get(j + 1)) {
                bound = &toks[j + 1];
                j += 2;
            }
            if bind {
                self.names.push(self.string(bound));
            }
            self.push_import(module, 0, Vec::new(), line);
            if !self.is(toks.get(j), b",") {
                return;
            }
            j += 1;
        }
    }

    /// `from ..a.b import (x, y as z)` (the tokens after `from`).
    fn import_from_stmt(&mut self, toks: &[Tok], line: u32) {
        let mut j = 0;
        let mut level: u32 = 0;
        while let Some(t) = toks.get(j).filter(|t| t.kind == Kind::Op) {
            match self.text(t) {
                b"." => level = level.saturating_add(1),
                b"..." => level = level.saturating_add(3),
                _ => break,
            }
            j += 1;
        }
        let module = self.dotted(toks, &mut j);
        if (module.is_empty() && level == 0) || !self.is(toks.get(j), b"import") {
            return;
        }
        j += 1;
        let mut names = Vec::new();
        if self.is(toks.get(j), b"*") {
            names.push("*".to_owned());
        } else {
            let bind = self.binds_names();
            if self.is(toks.get(j), b"(") {
                j += 1;
            }
            while let Some(t) = toks.get(j).filter(|t| t.kind == Kind::Name) {
                names.push(self.string(t));
                j += 1;
                let mut bound = t;
                if self.is(toks.get(j), b"as") && self.is_name(toks.get(j + 1)) {
                    bound = &toks[j + 1];
                    j += 2;
                }
                if level == 0 && module == "importlib" && self.text(t) == b"import_module" {
                    let name = self.text(bound);
                    self.import_module_aliased |= name != b"import_module";
                    self.import_module_names.push(name.to_vec());
                }
                if bind {
                    self.names.push(self.string(bound));
                }
                if !self.is(toks.get(j), b",") {
                    break;
                }
                j += 1;
            }
            if names.is_empty() {
                return;
            }
        }
        self.push_import(module, level, names, line);
    }

    /// Dynamic imports with a constant name in `toks` (one statement, or a
    /// compound statement's header), each recorded as the `import` it does:
    ///
    /// - `importlib.import_module("a.b")`, and `import_module("a.b")` after
    ///   `from importlib import import_module [as name]`: `import a.b`. A
    ///   relative name with a constant package (`import_module(".b", "a")`,
    ///   or `package="a"`) is resolved here, as importlib does; one relative
    ///   to `__package__` is recorded as a relative import;
    /// - `__import__("a.b")` without a `level` argument: `import a.b`.
    ///
    /// A constant is one string literal of name characters and dots (no
    /// prefix but `r`/`u`, no escapes, no concatenation); anything else is
    /// left to the build's isolated import check.
    fn dynamic_imports(&mut self, toks: &[Tok], ctx: Ctx) {
        for k in 0..toks.len() {
            let t = &toks[k];
            if t.kind != Kind::Name {
                continue;
            }
            // `x.import_module(...)` is some other function, and
            // `def import_module(...)` defines one.
            let prev = k.checked_sub(1).and_then(|p| toks.get(p));
            if self.is(prev, b".") || self.is(prev, b"def") || self.is(prev, b"class") {
                continue;
            }
            let text = self.text(t);
            let (open, dunder) = if text == b"importlib"
                && self.is(toks.get(k + 1), b".")
                && self.is(toks.get(k + 2), b"import_module")
                && self.is(toks.get(k + 3), b"(")
            {
                (k + 3, false)
            } else if self.is(toks.get(k + 1), b"(")
                && (text == b"__import__"
                    || self
                        .import_module_names
                        .iter()
                        .any(|n| n.as_slice() == text))
            {
                (k + 1, text == b"__import__")
            } else {
                continue;
            };
            let Some(args) = self.call_args(toks, open) else {
                continue;
            };
            let found = if dunder {
                self.dunder_import(&args)
            } else {
                self.import_module_call(&args)
            };
            if let Some((module, level)) = found {
                self.push_import_in(ctx, module, level, Vec::new(), t.line);
            }
        }
    }

    /// The top-level arguments of the call whose `(` is `toks[open]`, each
    /// as its tokens; None if the call does not close in `toks`.
    fn call_args<'t>(&self, toks: &'t [Tok], open: usize) -> Option<Vec<&'t [Tok]>> {
        let mut depth: u32 = 0;
        let mut args = Vec::new();
        let mut start = open + 1;
        for (j, t) in toks.iter().enumerate().skip(open + 1) {
            if t.kind != Kind::Op {
                continue;
            }
            match self.text(t) {
                b"(" | b"[" | b"{" => depth = depth.saturating_add(1),
                b")" | b"]" | b"}" if depth > 0 => depth -= 1,
                b")" => {
                    // A trailing comma leaves no argument after it.
                    if j > start {
                        args.push(&toks[start..j]);
                    }
                    return Some(args);
                }
                b"," if depth == 0 => {
                    args.push(&toks[start..j]);
                    start = j + 1;
                }
                _ => {}
            }
        }
        None
    }

    /// The text of `arg` if it is one constant string literal of name
    /// characters and dots (see `dynamic_imports`).
    fn constant(&self, arg: &[Tok]) -> Option<&'a [u8]> {
        let [t] = arg else {
            return None;
        };
        if t.kind != Kind::Str {
            return None;
        }
        let text = self.text(t);
        let q = text.iter().position(|&b| b == b'"' || b == b'\'')?;
        if q > 1 || !text[..q].iter().all(|b| b"rRuU".contains(b)) {
            return None;
        }
        let quote = text[q];
        let triple = text.len() >= q + 6 && text[q + 1] == quote && text[q + 2] == quote;
        let width = if triple { 3 } else { 1 };
        let body = text.get(q + width..text.len().checked_sub(width)?)?;
        let simple = body
            .iter()
            .all(|&b| b == b'.' || CLASS[b as usize] & NAME != 0);
        (!body.is_empty() && simple).then_some(body)
    }

    /// The value of `arg` if it is the keyword argument `name=value`.
    fn keyword<'t>(&self, arg: &'t [Tok], name: &[u8]) -> Option<&'t [Tok]> {
        match arg {
            [n, eq, value @ ..]
                if n.kind == Kind::Name && self.text(n) == name && self.is(Some(eq), b"=") =>
            {
                Some(value)
            }
            _ => None,
        }
    }

    /// `import_module(name[, package])`: the (module, level) it imports.
    fn import_module_call(&self, args: &[&[Tok]]) -> Option<(String, u32)> {
        let name = self.constant(args.first()?)?;
        let dots = name.iter().take_while(|&&b| b == b'.').count();
        let rest = dotted_name(&name[dots..])?;
        if dots == 0 {
            // The package argument only anchors relative names.
            return (!rest.is_empty()).then(|| (rest.to_owned(), 0));
        }
        let [_, package] = args else {
            return None;
        };
        let package = self.keyword(package, b"package").unwrap_or(package);
        let level = u32::try_from(dots).ok()?;
        if let [t] = package {
            if t.kind == Kind::Name && self.text(t) == b"__package__" {
                return Some((rest.to_owned(), level));
            }
        }
        // A constant package, resolved as importlib does (`rsplit` by level).
        let mut base = dotted_name(self.constant(package)?)?;
        for _ in 1..dots {
            base = &base[..base.rfind('.')?];
        }
        if base.is_empty() {
            return None;
        }
        let module = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}.{rest}")
        };
        Some((module, 0))
    }

    /// `__import__(name, ...)` without a level: the (module, 0) it imports.
    fn dunder_import(&self, args: &[&[Tok]]) -> Option<(String, u32)> {
        let name = dotted_name(self.constant(args.first()?)?)?;
        if name.is_empty() {
            return None;
        }
        let mut positional = 0;
        for arg in args {
            let starred = arg
                .first()
                .is_some_and(|t| matches!(self.text(t), b"*" | b"**"));
            if starred || self.keyword(arg, b"level").is_some() {
                return None;
            }
            let is_keyword =
                arg.len() >= 2 && arg[0].kind == Kind::Name && self.is(arg.get(1), b"=");
            positional += usize::from(!is_keyword);
        }
        // The fifth positional argument is the level.
        (positional < 5).then(|| (name.to_owned(), 0))
    }

    /// Record the names bound by an assignment / annotated assignment /
    /// `type X = ...` at module scope. Tokens after index `limit` cannot be
    /// targets (they follow the last top-level `=` of the line).
    fn bind_assignment(&mut self, stmt: &[Tok], limit: usize) {
        if stmt.len() >= 3
            && self.is(stmt.first(), b"type")
            && self.is_name(stmt.get(1))
            && (self.is(stmt.get(2), b"=") || self.is(stmt.get(2), b"["))
        {
            self.names.push(self.string(&stmt[1]));
            return;
        }
        // Split on top-level `=`: every piece but the last is a target.
        let mut depth: u32 = 0;
        let mut seg_start = 0;
        let mut targets: Vec<(usize, usize)> = Vec::new();
        for (k, t) in stmt.iter().enumerate().take(limit.saturating_add(1)) {
            match (t.kind, self.text(t)) {
                (Kind::Op, b"(" | b"[" | b"{") => depth = depth.saturating_add(1),
                (Kind::Op, b")" | b"]" | b"}") => depth = depth.saturating_sub(1),
                (Kind::Op, b"=") if depth == 0 => {
                    targets.push((seg_start, k));
                    seg_start = k + 1;
                }
                // Any `=` after a lambda belongs to its default arguments.
                (Kind::Name, b"lambda") if depth == 0 => break,
                _ => {}
            }
        }
        for (n, (a, b)) in targets.into_iter().enumerate() {
            let mut seg = &stmt[a..b];
            if n == 0 {
                // `x: int = 1` -- the target is what precedes the annotation.
                if let Some(c) = self.top_level_pos(seg, b":") {
                    seg = &seg[..c];
                }
            }
            self.bind_target(seg, 0);
        }
    }

    fn top_level_pos(&self, toks: &[Tok], what: &[u8]) -> Option<usize> {
        let mut depth: u32 = 0;
        for (k, t) in toks.iter().enumerate() {
            if t.kind != Kind::Op {
                continue;
            }
            match self.text(t) {
                b"(" | b"[" | b"{" => depth = depth.saturating_add(1),
                b")" | b"]" | b"}" => depth = depth.saturating_sub(1),
                s if depth == 0 && s == what => return Some(k),
                _ => {}
            }
        }
        None
    }

    /// Names in an assignment target such as `a`, `a, *b`, `(a, [b, c])`;
    /// attribute and subscript targets bind nothing at module scope.
    fn bind_target(&mut self, seg: &[Tok], nesting: u32) {
        if nesting > MAX_NESTING {
            return;
        }
        let mut rest = seg;
        while !rest.is_empty() {
            let comma = self.top_level_pos(rest, b",").unwrap_or(rest.len());
            let elem = &rest[..comma];
            match elem {
                [t] if t.kind == Kind::Name => self.names.push(self.string(t)),
                [star, t] if t.kind == Kind::Name && self.text(star) == b"*" => {
                    self.names.push(self.string(t));
                }
                [open, inner @ .., close]
                    if matches!(
                        (self.text(open), self.text(close)),
                        (b"(", b")") | (b"[", b"]")
                    ) && open.kind == Kind::Op
                        && close.kind == Kind::Op =>
                {
                    self.bind_target(inner, nesting + 1);
                }
                _ => {}
            }
            rest = &rest[(comma + 1).min(rest.len())..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(src: &str) -> ScannedModule {
        match scan_imports(src.as_bytes()) {
            Ok(m) => m,
            Err(e) => panic!("scan failed: {e}"),
        }
    }

    /// `(module, level, names, line)` of every import.
    fn brief(src: &str) -> Vec<(String, u32, Vec<String>, u32)> {
        scan(src)
            .imports
            .into_iter()
            .map(|i| (i.module, i.level, i.names, i.line))
            .collect()
    }

    fn imp(module: &str, level: u32, names: &[&str], line: u32) -> (String, u32, Vec<String>, u32) {
        (
            module.to_owned(),
            level,
            names.iter().map(|s| (*s).to_owned()).collect(),
            line,
        )
    }

    fn find<'m>(m: &'m ScannedModule, module: &str) -> &'m Import {
        match m.imports.iter().find(|i| i.module == module) {
            Some(i) => i,
            None => panic!("no import of {module:?} in {:?}", m.imports),
        }
    }

    #[test]
    fn dynamic_imports_with_constant_names() {
        let src = "import importlib\n\
                   m = importlib.import_module('lib.plug')\n\
                   def f():\n    return importlib.import_module(\"lib.a\", package=x)\n\
                   importlib.import_module(name)\n\
                   importlib.import_module('lib.' + name)\n\
                   importlib.import_module(f'lib.{x}')\n\
                   importlib.import_module('lib' 'x')\n\
                   importlib.import_module('a\\\\x2eb')\n\
                   __import__('os.path')\n\
                   __import__('x', globals(), locals(), [], 1)\n\
                   __import__('y', level=0)\n\
                   obj.import_module('not.this')\n\
                   import_module('not.bound.yet')\n";
        assert_eq!(
            brief(src),
            vec![
                imp("importlib", 0, &[], 1),
                imp("lib.plug", 0, &[], 2),
                imp("lib.a", 0, &[], 4),
                imp("os.path", 0, &[], 10),
            ]
        );
        let m = scan(src);
        assert!(find(&m, "lib.a").in_function);
        assert!(!find(&m, "lib.plug").in_function);
    }

    #[test]
    fn dynamic_imports_relative_and_bound_names() {
        let src = "from importlib import import_module as load\n\
                   load('.plug', __package__)\n\
                   load('..up', package=__package__)\n\
                   load('.b', 'pkg.sub')\n\
                   load('..c', package='pkg.sub')\n\
                   load('...d', 'pkg.sub')\n\
                   load('.e')\n\
                   load('.f', __name__)\n\
                   if TYPE_CHECKING:\n    load('typed.only')\n\
                   try:\n    load('maybe')\nexcept ImportError:\n    pass\n\
                   if load('in.header'):\n    pass\n";
        assert_eq!(
            brief(src),
            vec![
                imp("importlib", 0, &["import_module"], 1),
                imp("plug", 1, &[], 2),
                imp("up", 2, &[], 3),
                imp("pkg.sub.b", 0, &[], 4),
                imp("pkg.c", 0, &[], 5),
                imp("typed.only", 0, &[], 10),
                imp("maybe", 0, &[], 12),
                imp("in.header", 0, &[], 15),
            ]
        );
        let m = scan(src);
        assert!(find(&m, "typed.only").type_checking);
        assert!(find(&m, "maybe").guarded);
        assert!(!find(&m, "in.header").guarded);
        // Defining a function of that name is no call of it.
        assert_eq!(brief("def __import__(x='a'):\n    pass\n"), vec![]);
    }

    #[test]
    fn plain_and_dotted_imports() {
        assert_eq!(
            brief("import os\nimport a.b.c as d, e\n"),
            vec![
                imp("os", 0, &[], 1),
                imp("a.b.c", 0, &[], 2),
                imp("e", 0, &[], 2)
            ]
        );
    }

    #[test]
    fn from_imports_and_relative_levels() {
        assert_eq!(
            brief(
                "from x import y\nfrom .. import x\nfrom .mod import y as z\n\
                 from ...a.b import c\nfrom .... import d\nfrom m import *\n"
            ),
            vec![
                imp("x", 0, &["y"], 1),
                imp("", 2, &["x"], 2),
                imp("mod", 1, &["y"], 3),
                imp("a.b", 3, &["c"], 4),
                imp("", 4, &["d"], 5),
                imp("m", 0, &["*"], 6),
            ]
        );
        assert_eq!(brief("from .import x\n"), vec![imp("", 1, &["x"], 1)]);
    }

    #[test]
    fn parenthesised_names_across_lines() {
        let src = "from x import (a,\n    b as c,  # comment\n    d,\n)\nimport y\n";
        assert_eq!(
            brief(src),
            vec![imp("x", 0, &["a", "b", "d"], 1), imp("y", 0, &[], 5)]
        );
    }

    #[test]
    fn backslash_continuation() {
        let src = "from a \\\n    import b, \\\n    c\nimport d\n";
        assert_eq!(
            brief(src),
            vec![imp("a", 0, &["b", "c"], 1), imp("d", 0, &[], 4)]
        );
        // The statement's line is the line of its keyword.
        assert_eq!(brief("x = 1; \\\nimport os\n"), vec![imp("os", 0, &[], 2)]);
    }

    #[test]
    fn semicolons() {
        assert_eq!(
            brief("import os; import sys;from a import b\n"),
            vec![
                imp("os", 0, &[], 1),
                imp("sys", 0, &[], 1),
                imp("a", 0, &["b"], 1)
            ]
        );
    }

    #[test]
    fn strings_are_not_imports() {
        let src = r#"
s = "import os"
t = 'from x import y'
u = """
import nope
from nope import nope
"""
v = rb'import z' + Br"import z" + fR'import {z}'
w = f"{'import a'} {x!r:>{width}} {d["k"]} {'{'}"
x = f'''
import b {f"{'import c'}"}
'''
y = "\"; import q"
z = '\\'; import real
"#;
        assert_eq!(brief(src), vec![imp("real", 0, &[], 14)]);
    }

    #[test]
    fn docstring_containing_import() {
        let src = "def f():\n    \"\"\"Use it like:\n\n    from x import y\n    \"\"\"\n    return 1\nimport z\n";
        assert_eq!(brief(src), vec![imp("z", 0, &[], 7)]);
    }

    #[test]
    fn fstring_edge_cases() {
        // Nested same-quote strings (PEP 701), `{{` escapes, named unicode
        // escapes, raw f-strings with backslashes, and multi-line fields.
        let src = concat!(
            "a = f\"{x[\"import a\"]}\"\n",
            "b = f\"{{import b}} \\N{EM DASH} {y}\"\n",
            "c = rf\"\\{z}\\\" import c\"\n",
            "d = f\"\"\"{\n  1 + # import d\n  2}\"\"\"\n",
            "e = f'{a:{b}.{c}f}'\n",
            "import ok\n",
        );
        assert_eq!(brief(src), vec![imp("ok", 0, &[], 8)]);
    }

    #[test]
    fn nested_indentation_and_flags() {
        let src = "\
class A:
    import a
    def f(self):
        import b
        with x:
            if y:
                from c import d
    import e
def g():
    def h():
        import f
    import g2
import top
";
        let m = scan(src);
        let flags: Vec<(&str, bool)> = m
            .imports
            .iter()
            .map(|i| (i.module.as_str(), i.in_function))
            .collect();
        assert_eq!(
            flags,
            vec![
                ("a", false),
                ("b", true),
                ("c", true),
                ("e", false),
                ("f", true),
                ("g2", true),
                ("top", false),
            ]
        );
        assert_eq!(m.top_level_names, vec!["A", "g", "top"]);
    }

    #[test]
    fn type_checking_blocks() {
        let src = "\
from typing import TYPE_CHECKING
import typing
if TYPE_CHECKING:
    import a
    if x:
        import b

    import c
else:
    import d
import e
if typing.TYPE_CHECKING: import f
import g
if not TYPE_CHECKING:
    import h
else:
    import i
if TYPE_CHECKING:
    pass
elif x:
    import j
def fn():
    if TYPE_CHECKING:
        import k
    import l
";
        let m = scan(src);
        let tc: Vec<(&str, bool)> = m
            .imports
            .iter()
            .map(|i| (i.module.as_str(), i.type_checking))
            .collect();
        assert_eq!(
            tc,
            vec![
                ("typing", false),
                ("typing", false),
                ("a", true),
                ("b", true),
                ("c", true),
                ("d", false),
                ("e", false),
                ("f", true),
                ("g", false),
                ("h", false),
                ("i", true),
                ("j", false),
                ("k", true),
                ("l", false),
            ]
        );
        assert!(find(&m, "k").in_function);
        // Type-checking-only imports bind nothing at runtime.
        assert!(!m.top_level_names.contains(&"a".to_owned()));
        assert!(m.top_level_names.contains(&"d".to_owned()));
    }

    #[test]
    fn guarded_imports() {
        let src = "\
try:
    import a
    from b import c
except ImportError:
    import fallback
try:
    import d
except (ValueError, ModuleNotFoundError) as e:
    pass
try:
    import f
except KeyError:
    pass
except ImportError:
    pass
else:
    import g
finally:
    import h
try:
    import i
except Exception:
    pass
try: import j
except ImportError: j = None
try:
    def lazy():
        import k
    class C:
        import l
except ImportError:
    pass
with contextlib.suppress(ImportError):
    import m
";
        let m = scan(src);
        let g: Vec<(&str, bool)> = m
            .imports
            .iter()
            .map(|i| (i.module.as_str(), i.guarded))
            .collect();
        assert_eq!(
            g,
            vec![
                ("a", true),
                ("b", true),
                ("fallback", false),
                ("d", true),
                ("f", true),
                ("g", false),
                ("h", false),
                ("i", false),
                ("j", true),
                ("k", false),
                ("l", true),
                ("m", true),
            ]
        );
    }

    #[test]
    fn soft_keywords_as_identifiers() {
        let src = "\
match = re.match(x)
match.group(1)
type = 3
match x:
    case 1:
        import a
    case {'k': v}:
        import b
type Alias = int
print(match, type)
import c
match y:
    case [a, b]: import d
    case _:
        case = 1
        case[0]: int = 2
        case: int = 3
        import e
";
        let m = scan(src);
        assert_eq!(
            brief(src),
            vec![
                imp("a", 0, &[], 6),
                imp("b", 0, &[], 8),
                imp("c", 0, &[], 11),
                imp("d", 0, &[], 13),
                imp("e", 0, &[], 18),
            ]
        );
        // Imports inside `case` blocks still bind at module scope.
        assert_eq!(
            m.top_level_names,
            vec!["Alias", "a", "b", "c", "case", "d", "e", "match", "type"]
        );
    }

    #[test]
    fn future_import() {
        let m = scan("from __future__ import annotations\n");
        assert_eq!(m.imports[0].module, "__future__");
        assert_eq!(m.imports[0].names, vec!["annotations"]);
    }

    #[test]
    fn bom_crlf_and_tabs() {
        let src = b"\xEF\xBB\xBFimport a\r\nif TYPE_CHECKING:\r\n\timport b\r\n\tif x:\r\n\t\timport c\r\nimport d\r\n";
        let m = scan_imports(src).unwrap_or_default();
        let got: Vec<(&str, u32, bool)> = m
            .imports
            .iter()
            .map(|i| (i.module.as_str(), i.line, i.type_checking))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", 1, false),
                ("b", 3, true),
                ("c", 5, true),
                ("d", 6, false)
            ]
        );
        // A lone CR is a line break too.
        let m = scan_imports(b"import a\rimport b\r").unwrap_or_default();
        assert_eq!(m.imports.len(), 2);
        assert_eq!(m.imports[1].line, 2);
    }

    #[test]
    fn mixed_tabs_and_spaces() {
        // A tab advances to the next multiple of 8, so these are one block.
        let src = "if TYPE_CHECKING:\n\timport a\n        import b\nimport c\n";
        let tc: Vec<bool> = scan(src).imports.iter().map(|i| i.type_checking).collect();
        assert_eq!(tc, vec![true, true, false]);
    }

    #[test]
    fn top_level_names() {
        let src = "\
import x as app, os.path
from m import handler, other as alias
from n import *
a = b = 1
c: int = 2
d: int
(e, [f, *g]) = h.i = j[0] = k, l = 0
m += 1
n = lambda p=1, q=2: p
async def coro(): pass
class K(Base, metaclass=M): x = 1
def func(r=1): s = 2
if True:
    t = 1
try:
    import u
except ImportError:
    u = None
for v in w: pass
";
        let m = scan(src);
        assert_eq!(
            m.top_level_names,
            vec![
                "K", "a", "alias", "app", "b", "c", "coro", "e", "f", "func", "g", "handler", "k",
                "l", "n", "os", "t", "u",
            ]
        );
    }

    #[test]
    fn encoding_declarations() {
        assert!(scan("# -*- coding: latin-1 -*-\nimport a\n").has_encoding_declaration);
        assert!(
            scan("#!/usr/bin/env python\n# vim: set fileencoding=utf-8 :\n")
                .has_encoding_declaration
        );
        assert!(!scan("import a\n# coding: latin-1\n").has_encoding_declaration);
        assert!(!scan("# coding:\nimport a\n").has_encoding_declaration);
        assert!(!scan("import a\n").has_encoding_declaration);

        // Latin-1 bytes after a cookie: scanned anyway.
        let src = b"# coding: latin-1\ns = '\xe9'\nimport a\n";
        let m = scan_imports(src).unwrap_or_default();
        assert!(m.has_encoding_declaration);
        assert_eq!(m.imports.len(), 1);
        assert_eq!(m.imports[0].line, 3);

        // Without a cookie: the first bad line is reported.
        let err = scan_imports(b"import a\nimport b\ns = '\xe9'\n");
        assert!(
            matches!(err, Err(ScanError::NotUtf8 { line: 3 })),
            "{err:?}"
        );
    }

    #[test]
    fn unterminated_input() {
        let cases: [(&[u8], &str, u32); 5] = [
            (b"import a\nx = (1,\n 2\n", "bracket", 2),
            (b"x = '''\nimport a\n", "string", 1),
            (b"x = 'abc\nimport a\n", "string", 1),
            (b"x = f'{a\n", "string", 1),
            (b"\n\nx = f'{a:\n", "string", 3),
        ];
        for (src, what_want, line_want) in cases {
            match scan_imports(src) {
                Err(ScanError::Unterminated { what, line }) => {
                    assert_eq!((what, line), (what_want, line_want), "{src:?}")
                }
                other => panic!("{src:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn hostile_nesting_does_not_overflow() {
        let deep = "f'{".repeat(10_000);
        assert!(scan_imports(deep.as_bytes()).is_err());
        let parens = format!(
            "{}a{} = 1\nimport z\n",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert_eq!(scan(&parens).imports.len(), 1);
    }

    #[test]
    fn lambda_and_dict_colons_in_headers() {
        let src = "\
if (lambda: TYPE_CHECKING)(): import a
if {1: 2}[1]: import b
with x(key=lambda k: k) as y: import c
";
        assert_eq!(
            brief(src),
            vec![
                imp("a", 0, &[], 1),
                imp("b", 0, &[], 2),
                imp("c", 0, &[], 3)
            ]
        );
    }

    #[test]
    fn empty_and_comment_only() {
        assert_eq!(scan(""), ScannedModule::default());
        assert_eq!(
            scan("# import a\n\n   \n# from b import c"),
            ScannedModule::default()
        );
    }
}
