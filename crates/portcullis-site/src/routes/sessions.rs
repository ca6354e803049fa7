//! `/account/sessions`: every device the user is logged in on (when it started, when it was
//! last used, which browser, from where), each with a button that ends it, and one that ends
//! all the others. Ending is immediate: the session layer deletes the record and its index
//! entry, so that device's next request is anonymous.

use std::time::SystemTime;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::{Serde, Value as Template};
use portcullis::session::{DeviceId, DeviceSession};
use portcullis::{Session, SessionError};
use serde::{Deserialize, Serialize};

use super::home::utc;
use crate::device::{self, Device};
use crate::error::AppError;
use crate::flash;
use crate::page::Page;
use crate::state::AppState;
use crate::viewer::SignedIn;

/// One row of the page.
#[derive(Debug, Serialize)]
struct Row {
    handle: String,
    started: String,
    last_used: String,
    browser: String,
    user_agent: String,
    address: String,
    current: bool,
}

impl Row {
    fn of(device: &DeviceSession, now: SystemTime) -> Self {
        let details: Device = device.get(device::KEY).ok().flatten().unwrap_or_default();
        Self {
            handle: device.device_id().to_string(),
            started: utc(device.created_at()),
            last_used: ago(now, device.last_used()),
            browser: details.browser(),
            address: details.address.clone(),
            user_agent: details.user_agent,
            current: device.is_current(),
        }
    }
}

pub(super) async fn page(
    State(state): State<AppState>,
    page: Page,
    session: Session,
    SignedIn(user): SignedIn,
) -> Result<Response, AppError> {
    let now = state.clock().now();
    let (devices, listed) = match session.devices().await {
        Ok(devices) => (devices, true),
        // SESSION_FORMAT=flask: sessions shared with Flask carry Flask's ids, and no index.
        Err(SessionError::NoUserIndex) => (Vec::new(), false),
        Err(other) => return Err(other.into()),
    };
    let rows: Vec<Row> = devices
        .iter()
        .filter(|d| still_valid(&state, &user, d))
        .map(|d| Row::of(d, now))
        .collect();
    let others = rows.iter().filter(|r| !r.current).count();
    let context = context! { rows => Template::from(Serde(&rows)), others, listed };
    page.render(
        &state,
        Some(&user),
        "sessions.html",
        StatusCode::OK,
        context,
    )
    .await
}

/// A session logged in before the password last changed can serve no request (its
/// `_auth_hash` is stale), so it is not shown as a device, even before it is ended.
fn still_valid(state: &AppState, user: &crate::users::User, device: &DeviceSession) -> bool {
    device
        .get::<String>(crate::auth::AUTH_HASH)
        .ok()
        .flatten()
        .is_some_and(|hash| state.auth_keys().verify(&user.password_hash, &hash))
}

#[derive(Debug, Deserialize)]
pub(super) struct EndForm {
    session: String,
}

pub(super) async fn end(
    State(state): State<AppState>,
    page: Page,
    session: Session,
    SignedIn(user): SignedIn,
    Form(form): Form<EndForm>,
) -> Result<Response, AppError> {
    let Some(handle) = DeviceId::parse(&form.session) else {
        return page
            .error(
                &state,
                Some(&user),
                StatusCode::UNPROCESSABLE_ENTITY,
                "That is not a session of this list (a session is named by 43 letters, digits, \
                 '-' and '_').",
            )
            .await;
    };
    if session.device_id().await?.as_ref() == Some(&handle) {
        session.destroy().await?;
        return Ok(Redirect::to("/login?logged_out=1").into_response());
    }
    let ended = match session.end_device(&handle).await {
        Ok(ended) => ended,
        Err(SessionError::NoUserIndex) => false,
        Err(other) => return Err(other.into()),
    };
    let message = if ended {
        tracing::info!(target: "portcullis::security", user = user.id, "a session was ended by its user");
        "That session has been logged out."
    } else {
        "That session had already ended."
    };
    flash::push(&session, "message", message).await?;
    Ok(Redirect::to("/account/sessions").into_response())
}

pub(super) async fn end_others(
    session: Session,
    SignedIn(user): SignedIn,
) -> Result<Response, AppError> {
    let ended = match session.end_other_devices().await {
        Ok(ended) => ended,
        Err(SessionError::NoUserIndex) => 0,
        Err(other) => return Err(other.into()),
    };
    tracing::info!(target: "portcullis::security", user = user.id, ended, "a user logged out their other sessions");
    let message = match ended {
        0 => "There were no other sessions.".to_owned(),
        1 => "1 other session has been logged out.".to_owned(),
        n => format!("{n} other sessions have been logged out."),
    };
    flash::push(&session, "message", &message).await?;
    Ok(Redirect::to("/account/sessions").into_response())
}

/// `just now`, `5 min ago`, `2 h ago`, `3 days ago`.
fn ago(now: SystemTime, then: SystemTime) -> String {
    let secs = now.duration_since(then).map_or(0, |d| d.as_secs());
    match secs {
        0..60 => "just now".to_owned(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}
