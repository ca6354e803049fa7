//! Redaction: what stands in for a secret in messages, reports and logs, and the removal of
//! passwords from URLs. At the bottom of the crate, so the stores and the configuration share it.

/// What stands in for a secret in messages and reports.
pub const REDACTED: &str = "[redacted]";

/// `redis://user:pw@host` becomes `redis://user:[redacted]@host`, in each URL of a
/// comma-separated list, and so does the value of a `pass` or `password` query parameter (how
/// Unix-socket URLs carry a password). Text without a password is returned as it is.
///
/// Each URL is taken to run from its `://` to the next one, not to the next comma, since a
/// comma is a legal character of a password: the password is then redacted whole.
pub fn redact_url_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (scheme, tail) = rest.split_at(start + "://".len());
        out.push_str(scheme);
        let end = tail.find("://").unwrap_or(tail.len());
        let authority_end = tail[..end].find(['/', '?', '#']).unwrap_or(end);
        rest = tail;
        if let Some(at) = tail[..authority_end].rfind('@')
            && let Some((user, _password)) = tail[..at].split_once(':')
        {
            out.push_str(user);
            out.push(':');
            out.push_str(REDACTED);
            rest = &tail[at..];
        }
        // The rest of this URL, up to the next one, with its query's password redacted.
        let next = rest.find("://").unwrap_or(rest.len());
        out.push_str(&redact_query_password(&rest[..next]));
        rest = &rest[next..];
    }
    out.push_str(&redact_query_password(rest));
    out
}

/// Redacts the values of `pass=` and `password=` query parameters in `text`.
fn redact_query_password(text: &str) -> String {
    let Some(query_start) = text.find('?') else {
        return text.to_owned();
    };
    let (head, query) = text.split_at(query_start + 1);
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _)) if matches!(name, "pass" | "password") => format!("{name}={REDACTED}"),
            _ => param.to_owned(),
        })
        .collect();
    format!("{head}{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_password_of_a_redis_url_list_is_redacted() {
        let cases = [
            (
                "redis://app:pw1@a:7000,redis://app:pw1@b:7001/0",
                "redis://app:[redacted]@a:7000,redis://app:[redacted]@b:7001/0",
            ),
            // A comma is a legal password character: the whole password goes.
            ("redis://app:pa,ss@a:7000", "redis://app:[redacted]@a:7000"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=pw3",
                "redis+unix:///run/redis.sock?db=1&pass=[redacted]",
            ),
            (
                "rediss://a:7000,rediss://b:7001",
                "rediss://a:7000,rediss://b:7001",
            ),
            ("redis://user@cache:6379", "redis://user@cache:6379"),
            ("not a url", "not a url"),
        ];
        for (raw, shown) in cases {
            assert_eq!(redact_url_password(raw), shown, "{raw}");
        }
    }
}
