//! Error answers as people and scripts read them: a small HTML page, or JSON for API clients.

use axum_core::body::Body;
use axum_core::response::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};

/// How a request's errors are answered: as a small HTML page, or as JSON
/// (`{"error": reason, "status": code}`) for API clients. Decided once per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An HTML page, for people.
    Page,
    /// JSON, for scripts.
    Json,
}

impl Answer {
    /// JSON when the request's path is under `json_prefix` (e.g. `/api/`), or when it asks
    /// for JSON and not HTML; a page otherwise.
    pub(crate) fn for_request(path: &str, headers: &HeaderMap, json_prefix: &str) -> Self {
        if !json_prefix.is_empty() && path.starts_with(json_prefix) {
            return Self::Json;
        }
        let accept = headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("application/json") && !accept.contains("text/html") {
            Self::Json
        } else {
            Self::Page
        }
    }
}

/// A complete error response with `message` as its reason. `message` is escaped for HTML and
/// JSON, so it may hold any text.
pub(crate) fn error_page(status: StatusCode, message: &str, answer: Answer) -> Response {
    let (content_type, body) = if answer == Answer::Json {
        let body = serde_json::json!({ "error": message, "status": status.as_u16() }).to_string();
        ("application/json", body)
    } else {
        let title = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\
             <body><h1>{title}</h1><p>{}</p></body></html>\n",
            escape_html(message)
        );
        ("text/html; charset=utf-8", body)
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
