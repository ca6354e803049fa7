//! CSRF refusals answered in the site's layout, never as a bare page. A form of this site whose
//! token went stale (left open past the session's lifetime, or sent after the session ended)
//! passed the origin check, so it is shown again with a fresh token, the person's non-secret
//! input kept and one line saying why: the second submit works. A cross-site post gets a plain
//! refusal page in the layout with nothing of it shown back. JSON answers (`/api/`) stay JSON.
//!
//! It sits between the session layer (it renders with the session) and the CSRF layer (whose
//! answers carry their [`Refusal`]), and keeps a copy of a form body (bounded by
//! `MAX_CONTENT_LENGTH`, as the CSRF layer reads it) to fill the form again.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use portcullis::Session;
use portcullis::csrf::Refusal;

use crate::web::error::AppError;
use crate::web::extract::{Viewer, ending_message, resolve};
use crate::web::next::safe_next;
use crate::web::page::{Page, plain_error};
use crate::web::routes::register;
use crate::web::state::AppState;

/// The one line over a form shown again.
const STALE: &str = "This form had expired, so nothing was done. It is ready to send again.";

/// What a cross-site post is told.
const CROSS_SITE: &str = "This request came from another site, so it was refused and nothing \
                          was changed.";

/// Answers the CSRF layer's refusals of page requests in the layout (see the module docs).
pub(crate) async fn answer_refusals(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let session = request.extensions().get::<Session>().cloned();
    let (request, form) = match keep_form(&state, request).await {
        Ok(kept) => kept,
        // Over the limit or unreadable: the CSRF layer would refuse it with the same words.
        Err(response) => return response,
    };
    let response = next.run(request).await;
    let Some(refusal) = response.extensions().get::<Refusal>().copied() else {
        return response;
    };
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let Some(session) = session.filter(|_| !is_json) else {
        return response;
    };
    let reason = reason_of(response).await;
    match refusal {
        Refusal::StaleToken => stale_form(&state, &session, &path, form.as_ref(), &reason)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        _ => cross_site(&state, &reason),
    }
}

/// Reads a form body into memory, so that it can be shown again, and hands the request on
/// with the same bytes.
async fn keep_form(
    state: &AppState,
    request: Request,
) -> Result<(Request, Option<Bytes>), Response> {
    let limit = state.config().max_content_length;
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
    if !is_form {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        let message = format!(
            "The request body is larger than the limit of {limit} bytes, or could not be read."
        );
        plain_error(state, StatusCode::PAYLOAD_TOO_LARGE, &message)
    })?;
    let request = Request::from_parts(parts, Body::from(bytes.clone()));
    Ok((request, Some(bytes)))
}

/// The refusal's own reason (Flask-WTF's words), from the library's page.
async fn reason_of(response: Response) -> String {
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    text.split("<p>")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .map_or_else(|| "The CSRF token is invalid.".to_owned(), unescape_html)
}

/// The value of the field `name` in a form body.
fn field(form: Option<&Bytes>, name: &str) -> String {
    form.map(|body| {
        form_urlencoded::parse(body)
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    })
    .unwrap_or_default()
}

/// The form again, with a fresh token and what was typed (never a password), or the layout's
/// page with the way back to it.
async fn stale_form(
    state: &AppState,
    session: &Session,
    path: &str,
    form: Option<&Bytes>,
    reason: &str,
) -> Result<Response, AppError> {
    let page = Page::for_session(session.clone());
    let viewer = resolve(state, session).await?;
    let ended = match &viewer {
        Viewer::Anonymous { ended } => *ended,
        Viewer::User(_) => None,
    };
    // One line: what happened, and (for the tests and the curious) the check's own words.
    // The anonymous forms say that the form expired: whatever session the visitor had
    // before, they are logging in now.
    let stale = format!("{STALE} ({reason})");
    let notice = match ended {
        Some(ending) => format!("{} ({reason})", ending_message(state, ending)),
        None => stale.clone(),
    };
    let status = StatusCode::FORBIDDEN;
    match (path, &viewer) {
        ("/login", Viewer::Anonymous { .. }) => {
            let next = field(form, "next");
            let next = safe_next(&next).unwrap_or("");
            let context = context! {
                notice => stale,
                error => None::<&str>,
                next,
                name => field(form, "name"),
            };
            page.render(state, None, "login.html", status, context)
                .await
        }
        ("/register", Viewer::Anonymous { .. }) => {
            let context = register::with_rules(context! {
                error => stale,
                name => field(form, "name"),
                display_name => field(form, "display_name"),
            });
            page.render(state, None, "register.html", status, context)
                .await
        }
        _ => {
            let message = match (&viewer, ended) {
                (Viewer::Anonymous { .. }, None) => {
                    format!("{STALE} Please log in and send it again. ({reason})")
                }
                _ => notice,
            };
            let title = status.canonical_reason().unwrap_or("Error");
            let back = match &viewer {
                Viewer::User(_) => page_of_form(path),
                Viewer::Anonymous { .. } => ("/login", "Log in"),
            };
            let context = context! { title, message, back => back.0, back_label => back.1 };
            page.render(state, viewer.user(), "error.html", status, context)
                .await
        }
    }
}

/// The page that holds the form posted to `path`, and its link's words: the way back to it,
/// where a fresh token waits.
fn page_of_form(path: &str) -> (&'static str, &'static str) {
    if path.starts_with("/account/sessions") {
        ("/account/sessions", "Back to your devices")
    } else if path.starts_with("/account") {
        ("/account", "Back to your account")
    } else {
        ("/", "Back to the start page")
    }
}

/// A plain refusal in the layout: nothing of the request is shown back, and the session is
/// neither read nor written.
fn cross_site(state: &AppState, reason: &str) -> Response {
    plain_error(
        state,
        StatusCode::FORBIDDEN,
        &format!("{CROSS_SITE} ({reason})"),
    )
}

/// The text of the library's page, whose reason is escaped for HTML (the layout escapes it
/// again).
fn unescape_html(text: &str) -> String {
    [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(text.to_owned(), |text, (entity, plain)| {
        text.replace(entity, plain)
    })
}
