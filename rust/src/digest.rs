//! The one textual form of a digest used everywhere in vega-dag:
//! `blake3:` followed by 64 lower-case hex digits.

use crate::error::{CoreError, Result};

pub const PREFIX: &str = "blake3:";

pub fn format(hash: &blake3::Hash) -> String {
    let mut out = String::with_capacity(PREFIX.len() + 64);
    out.push_str(PREFIX);
    out.push_str(hash.to_hex().as_str());
    out
}

pub fn parse(text: &str) -> Result<blake3::Hash> {
    let bad = |reason: &str| CoreError::BadDigest {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    let hex = text
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("expected the form blake3:<64 hex digits>"))?;
    // Upper-case hex would parse, but two spellings of one digest would make
    // string comparison of digests unsound.
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad("expected 64 lower-case hex digits after blake3:"));
    }
    blake3::Hash::from_hex(hex).map_err(|e| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = blake3::hash(b"abc");
        let text = format(&h);
        assert!(text.starts_with("blake3:"));
        assert_eq!(parse(&text).ok(), Some(h));
    }

    #[test]
    fn rejects_other_forms() {
        let h = blake3::hash(b"abc").to_hex().to_string();
        assert!(parse(&h).is_err());
        assert!(parse(&format!("sha256:{h}")).is_err());
        assert!(parse(&format!("blake3:{}", h.to_uppercase())).is_err());
        assert!(parse("blake3:abc").is_err());
    }
}
