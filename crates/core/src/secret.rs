//! Secrets: the password and its bcrypt hash. A `Secret` never prints its content; helpers here
//! check formats without exposing values.

use std::fmt;

/// A password or bcrypt hash. `Debug` and `Display` print `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// The secret's bytes, for bcrypt and for writing `login/PASSWORD`. Never for output.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// A secret file's content without one trailing newline (`\n` or `\r\n`).
pub fn strip_newline(bytes: &[u8]) -> &[u8] {
    let b = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Line 1 of a PASSWORD file's content, without a trailing `\r`: the hash, which is the token.
pub fn hash_line(content: &[u8]) -> &[u8] {
    let line = content.split(|b| *b == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// If `bytes` is a bcrypt hash in modular crypt format (`$2b$12$` + 53 characters), its cost.
pub fn parse_bcrypt_hash(bytes: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(bytes).ok()?;
    let rest = s
        .strip_prefix("$2b$")
        .or_else(|| s.strip_prefix("$2a$"))
        .or_else(|| s.strip_prefix("$2y$"))?;
    let (cost, body) = rest.split_once('$')?;
    let cost: u32 = if cost.len() == 2 {
        cost.parse().ok()?
    } else {
        return None;
    };
    let body_ok = body.len() == 53
        && body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'/');
    ((4..=31).contains(&cost) && body_ok).then_some(cost)
}

/// `text` with every token hidden, for showing a server's log: a bcrypt hash (which ComfyUI-Login
/// uses as the API token, and logs as `For direct API calls, use token=<hash>`) and the value of
/// any `token=` becomes `****`.
pub fn mask_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let hash = ["$2a$", "$2b$", "$2y$"]
            .iter()
            .filter_map(|p| rest.find(p))
            .min();
        let query = rest.find("token=").map(|i| i + "token=".len());
        let Some(at) = [hash, query].into_iter().flatten().min() else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        // Up to the end of the token: whitespace, a quote, `&`, or the end.
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '&' | ',' | ')'))
            .unwrap_or(tail.len());
        if end == 0 {
            // `token=` followed by nothing: nothing to hide.
            rest = tail;
            if let Some(c) = rest.chars().next() {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
            continue;
        }
        out.push_str("****");
        rest = &tail[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_and_display_hide_the_value() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?} {s}"), "**** ****");
    }

    #[test]
    fn bcrypt_hash_format_is_recognised() {
        let h = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert_eq!(parse_bcrypt_hash(h.as_bytes()), Some(12));
        assert_eq!(parse_bcrypt_hash(b"$2b$12$short"), None);
        assert_eq!(parse_bcrypt_hash(b"plaintext"), None);
        assert_eq!(parse_bcrypt_hash(h.replace("$12$", "$1$").as_bytes()), None);
    }

    #[test]
    fn hash_line_is_the_first_line_without_cr() {
        assert_eq!(hash_line(b"$2b$x\r\nadmin"), b"$2b$x");
        assert_eq!(hash_line(b""), b"");
    }

    #[test]
    fn tokens_in_logs_are_masked() {
        let h = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        let line = format!("For direct API calls, use token={h}\nGET /x?token={h}&a=1 \"{h}\"");
        let masked = mask_tokens(&line);
        assert!(!masked.contains("R9h/cIPz"), "{masked}");
        assert_eq!(
            masked,
            "For direct API calls, use token=****\nGET /x?token=****&a=1 \"****\""
        );
        assert_eq!(mask_tokens("no secrets here"), "no secrets here");
        assert_eq!(mask_tokens("empty token= here"), "empty token= here");
    }

    #[test]
    fn one_trailing_newline_is_stripped() {
        assert_eq!(strip_newline(b"pw\n"), b"pw");
        assert_eq!(strip_newline(b"pw\r\n"), b"pw");
        assert_eq!(strip_newline(b"pw\n\n"), b"pw\n");
        assert_eq!(strip_newline(b" pw "), b" pw ");
    }
}
