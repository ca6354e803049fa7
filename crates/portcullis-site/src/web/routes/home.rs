//! `/`: the landing page for visitors, the dashboard for a logged-in user (who they are, when
//! the session started, how long it has left).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use portcullis::Session;

use crate::web::error::AppError;
use crate::web::extract::{Viewer, ending_message};
use crate::web::page::Page;
use crate::web::state::AppState;
use crate::web::text::{duration, seconds_left, shown_time, utc};

pub(crate) async fn home(
    State(state): State<AppState>,
    page: Page,
    session: Session,
    viewer: Viewer,
) -> Result<Response, AppError> {
    let user = match &viewer {
        Viewer::User(user) => user,
        Viewer::Anonymous { ended } => {
            // The first page after an ending says so, whichever it is.
            let notice = ended.map(|ending| ending_message(&state, ending));
            let context = context! { notice };
            return page
                .render(&state, None, "landing.html", StatusCode::OK, context)
                .await;
        }
    };
    let now = state.clock().now();
    let expires = session.expires_at().await?;
    let left = seconds_left(&state, &session).await?;
    let context = context! {
        started => shown_time(now, session.created_at().await?),
        expires => utc(expires),
        seconds_left => left,
        time_left => duration(expires.duration_since(now).unwrap_or_default()),
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
