//! `portcullis users reset-password`: a new password, read from the first line of standard
//! input, and every session of the user ended; `portcullis users disable` / `enable`.

use std::error::Error;

use portcullis::session::Ending;

use super::{AdminError, user};
use crate::accounts::users::{UsersError, validate_password};
use crate::web::AppState;

/// `portcullis users reset-password --user NAME`.
pub(super) async fn reset_password(state: &AppState, name: &str) -> Result<(), Box<dyn Error>> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let new_password = line.trim_end_matches(['\r', '\n']);
    let ended = reset(state, name, new_password).await?;
    println!("password of {name} changed; ended {ended} session(s)");
    Ok(())
}

/// Sets a new password for the user named `name` and ends all their sessions; returns how
/// many ended.
async fn reset(state: &AppState, name: &str, new_password: &str) -> Result<usize, AdminError> {
    let user = user(state, name).await?;
    if let Err(UsersError::Invalid(rule)) = validate_password(new_password) {
        return Err(AdminError::Invalid(rule));
    }
    let hash = state
        .password_hashing()
        .hash(new_password.to_owned())
        .await?;
    // The password first: a log-in racing this reset then fails its check, or, had it
    // passed with the old one, holds a stale `_auth_hash` that no request accepts.
    state.users().set_password_hash(user.id, &hash).await?;
    let ended = state
        .user_sessions()
        .end_all_because(&user.id.to_string(), None, Ending::Administrator)
        .await?;
    tracing::info!(target: "portcullis::security", user = user.id, ended, "password reset from the command line");
    Ok(ended)
}

/// `portcullis users disable --user NAME`: refuses the account's log-ins, then ends all its
/// sessions. In that order, so that a log-in racing this command is refused when it is served
/// (the site checks the account on every request) even if its session was written after the
/// end.
pub(super) async fn disable(state: &AppState, name: &str) -> Result<(), Box<dyn Error>> {
    let user = user(state, name).await?;
    state
        .users()
        .set_disabled(user.id, true)
        .await
        .map_err(AdminError::from)?;
    let ended = state
        .user_sessions()
        .end_all_because(&user.id.to_string(), None, Ending::Administrator)
        .await
        .map_err(AdminError::from)?;
    tracing::info!(target: "portcullis::security", user = user.id, ended, "account disabled from the command line");
    println!("disabled {name}; ended {ended} session(s)");
    Ok(())
}

/// `portcullis users enable --user NAME`.
pub(super) async fn enable(state: &AppState, name: &str) -> Result<(), Box<dyn Error>> {
    let user = user(state, name).await?;
    state
        .users()
        .set_disabled(user.id, false)
        .await
        .map_err(AdminError::from)?;
    tracing::info!(target: "portcullis::security", user = user.id, "account enabled from the command line");
    println!("enabled {name}");
    Ok(())
}
