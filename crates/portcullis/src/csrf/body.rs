//! Where a presented token is read: the `X-CSRFToken` / `X-CSRF-Token` header, else the
//! `csrf_token` field of a url-encoded or multipart form. A form body is buffered up to
//! `MAX_CONTENT_LENGTH` and put back byte for byte, so the handler reads what the client sent.
//! Never the query string or a cookie: both can be planted by another site.

use std::convert::Infallible;

use axum_core::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::{CsrfError, FORM_FIELD, HEADERS};

/// The token from the first of [`HEADERS`] that is present and not empty. A value that is not
/// text is kept (lossily), so that it is refused as invalid rather than as missing.
pub(crate) fn header_token(headers: &HeaderMap) -> Option<String> {
    HEADERS
        .iter()
        .filter_map(|name| headers.get(*name))
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .find(|token| !token.is_empty())
}

/// The kinds of body a browser form sends.
enum Form {
    UrlEncoded,
    Multipart { boundary: String },
}

impl Form {
    fn of(headers: &HeaderMap) -> Option<Self> {
        let content_type = headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Some(Self::UrlEncoded)
        } else if essence.eq_ignore_ascii_case("multipart/form-data") {
            // A multipart body without a usable boundary holds no field we could find.
            let boundary = multer::parse_boundary(content_type).ok()?;
            Some(Self::Multipart { boundary })
        } else {
            None
        }
    }

    async fn field(&self, body: Bytes) -> Option<String> {
        match self {
            Self::UrlEncoded => form_urlencoded::parse(&body)
                .find(|(name, _)| name == FORM_FIELD)
                .map(|(_, value)| value.into_owned()),
            Self::Multipart { boundary } => multipart_field(body, boundary).await,
        }
    }
}

/// The first `csrf_token` field of a multipart body; `None` if there is none or the body is
/// malformed (the request is then refused as missing a token).
async fn multipart_field(body: Bytes, boundary: &str) -> Option<String> {
    let stream = futures_util::stream::once(std::future::ready(Ok::<_, Infallible>(body)));
    let mut multipart = multer::Multipart::new(stream, boundary);
    // Fields before the token (an upload, say) are skipped without being copied.
    while let Some(field) = multipart.next_field().await.ok()? {
        if field.name() == Some(FORM_FIELD) {
            return field.text().await.ok();
        }
    }
    None
}

/// Reads the token from the form body, if the request carries a form, and hands back the
/// request with the same bytes. Requests that are not forms come back untouched (their body is
/// not read).
///
/// # Errors
/// [`CsrfError::BodyTooLarge`] when `Content-Length` or the bytes actually sent pass `max`;
/// [`CsrfError::BodyUnreadable`] when the body stream fails.
pub(crate) async fn form_token(
    request: Request<Body>,
    max: usize,
) -> Result<(Request<Body>, Option<String>), CsrfError> {
    let Some(form) = Form::of(request.headers()) else {
        return Ok((request, None));
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Refuse up front when the client announces too much, without reading a byte.
    if declared.is_some_and(|len| len > max as u64) {
        return Err(CsrfError::BodyTooLarge { limit: max });
    }
    let (parts, body) = request.into_parts();
    // Limited stops a chunked body (no Content-Length, or a lying one) at `max` bytes.
    let bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return Err(CsrfError::BodyTooLarge { limit: max });
        }
        Err(error) => return Err(CsrfError::BodyUnreadable(error)),
    };
    let token = form.field(bytes.clone()).await;
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: &str, body: &str) -> Request<Body> {
        Request::post("/")
            .header(CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    async fn read(request: Request<Body>) -> (Option<String>, Bytes) {
        let (request, token) = form_token(request, 1024).await.unwrap();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        (token, body)
    }

    #[test]
    fn headers_are_read_in_order_and_empty_ones_skipped() {
        let mut headers = HeaderMap::new();
        assert_eq!(header_token(&headers), None);
        headers.insert("x-csrf-token", "second".parse().unwrap());
        assert_eq!(header_token(&headers).as_deref(), Some("second"));
        headers.insert("x-csrftoken", "".parse().unwrap());
        assert_eq!(header_token(&headers).as_deref(), Some("second"));
        headers.insert("x-csrftoken", "first".parse().unwrap());
        assert_eq!(header_token(&headers).as_deref(), Some("first"));
    }

    #[tokio::test]
    async fn form_fields_are_found_and_the_body_is_kept() {
        let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n\
                         --XyZ\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n\
                         tok-2\r\n--XyZ--\r\n";
        // (content type, body, expected token)
        let cases = [
            (
                "application/x-www-form-urlencoded",
                "a=1&csrf_token=tok%2D1&csrf_token=later",
                Some("tok-1"),
            ),
            (
                "Application/X-WWW-Form-Urlencoded; charset=utf-8",
                "csrf_token=x",
                Some("x"),
            ),
            ("application/x-www-form-urlencoded", "a=1", None),
            (
                "multipart/form-data; boundary=XyZ",
                multipart,
                Some("tok-2"),
            ),
            ("multipart/form-data; boundary=Other", multipart, None),
            ("multipart/form-data", multipart, None),
            ("application/json", "{\"csrf_token\":\"x\"}", None),
            ("text/plain", "csrf_token=x", None),
        ];
        for (content_type, body, expected) in cases {
            let (token, kept) = read(request(content_type, body)).await;
            assert_eq!(token.as_deref(), expected, "{content_type}");
            assert_eq!(kept, body.as_bytes(), "{content_type}: body kept");
        }
    }

    #[tokio::test]
    async fn an_oversized_form_is_refused_by_header_or_by_size() {
        let mut declared = request("application/x-www-form-urlencoded", "csrf_token=x");
        declared
            .headers_mut()
            .insert(CONTENT_LENGTH, "1025".parse().unwrap());
        let big = request("application/x-www-form-urlencoded", &"a".repeat(1025));
        for request in [declared, big] {
            assert!(matches!(
                form_token(request, 1024).await,
                Err(CsrfError::BodyTooLarge { limit: 1024 })
            ));
        }
        let exact = request("application/x-www-form-urlencoded", &"a".repeat(1024));
        assert!(form_token(exact, 1024).await.is_ok());
    }
}
