//! `/account`: change the display name, the appearance (kept on the account), and the password (which
//! asks for the current one, regenerates the session id and ends the user's other sessions).

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::value::Serde;
use minijinja::{Value as Template, context};
use portcullis::Session;
use serde::Deserialize;

use crate::accounts;
use crate::accounts::appearance::{Appearance, DENSITIES, THEMES};
use crate::accounts::device_cookie::SetDeviceCookie;
use crate::accounts::password::HashError;
use crate::accounts::rate_limit::LoginGuard;
use crate::accounts::users::{User, UsersError, validate_new_password};
use crate::events;
use crate::session_data::flash;
use crate::web::error::AppError;
use crate::web::extract::{ClientAddr, SignedIn};
use crate::web::page::Page;
use crate::web::state::AppState;

pub(crate) async fn page(
    State(state): State<AppState>,
    page: Page,
    SignedIn(user): SignedIn,
) -> Result<Response, AppError> {
    render(&state, &page, &user, StatusCode::OK, None).await
}

async fn render(
    state: &AppState,
    page: &Page,
    user: &User,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, AppError> {
    let appearance = state.users().appearance(user.id).await?;
    let context = context! {
        error,
        themes => Template::from(Serde(THEMES)),
        densities => Template::from(Serde(DENSITIES)),
        chosen_theme => appearance.theme(),
        chosen_density => appearance.density(),
    };
    page.render(state, Some(user), "account.html", status, context)
        .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct DisplayNameForm {
    display_name: String,
}

pub(crate) async fn display_name(
    State(state): State<AppState>,
    page: Page,
    session: Session,
    SignedIn(mut user): SignedIn,
    Form(form): Form<DisplayNameForm>,
) -> Result<Response, AppError> {
    match state
        .users()
        .set_display_name(user.id, &form.display_name)
        .await
    {
        Ok(stored) => {
            flash::push(
                &session,
                "message",
                &format!("Display name changed to {stored}."),
            )
            .await?;
            Ok(Redirect::to("/account").into_response())
        }
        Err(UsersError::Invalid(rule)) => {
            user.display_name.clone_from(&form.display_name);
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            render(
                &state,
                &page,
                &user,
                status,
                Some(format!("Not saved: {rule}.")),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PreferencesForm {
    theme: String,
    density: String,
}

pub(crate) async fn preferences(
    State(state): State<AppState>,
    page: Page,
    session: Session,
    SignedIn(user): SignedIn,
    Form(form): Form<PreferencesForm>,
) -> Result<Response, AppError> {
    let appearance = match Appearance::parse(&form.theme, &form.density) {
        Ok(appearance) => appearance,
        Err(reason) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return render(
                &state,
                &page,
                &user,
                status,
                Some(format!("Not saved: {reason}.")),
            )
            .await;
        }
    };
    // On the account, so every device of the user shows it from its next page.
    state.users().set_appearance(user.id, &appearance).await?;
    flash::push(&session, "message", "Appearance saved.").await?;
    Ok(Redirect::to("/account").into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct PasswordForm {
    current: String,
    new_password: String,
    confirm: String,
}

pub(crate) async fn password(
    State(state): State<AppState>,
    page: Page,
    session: Session,
    ClientAddr(client): ClientAddr,
    SignedIn(user): SignedIn,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AppError> {
    // Guessing the current password here is guessing a log-in: the same limits apply, and the
    // user's own browser (its device cookie) is limited on its own.
    let refuse =
        async |status, error: String| render(&state, &page, &user, status, Some(error)).await;
    let device = state.device_cookies().known(&headers, &user);
    let guard = match LoginGuard::for_client(state.limiter(), device.as_ref(), &user.name, client)
        .await
    {
        Ok(guard) => guard,
        Err(too_many) => {
            events::password_form_locked(&user, client, state.site_config().login_rate_limit.max);
            let message = format!(
                "Too many failed attempts. Please wait {} seconds and try again.",
                too_many.seconds()
            );
            let page = refuse(StatusCode::TOO_MANY_REQUESTS, message).await?;
            return Ok(too_many.with_retry_after(page));
        }
    };
    let stored = Some(user.password_hash.clone());
    let current_ok = match state
        .password_hashing()
        .verify(form.current.clone(), stored)
        .await
    {
        Ok(current_ok) => current_ok,
        Err(HashError::Busy) => {
            // The password was never checked: this was no guess.
            guard.forgive().await;
            events::hashing_queue_full(client);
            return page.busy(&state, Some(&user)).await;
        }
        Err(error) => return Err(error.into()),
    };
    if !current_ok {
        // The attempt was counted before the check; a failure simply keeps it.
        events::password_change_failed(&user, client);
        let message = "Password not changed: the current password is wrong.".to_owned();
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, message).await;
    }
    // The current password was right: this was no guess.
    guard.forgive().await;
    let names = [user.name.as_str(), user.display_name.as_str()];
    let problem = match validate_new_password(&form.new_password, &names) {
        Err(UsersError::Invalid(rule)) => Some(rule),
        _ if form.new_password != form.confirm => Some("the two new passwords differ"),
        _ => None,
    };
    if let Some(rule) = problem {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Password not changed: {rule}."),
        )
        .await;
    }
    let hash = match state
        .password_hashing()
        .hash(form.new_password.clone())
        .await
    {
        Ok(hash) => hash,
        Err(HashError::Busy) => {
            events::hashing_queue_full(client);
            return page.busy(&state, Some(&user)).await;
        }
        Err(error) => return Err(error.into()),
    };
    state.users().set_password_hash(user.id, &hash).await?;
    let ended = accounts::renew_after_password_change(&session, state.auth_keys(), &hash).await?;
    flash::push(
        &session,
        "message",
        &format!("Password changed. Your other sessions have been logged out ({ended})."),
    )
    .await?;
    events::password_changed(&user, client, ended);
    // The new hash cancelled every device cookie of the user (they are bound to it), this
    // browser's too: it proved the current password, so it is known again, under the new one.
    let changed = User {
        password_hash: hash,
        ..user
    };
    let mut response = Redirect::to("/account").into_response();
    response
        .extensions_mut()
        .insert(SetDeviceCookie(state.device_cookies().issue(&changed)));
    Ok(response)
}
