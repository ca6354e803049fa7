//! `/login` and `/logout`. Logging in checks the failed-attempt limits, verifies the password
//! (doing the same Argon2 work for unknown names), answers every failure with the same words,
//! and regenerates the session id. Logging out destroys the session.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use portcullis::Session;
use serde::Deserialize;

use crate::accounts;
use crate::accounts::password;
use crate::accounts::rate_limit::LoginGuard;
use crate::session_data::device::Device;
use crate::session_data::flash;
use crate::web::error::AppError;
use crate::web::extract::{ClientAddr, Viewer};
use crate::web::next::{redirect_after_login, safe_next};
use crate::web::page::Page;
use crate::web::state::AppState;

/// The one answer to every failed log-in, so it never tells which part was wrong.
pub(crate) const INVALID: &str = "Invalid user name or password.";

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
    logged_out: Option<String>,
}

pub(crate) async fn form(
    State(state): State<AppState>,
    page: Page,
    viewer: Viewer,
    Query(query): Query<LoginQuery>,
) -> Result<Response, AppError> {
    let next = query.next.as_deref().and_then(safe_next).unwrap_or("");
    let ended = match viewer {
        Viewer::User(_) => {
            return Ok(redirect_after_login(next).into_response());
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
pub(crate) struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: String,
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    page: Page,
    session: Session,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let next = safe_next(&form.next).unwrap_or("").to_owned();
    let refuse = |status, error: String| {
        let context = context! { notice => None::<&str>, error, next => next.clone(), name => form.name.clone() };
        page.render(&state, None, "login.html", status, context)
    };

    let guard = match LoginGuard::begin(state.limiter(), &form.name, client).await {
        Ok(guard) => guard,
        Err(too_many) => {
            tracing::warn!(
                target: "portcullis::security",
                name = ?form.name, %client, "log-in refused: too many failures"
            );
            let message = format!(
                "Too many failed log-ins. Please wait {} seconds and try again.",
                too_many.seconds()
            );
            let page = refuse(StatusCode::TOO_MANY_REQUESTS, message).await?;
            return Ok(too_many.with_retry_after(page));
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
    if !user.enabled() {
        // The same answer as a wrong password, after the same Argon2 work: a disabled account
        // is not told apart, so a guessed password learns nothing (OWASP's authentication
        // cheat sheet: one generic message). The attempt stays counted.
        tracing::info!(target: "portcullis::security", user = user.id, %client, "log-in refused: account disabled");
        return refuse(StatusCode::UNAUTHORIZED, INVALID.to_owned()).await;
    }

    guard.logged_in().await;
    if let Some(max) = at_session_limit(&state, &session, &user).await? {
        tracing::info!(target: "portcullis::security", user = user.id, %client, "log-in refused: session limit");
        let message = format!(
            "You are logged in on {max} devices, the most allowed. Log out on one of them \
             (Account, then Sessions) and try again."
        );
        return refuse(StatusCode::CONFLICT, message).await;
    }
    accounts::log_in(
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
    Ok(redirect_after_login(&next).into_response())
}

/// With `SESSION_LIMIT_POLICY=refuse`, the limit when `user` already has that many sessions
/// (this one aside, when it is already theirs: a log-in again replaces it). A check for a
/// clear page; the session layer enforces the limit atomically anyway, answering 409 to a
/// log-in that races another.
async fn at_session_limit(
    state: &AppState,
    session: &Session,
    user: &crate::accounts::users::User,
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

/// Ends the session (the layer deletes the record and expires the cookie) and asks the browser
/// to drop this site's cookies too.
pub(crate) async fn logout(session: Session) -> Result<Response, AppError> {
    session.destroy().await?;
    let mut response = Redirect::to("/login?logged_out=1").into_response();
    response.headers_mut().insert(
        header::HeaderName::from_static("clear-site-data"),
        HeaderValue::from_static("\"cookies\""),
    );
    Ok(response)
}
