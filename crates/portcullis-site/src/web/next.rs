//! `?next=`: where to go after logging in. Only a path on this site is accepted, so the login
//! page cannot be used to send people elsewhere (an open redirect).

use axum::response::Redirect;

/// Longest `next` kept; anything longer is dropped.
const MAX_NEXT_LEN: usize = 2048;

/// `next` if it is a local path: it starts with a single `/`, is not `//` or `/\` (which
/// browsers read as another host), even after percent-decoding, and holds no backslash, no
/// control character and no scheme. Anything else gives `None` (go to `/`).
#[must_use]
pub(crate) fn safe_next(next: &str) -> Option<&str> {
    let local = |path: &str| {
        let mut bytes = path.bytes();
        bytes.next() == Some(b'/')
            && !matches!(bytes.next(), Some(b'/' | b'\\'))
            && !path.contains('\\')
            && !path.chars().any(char::is_control)
    };
    let acceptable = next.len() <= MAX_NEXT_LEN && local(next) && local(&percent_decode(next));
    acceptable.then_some(next)
}

/// Where a log-in goes: `next` (already checked by [`safe_next`]), or `/` when there is none.
pub(crate) fn redirect_after_login(next: &str) -> Redirect {
    Redirect::to(if next.is_empty() { "/" } else { next })
}

/// `value` percent-encoded for a query string: everything but RFC 3986's unreserved
/// characters and `/` is escaped.
#[must_use]
pub(crate) fn encode_query_value(value: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Decodes `%XX` escapes (twice, so `%252F` counts as `/` too); invalid escapes stay as they
/// are. Only used to check, never to build the redirect.
fn percent_decode(text: &str) -> String {
    let once = decode_once(text);
    decode_once(&once)
}

fn decode_once(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_kept() {
        for path in [
            "/",
            "/account",
            "/account?tab=password",
            "/a/b#c",
            "/%7Euser",
        ] {
            assert_eq!(safe_next(path), Some(path));
        }
    }

    #[test]
    fn anything_that_could_leave_the_site_is_refused() {
        for path in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "/%2F%2Fevil.com",
            "/%2fevil.com",
            "/%5Cevil.com",
            "/%252F%252Fevil.com",
            "\\\\evil.com",
            "javascript:alert(1)",
            "evil.com",
            "",
            "/\t/evil.com",
            "/a\\b",
        ] {
            assert_eq!(safe_next(path), None, "{path:?}");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(MAX_NEXT_LEN))), None);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query_value("/account?a=b&c"), "/account%3Fa%3Db%26c");
    }
}
