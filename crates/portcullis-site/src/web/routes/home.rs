//! `/`: the landing page for visitors, the dashboard for a logged-in user (who they are, when
//! the session started, how long it has left).

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use portcullis::Session;

use crate::web::error::AppError;
use crate::web::page::Page;
use crate::web::state::AppState;
use crate::web::extract::Viewer;

pub(crate) async fn home(
    State(state): State<AppState>,
    page: Page,
    session: Session,
    viewer: Viewer,
) -> Result<Response, AppError> {
    let Viewer::User(user) = &viewer else {
        return page
            .render(&state, None, "landing.html", StatusCode::OK, context! {})
            .await;
    };
    let now = state.clock().now();
    let expires = session.expires_at().await?;
    let left = seconds_left(&state, &session).await?;
    let context = context! {
        started => utc(session.created_at().await?),
        expires => utc(expires),
        seconds_left => left,
        time_left => minutes_seconds(expires.duration_since(now).unwrap_or_default()),
    };
    page.render(
        &state,
        Some(user),
        "dashboard.html",
        StatusCode::OK,
        context,
    )
    .await
}

/// Whole seconds until the session expires if nothing else happens.
pub(crate) async fn seconds_left(state: &AppState, session: &Session) -> Result<u64, AppError> {
    let expires = session.expires_at().await?;
    Ok(expires
        .duration_since(state.clock().now())
        .map_or(0, |d| d.as_secs()))
}

/// `2026-05-01 12:00:00 UTC`.
pub(crate) fn utc(time: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(time).to_string();
    format!("{} UTC", text.replace('T', " ").trim_end_matches('Z'))
}

/// `4 min 59 s`.
fn minutes_seconds(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}
