//! `/register`: create an account, then log in. Bad input gets the form back with the rule
//! that was broken (422), a taken name gets 409.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use portcullis::Session;
use serde::Deserialize;

use crate::accounts::password;
use crate::accounts::users::{UsersError, validate_display_name, validate_name, validate_password};
use crate::session_data::flash;
use crate::web::error::AppError;
use crate::web::extract::Viewer;
use crate::web::page::Page;
use crate::web::state::AppState;

pub(crate) async fn form(
    State(state): State<AppState>,
    page: Page,
    viewer: Viewer,
) -> Result<Response, AppError> {
    let context = context! { error => None::<&str>, name => "", display_name => "" };
    page.render(
        &state,
        viewer.user(),
        "register.html",
        StatusCode::OK,
        context,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct RegisterForm {
    name: String,
    #[serde(default)]
    display_name: String,
    password: String,
    confirm: String,
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    page: Page,
    session: Session,
    viewer: Viewer,
    Form(form): Form<RegisterForm>,
) -> Result<Response, AppError> {
    let name = form.name.trim();
    let display_name = if form.display_name.trim().is_empty() {
        name
    } else {
        form.display_name.as_str()
    };
    let checked = validate_name(name)
        .and_then(|()| validate_display_name(display_name).map(|_| ()))
        .and_then(|()| validate_password(&form.password))
        .and_then(|()| {
            if form.password == form.confirm {
                Ok(())
            } else {
                Err(UsersError::Invalid("the two passwords differ"))
            }
        });
    let created = match checked {
        Ok(()) => {
            let hash = password::hash(form.password.clone()).await?;
            state.users().create(name, display_name, &hash).await
        }
        Err(error) => Err(error),
    };
    let (status, message) = match created {
        Ok(user) => {
            tracing::info!(target: "portcullis::security", user = user.id, "account created");
            let text = format!("Account {} created. Please log in.", user.name);
            flash::push(&session, "message", &text).await?;
            return Ok(Redirect::to("/login").into_response());
        }
        Err(UsersError::Invalid(rule)) => (StatusCode::UNPROCESSABLE_ENTITY, upper_first(rule)),
        Err(UsersError::Taken) => (
            StatusCode::CONFLICT,
            upper_first(&UsersError::Taken.to_string()),
        ),
        Err(other) => return Err(other.into()),
    };
    let context = context! {
        error => format!("{message}."),
        name => form.name,
        display_name => form.display_name,
    };
    page.render(&state, viewer.user(), "register.html", status, context)
        .await
}

/// `a user name …` → `A user name …`.
fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}
