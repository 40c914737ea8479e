//! Percent-decoding (`%XX`), for the two places Larder meets it: the credentials and options of
//! a Redis URL, and hive partition values in parquet paths (`city=new%20york/`).

/// Decodes `%XX` escapes. `None` when an escape is not two hex digits or the result is not
/// UTF-8; callers decide whether that is an error (a Redis password) or means "take the text
/// as it is" (a partition folder someone named by hand).
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_escapes_and_refuses_bad_ones() {
        assert_eq!(decode("new%20york").as_deref(), Some("new york"));
        assert_eq!(decode("p%40ss%3Aw%2Fd").as_deref(), Some("p@ss:w/d"));
        assert_eq!(decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(decode("plain").as_deref(), Some("plain"));
        for bad in ["%", "%2", "%zz", "%+1", "a%2g", "%ff"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
