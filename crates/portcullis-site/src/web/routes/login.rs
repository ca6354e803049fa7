//! `/login` and `/logout`. Logging in checks the failed-attempt limits, verifies the password
//! (doing the same Argon2 work for unknown names), answers every failure with the same words,
//! and regenerates the session id. A browser with the user's device cookie is limited on its own
//! (`device_cookie.rs`), and every log-in issues it a new one. Logging out destroys the
//! session and keeps the device cookie.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use portcullis::Session;
use serde::Deserialize;

use crate::accounts;
use crate::accounts::device_cookie::SetDeviceCookie;
use crate::accounts::password::HashError;
use crate::accounts::rate_limit::LoginGuard;
use crate::events;
use crate::metrics::Login;
use crate::session_data::device::Device;
use crate::session_data::flash;
use crate::web::error::AppError;
use crate::web::extract::{ClientAddr, Viewer, ending_message};
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
    // `expired=1` alone says nothing: the reason comes with the session (a flash that the
    // redirect left) or with the cookie presented here, never from the address.
    let notice = if let Some(ending) = ended {
        Some(ending_message(&state, ending))
    } else if query.logged_out.is_some() {
        Some("You have been logged out.".to_owned())
    } else if query.next.is_some() && query.expired.is_none() {
        Some("Please log in.".to_owned())
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

    let user = state.users().by_name(&form.name).await?;
    let device = user
        .as_ref()
        .and_then(|u| state.device_cookies().known(&headers, u));
    let guard =
        match LoginGuard::for_client(state.limiter(), device.as_ref(), &form.name, client).await {
            Ok(guard) => guard,
            Err(too_many) => {
                crate::metrics::login(Login::RateLimited);
                let name = logged_name(&state, &form.name, user.is_some());
                events::login_locked(&name, client, state.site_config().login_rate_limit.max);
                let message = format!(
                    "Too many failed log-ins. Please wait {} seconds and try again.",
                    too_many.seconds()
                );
                let page = refuse(StatusCode::TOO_MANY_REQUESTS, message).await?;
                return Ok(too_many.with_retry_after(page));
            }
        };

    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let exists = user.is_some();
    let verified = match state
        .password_hashing()
        .verify(form.password.clone(), stored)
        .await
    {
        Ok(verified) => verified,
        Err(HashError::Busy) => {
            // The password was never checked: this was no guess.
            crate::metrics::login(Login::Busy);
            guard.forgive().await;
            events::hashing_queue_full(client);
            return page.busy(&state, None).await;
        }
        Err(error) => return Err(error.into()),
    };
    let Some(user) = user.filter(|_| verified) else {
        // The attempt was counted before the check; a failure simply keeps it.
        crate::metrics::login(Login::Failure);
        let name = logged_name(&state, &form.name, exists);
        events::login_failed(&name, client);
        return refuse(StatusCode::UNAUTHORIZED, INVALID.to_owned()).await;
    };
    if !user.enabled() {
        // The same answer as a wrong password, after the same Argon2 work: a disabled account
        // is not told apart, so a guessed password learns nothing (OWASP's authentication
        // cheat sheet: one generic message). The attempt stays counted.
        events::login_refused(&user, client, "account disabled");
        crate::metrics::login(Login::Failure);
        return refuse(StatusCode::UNAUTHORIZED, INVALID.to_owned()).await;
    }

    guard.logged_in().await;
    if let Some(max) = at_session_limit(&state, &session, &user).await? {
        events::login_refused(&user, client, "session limit");
        crate::metrics::login(Login::RefusedByCap);
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
    events::login_succeeded(&user, client);
    crate::metrics::login(Login::Success);
    let mut response = redirect_after_login(&next).into_response();
    let device_cookie = state.device_cookies().issue(&user);
    response
        .extensions_mut()
        .insert(SetDeviceCookie(device_cookie));
    Ok(response)
}

/// A typed user name as log lines show it: quoted when it names an account, else `hash:` and a
/// keyed hash, since people type their password into the name field by mistake.
fn logged_name(state: &AppState, typed: &str, exists: bool) -> String {
    if exists {
        format!("{typed:?}")
    } else {
        format!("hash:{}", state.auth_keys().log_name_hash(typed))
    }
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
/// to drop what it cached of this site. Not its cookies: the device cookie stays, so that this
/// browser is still known when it logs in again (`device_cookie.rs`).
pub(crate) async fn logout(
    session: Session,
    ClientAddr(client): ClientAddr,
) -> Result<Response, AppError> {
    let user = session.user_id().await?;
    session.destroy().await?;
    events::logged_out(user.as_deref(), client);
    let mut response = Redirect::to("/login?logged_out=1").into_response();
    response.headers_mut().insert(
        header::HeaderName::from_static("clear-site-data"),
        HeaderValue::from_static("\"cache\""),
    );
    Ok(response)
}
