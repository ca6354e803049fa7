//! Error answers as people and scripts read them: a small HTML page, or JSON for API clients.

use axum_core::body::Body;
use axum_core::response::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};

/// Whether a request should get JSON errors: its path is under `json_prefix` (e.g. `/api/`), or
/// it asks for JSON and not HTML.
pub(crate) fn wants_json(path: &str, headers: &HeaderMap, json_prefix: &str) -> bool {
    if !json_prefix.is_empty() && path.starts_with(json_prefix) {
        return true;
    }
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

/// A complete error response with `message` as its reason. `message` is escaped for HTML and
/// JSON, so it may hold any text.
pub(crate) fn error_page(status: StatusCode, message: &str, json: bool) -> Response {
    let (content_type, body) = if json {
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
