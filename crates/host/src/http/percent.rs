//! Percent-decoding (RFC 3986 §2.1) of what arrives encoded: CloudEvents
//! binary-mode header values and the paths api triggers are served at.

/// `value` decoded: each `%XX` is the byte it names, and the bytes are
/// UTF-8 (`None` if not, or if a `%` is not followed by two hex digits).
pub fn decoded(value: &[u8]) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some((&byte, tail)) = rest.split_first() {
        match (byte, tail) {
            (b'%', [high, low, tail @ ..])
                if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() =>
            {
                let hex = [*high, *low];
                let hex = std::str::from_utf8(&hex).expect("hex digits are ASCII");
                bytes.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
                rest = tail;
            }
            (b'%', _) => return None,
            (byte, tail) => {
                bytes.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_their_bytes() {
        assert_eq!(decoded(b"/caf%C3%A9%20bar").as_deref(), Some("/café bar"));
        assert_eq!(decoded(b"%00").as_deref(), Some("\0"));
        assert_eq!(decoded(b"100%"), None);
        assert_eq!(decoded(b"%zz"), None);
        assert_eq!(decoded(b"%C3"), None);
        assert_eq!(decoded(b"%+1"), None);
    }
}
