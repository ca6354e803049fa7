//! `/account/sessions`: every device the user is logged in on (when it started, when it was
//! last used, which browser, from where), each with a button that ends it, and one that ends
//! all the others. Ending is immediate: the session layer deletes the record and its index
//! entry, so that device's next request is anonymous.

use std::time::SystemTime;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::Value as Template;
use minijinja::context;
use portcullis::session::{DeviceId, DeviceSession};
use portcullis::{Session, SessionError};
use serde::Deserialize;

use crate::session_data::device::DeviceRow;
use crate::session_data::flash;
use crate::session_data::prefs::Prefs;
use crate::web::error::AppError;
use crate::web::extract::SignedIn;
use crate::web::page::Page;
use crate::web::state::AppState;
use crate::web::text::shown_time;

/// What the page shows of `row`: its times relative to `now`, with the exact UTC time.
fn shown(row: &DeviceRow, now: SystemTime) -> Template {
    context! {
        handle => row.handle.as_str(),
        started => shown_time(now, row.started),
        last_used => shown_time(now, row.last_used),
        browser => &row.browser,
        user_agent => &row.user_agent,
        address => &row.address,
        current => row.current,
    }
}

pub(crate) async fn page(
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
    let mut rows: Vec<DeviceRow> = devices
        .iter()
        .filter(|d| still_valid(&state, &user, d))
        .map(DeviceRow::of)
        .collect();
    // This session's view options: the order, and how times read.
    let view = Prefs::load(&session).await?;
    if view.devices_order == "started" {
        rows.sort_by_key(|row| std::cmp::Reverse(row.started));
    } else {
        rows.sort_by_key(|row| std::cmp::Reverse(row.last_used));
    }
    let others = rows.iter().filter(|r| !r.current).count();
    let shown: Vec<Template> = rows.iter().map(|row| shown(row, now)).collect();
    let context = context! {
        rows => shown,
        others,
        listed,
        order => view.devices_order,
        times => view.devices_times,
    };
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
fn still_valid(
    state: &AppState,
    user: &crate::accounts::users::User,
    device: &DeviceSession,
) -> bool {
    device
        .get::<String>(crate::accounts::AUTH_HASH)
        .ok()
        .flatten()
        .is_some_and(|hash| state.auth_keys().verify(&user.password_hash, &hash))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ViewForm {
    devices_order: String,
    devices_times: String,
}

/// The page's "Show" form: this session's view options of the list (`session_data/prefs.rs`),
/// the same that `PATCH /api/prefs` sets.
pub(crate) async fn view(
    State(state): State<AppState>,
    page: Page,
    session: Session,
    SignedIn(user): SignedIn,
    Form(form): Form<ViewForm>,
) -> Result<Response, AppError> {
    let changes = [
        ("devices_order".to_owned(), form.devices_order.into()),
        ("devices_times".to_owned(), form.devices_times.into()),
    ]
    .into_iter()
    .collect();
    if let Err(reason) = Prefs::patch(&session, changes).await? {
        let message = format!("Not shown that way: {reason}.");
        return page
            .error(
                &state,
                Some(&user),
                StatusCode::UNPROCESSABLE_ENTITY,
                &message,
            )
            .await;
    }
    Ok(Redirect::to("/account/sessions").into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct EndForm {
    session: String,
}

pub(crate) async fn end(
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
    // The layer logged `session_expired` (revoked) when one ended.
    let message = if ended {
        "That session has been logged out."
    } else {
        "That session had already ended."
    };
    flash::push(&session, "message", message).await?;
    Ok(Redirect::to("/account/sessions").into_response())
}

pub(crate) async fn end_others(session: Session, _: SignedIn) -> Result<Response, AppError> {
    let ended = match session.end_other_devices().await {
        Ok(ended) => ended,
        Err(SessionError::NoUserIndex) => 0,
        Err(other) => return Err(other.into()),
    };
    let message = match ended {
        0 => "There were no other sessions.".to_owned(),
        1 => "1 other session has been logged out.".to_owned(),
        n => format!("{n} other sessions have been logged out."),
    };
    flash::push(&session, "message", &message).await?;
    Ok(Redirect::to("/account/sessions").into_response())
}
