//! `/login` and `/logout`. Logging in checks the failed-attempt limits, verifies the password
//! (doing the same Argon2 work for unknown names), answers every failure with the same words,
//! and regenerates the session id. Logging out destroys the session.

use std::time::Duration;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use portcullis::Session;
use serde::Deserialize;

use crate::auth;
use crate::client_addr::ClientAddr;
use crate::device::Device;
use crate::error::AppError;
use crate::flash;
use crate::next::safe_next;
use crate::page::Page;
use crate::password;
use crate::rate_limit::{Decision, Ticket};
use crate::state::AppState;
use crate::viewer::Viewer;

/// The one answer to every failed log-in, so it never tells which part was wrong.
pub(crate) const INVALID: &str = "Invalid user name or password.";
/// Longest user name kept as a rate-limit key (valid names are shorter).
const MAX_KEY_NAME_CHARS: usize = 64;

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
    logged_out: Option<String>,
}

pub(super) async fn form(
    State(state): State<AppState>,
    page: Page,
    viewer: Viewer,
    Query(query): Query<LoginQuery>,
) -> Result<Response, AppError> {
    let next = query.next.as_deref().and_then(safe_next).unwrap_or("");
    let ended = match viewer {
        Viewer::User(_) => {
            return Ok(Redirect::to(if next.is_empty() { "/" } else { next }).into_response());
        }
        Viewer::Anonymous { ended } => ended,
    };
    let notice = if query.logged_out.is_some() {
        Some("You have been logged out.")
    } else if query.expired.is_some() || ended {
        Some("Your session has expired. Please log in again.")
    } else if query.next.is_some() {
        Some("Please log in.")
    } else {
        None
    };
    let context = context! { notice, error => None::<&str>, next, name => "" };
    page.render(&state, None, "login.html", StatusCode::OK, context)
        .await
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: String,
}

pub(super) async fn submit(
    State(state): State<AppState>,
    page: Page,
    session: Session,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let name_key = format!(
        "name:{}",
        form.name
            .to_lowercase()
            .chars()
            .take(MAX_KEY_NAME_CHARS)
            .collect::<String>()
    );
    let addr_key = format!("addr:{client}");
    let next = safe_next(&form.next).unwrap_or("").to_owned();
    let refuse = |status, error: String| {
        let context = context! { notice => None::<&str>, error, next => next.clone(), name => form.name.clone() };
        page.render(&state, None, "login.html", status, context)
    };

    let tickets = match attempt(&state, &[&name_key, &addr_key]).await {
        Ok(tickets) => tickets,
        Err(wait) => {
            tracing::warn!(
                target: "portcullis::security",
                name = ?form.name, %client, "log-in refused: too many failures"
            );
            let secs = wait.as_secs().max(1);
            let message =
                format!("Too many failed log-ins. Please wait {secs} seconds and try again.");
            let mut response = refuse(StatusCode::TOO_MANY_REQUESTS, message).await?;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return Ok(response);
        }
    };

    let user = state.users().by_name(&form.name).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = password::verify(form.password.clone(), stored).await;
    let Some(user) = user.filter(|_| verified) else {
        // The attempt was counted before the check; a failure simply keeps it.
        tracing::info!(target: "portcullis::security", name = ?form.name, %client, "log-in failed");
        return refuse(StatusCode::UNAUTHORIZED, INVALID.to_owned()).await;
    };

    state.limiter().reset(&name_key).await;
    forgive(&state, &tickets).await;
    if let Some(max) = at_session_limit(&state, &session, &user).await? {
        tracing::info!(target: "portcullis::security", user = user.id, %client, "log-in refused: session limit");
        let message = format!(
            "You are logged in on {max} devices, the most allowed. Log out on one of them \
             (Account, then Sessions) and try again."
        );
        return refuse(StatusCode::CONFLICT, message).await;
    }
    auth::log_in(
        &session,
        state.auth_keys(),
        &user,
        Device::of(&headers, client),
    )
    .await?;
    flash::push(
        &session,
        "message",
        &format!("Welcome back, {}!", user.display_name),
    )
    .await?;
    tracing::info!(target: "portcullis::security", user = user.id, %client, "logged in");
    Ok(Redirect::to(if next.is_empty() { "/" } else { &next }).into_response())
}

/// With `SESSION_LIMIT_POLICY=refuse`, the limit when `user` already has that many sessions
/// (this one aside, when it is already theirs: a log-in again replaces it). A check for a
/// clear page; the session layer enforces the limit atomically anyway, answering 409 to a
/// log-in that races another.
async fn at_session_limit(
    state: &AppState,
    session: &Session,
    user: &crate::users::User,
) -> Result<Option<usize>, AppError> {
    let config = state.config();
    let Some(max) = config.session_max_per_user else {
        return Ok(None);
    };
    if config.session_limit_policy != portcullis::store::LimitPolicy::Refuse {
        return Ok(None);
    }
    let id = user.id.to_string();
    let devices = state.user_sessions().list(&id).await?;
    let mine = session.device_id().await?;
    let others = devices
        .iter()
        .filter(|d| Some(d.device_id()) != mine.as_ref())
        .count();
    Ok((others >= max.get()).then_some(max.get()))
}

/// Counts one attempt on each of `keys`, checking the limit in the same step; when any key is
/// over its limit, takes back the attempts counted on the others and answers the longest wait.
pub(super) async fn attempt<'k>(
    state: &AppState,
    keys: &[&'k str],
) -> Result<Vec<(&'k str, Ticket)>, Duration> {
    let mut tickets = Vec::with_capacity(keys.len());
    let mut wait = None;
    for &key in keys {
        match state.limiter().attempt(key).await {
            Decision::Allowed(ticket) => tickets.push((key, ticket)),
            Decision::Limited { retry_after } => wait = wait.max(Some(retry_after)),
        }
    }
    match wait {
        None => Ok(tickets),
        Some(wait) => {
            forgive(state, &tickets).await;
            Err(wait)
        }
    }
}

/// Takes back counted attempts that succeeded (or were never made).
pub(super) async fn forgive(state: &AppState, tickets: &[(&str, Ticket)]) {
    for (key, ticket) in tickets {
        state.limiter().forgive(key, ticket).await;
    }
}

/// Ends the session (the layer deletes the record and expires the cookie) and asks the browser
/// to drop this site's cookies too.
pub(super) async fn logout(session: Session) -> Result<Response, AppError> {
    session.destroy().await?;
    let mut response = Redirect::to("/login?logged_out=1").into_response();
    response.headers_mut().insert(
        header::HeaderName::from_static("clear-site-data"),
        HeaderValue::from_static("\"cookies\""),
    );
    Ok(response)
}
