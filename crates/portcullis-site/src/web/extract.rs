//! Who is asking, as extractors: [`Viewer`] (a user or nobody), [`SignedIn`] (a user, or a
//! redirect to the log-in page saying why), [`ApiUser`] (a user, or a JSON 401), [`ApiSession`]
//! (anyone's session, checked as the pages check it) and [`ClientAddr`] (from where).
//!
//! A session whose user is gone, or whose `_auth_hash` no longer matches the password (it was
//! changed elsewhere), is destroyed here: that is how a password change ends other sessions.

use std::convert::Infallible;
use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use portcullis::Session;
use portcullis::config::SessionFormat;
use portcullis::session::{Ending, MissingSessionLayer};

use crate::accounts;
use crate::accounts::users::User;
use crate::events;
use crate::session_data::flash;
use crate::web::client_addr::client_addr;
use crate::web::error::{ApiError, AppError};
use crate::web::next::encode_query_value;
use crate::web::state::AppState;
use crate::web::text;

/// The requester.
#[derive(Debug)]
pub(crate) enum Viewer {
    /// Logged in, with a valid auth hash.
    User(User),
    /// Nobody is logged in. `ended`: the cookie named a session that is over, and why
    /// (expired, reached its limit, ended elsewhere, by a password change or an administrator).
    Anonymous { ended: Option<Ending> },
}

impl Viewer {
    pub(crate) fn user(&self) -> Option<&User> {
        match self {
            Self::User(user) => Some(user),
            Self::Anonymous { .. } => None,
        }
    }
}

/// The request's session; the layer always provides one (else a wiring bug, answered 500).
pub(crate) fn session(parts: &Parts) -> Result<Session, MissingSessionLayer> {
    parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or(MissingSessionLayer)
}

/// Works out the viewer from the session, logging out a session that lost its right to be in.
pub(crate) async fn resolve(state: &AppState, session: &Session) -> Result<Viewer, AppError> {
    // A record that could not be opened reads as the plain expiry.
    let ended = match session.ended().await? {
        Some(ending) => Some(ending),
        None => session
            .previous_session_ended()
            .await?
            .then_some(Ending::Idle),
    };
    let Some(id) = accounts::claimed_user_id(session).await? else {
        return Ok(Viewer::Anonymous { ended });
    };
    let flask_format = state.config().session_format == SessionFormat::Flask;
    // `portcullis sessions end --everyone` ends every session that started before it.
    let not_before = state.users().sessions_not_before().await?;
    let started = session.created_at().await?;
    let current = not_before.is_none_or(|at| at <= started);
    let user = state.users().by_id(id).await?;
    // Every session ended, the account disabled or gone: an administrator's doing.
    let mut ending = Ending::Administrator;
    if current
        && let Some(user) = user
        && user.enabled()
    {
        if accounts::hash_matches(session, state.auth_keys(), &user, flask_format).await? {
            return Ok(Viewer::User(user));
        }
        ending = Ending::PasswordChange;
    }
    events::session_revoked(id);
    session.destroy_because(ending).await?;
    Ok(Viewer::Anonymous {
        ended: Some(ending),
    })
}

/// What to tell a person whose session ended for `ending`.
pub(crate) fn ending_message(state: &AppState, ending: Ending) -> String {
    let config = state.config();
    text::ending_message(
        ending,
        config.permanent_session_lifetime,
        config.session_absolute_lifetime,
    )
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = session(parts).map_err(IntoResponse::into_response)?;
        resolve(state, &session)
            .await
            .map_err(IntoResponse::into_response)
    }
}

/// A logged-in user; anyone else is sent to `/login?next=<this page>`, with `&expired=1` when
/// their session has ended.
#[derive(Debug)]
pub(crate) struct SignedIn(pub(crate) User);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Viewer::from_request_parts(parts, state).await? {
            Viewer::User(user) => Ok(Self(user)),
            Viewer::Anonymous { ended } => {
                let here = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
                let mut target = format!("/login?next={}", encode_query_value(here));
                if let Some(ending) = ended {
                    // The reason travels in the new session, not in the address, so that no
                    // link can make the log-in page tell a false story.
                    let session = session(parts).map_err(IntoResponse::into_response)?;
                    flash::push(&session, "info", &ending_message(state, ending))
                        .await
                        .map_err(|error| AppError::from(error).into_response())?;
                    target.push_str("&expired=1");
                }
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

/// A logged-in user for the JSON API; anyone else gets 401 `{"error": ...}`.
#[derive(Debug)]
pub(crate) struct ApiUser(pub(crate) User);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = session(parts).map_err(IntoResponse::into_response)?;
        match resolve(state, &session).await {
            Ok(Viewer::User(user)) => Ok(Self(user)),
            Ok(Viewer::Anonymous { ended }) => {
                let reason = match ended {
                    Some(Ending::Idle) => "your session has expired; please log in again".into(),
                    Some(ending) => ending_message(state, ending),
                    None => "not logged in".into(),
                };
                Err(ApiError::new(StatusCode::UNAUTHORIZED, reason).into_response())
            }
            Err(error) => Err(ApiError::from(error).into_response()),
        }
    }
}

/// The session of a JSON route open to anyone (`/api/prefs`, `/api/csrf-token`). A session
/// that claims a user passes the same checks as on the pages (the user exists, `_auth_hash`
/// matches the password); one that fails them is logged out and answered 401 JSON, so no
/// route serves a session that a password change ended.
#[derive(Debug)]
pub(crate) struct ApiSession(pub(crate) Session);

impl FromRequestParts<AppState> for ApiSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = session(parts).map_err(IntoResponse::into_response)?;
        let claimed = accounts::claimed_user_id(&session)
            .await
            .map_err(|error| ApiError::from(error).into_response())?;
        if claimed.is_some() {
            match resolve(state, &session).await {
                Ok(Viewer::User(_)) => {}
                Ok(Viewer::Anonymous { .. }) => {
                    let reason = "your session has ended (the password changed or the account \
                                  is gone); please log in again";
                    return Err(ApiError::new(StatusCode::UNAUTHORIZED, reason).into_response());
                }
                Err(error) => return Err(ApiError::from(error).into_response()),
            }
        }
        Ok(Self(session))
    }
}

/// The client's address, as an extractor (see `client_addr.rs` for the rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Self(client_addr(
            parts,
            &state.site_config().trusted_proxies,
        )))
    }
}
