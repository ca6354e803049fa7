//! `portcullis users add`: a new account, its password read from the first line of standard
//! input, under the registration form's rules; `portcullis users reset-password`: a new
//! password, read the same way, and every session of the user ended; `portcullis users
//! disable` / `enable`.

use std::error::Error;

use portcullis::events::SecurityEvent;
use portcullis::session::Ending;

use super::{AdminError, user};
use crate::accounts::users::{
    User, UsersError, normalize_name, validate_display_name, validate_name, validate_new_password,
};
use crate::events;
use crate::web::AppState;

/// `portcullis users add --user NAME [--display-name TEXT]`.
pub(super) async fn add(
    state: &AppState,
    name: &str,
    display_name: Option<&str>,
) -> Result<(), Box<dyn Error>> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    let user = create(state, name, display_name, password).await?;
    println!("created {}", user.name);
    Ok(())
}

/// Creates the account as the registration form would (the same rules, in the same order:
/// nothing is hashed for a name that cannot be had), without its rate limits: the command
/// line is the administrator's.
async fn create(
    state: &AppState,
    name: &str,
    display_name: Option<&str>,
    password: &str,
) -> Result<User, AdminError> {
    let refused = |error: UsersError| match error {
        UsersError::Invalid(_) | UsersError::Taken | UsersError::LooksTaken => {
            AdminError::NotCreated(error.to_string())
        }
        other => AdminError::Users(other),
    };
    let name = normalize_name(name);
    let display_name = display_name
        .filter(|d| !d.trim().is_empty())
        .unwrap_or(&name);
    validate_name(&name).map_err(refused)?;
    let display_name = validate_display_name(display_name).map_err(refused)?;
    validate_new_password(password, &[&name, display_name]).map_err(refused)?;
    if let Some(conflict) = state.users().name_conflict(&name).await? {
        return Err(refused(conflict));
    }
    let hash = state.password_hashing().hash(password.to_owned()).await?;
    let user = state
        .users()
        .create(&name, display_name, &hash)
        .await
        .map_err(refused)?;
    events::administered(
        SecurityEvent::UserCreated,
        user.id,
        "account created from the command line",
    );
    Ok(user)
}

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
    let names = [user.name.as_str(), user.display_name.as_str()];
    if let Err(UsersError::Invalid(rule)) = validate_new_password(new_password, &names) {
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
    events::administered(
        SecurityEvent::AuthnPasswordChange,
        user.id,
        "password reset from the command line",
    );
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
    events::administered(
        SecurityEvent::UserUpdated,
        user.id,
        "account disabled from the command line",
    );
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
    events::administered(
        SecurityEvent::UserUpdated,
        user.id,
        "account enabled from the command line",
    );
    println!("enabled {name}");
    Ok(())
}
