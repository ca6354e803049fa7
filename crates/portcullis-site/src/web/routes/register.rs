//! `/register`: create an account and log it in, as `/login` does (a new session id, a new
//! CSRF secret, a device cookie), landing on the dashboard. Bad input gets the form back with
//! the rule that was broken (422: the name rules of `names.rs`, the password rules of
//! `password_policy.rs`), a taken name or a look-alike of one gets 409, all before any password
//! is hashed. Attempts are limited per client (`REGISTER_RATE_LIMIT`, 429) and, before a
//! password is hashed, from everyone together (`REGISTER_TOTAL_RATE_LIMIT`, 503), both with
//! `Retry-After`; a full hashing queue is a 503 too (`PASSWORD_HASH_QUEUE`).

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use portcullis::Session;
use serde::Deserialize;

use crate::accounts;
use crate::accounts::device_cookie::SetDeviceCookie;
use crate::accounts::password::HashError;
use crate::accounts::password_policy::{PASSWORD_CHARS, RECOMMENDED_CHARS};
use crate::accounts::rate_limit::{Decision, TooManyAttempts, address_key};
use crate::accounts::users::{
    User, UsersError, normalize_name, validate_display_name, validate_name, validate_new_password,
};
use crate::events;
use crate::metrics::Registration;
use crate::session_data::device::Device;
use crate::session_data::flash;
use crate::web::error::AppError;
use crate::web::extract::{ClientAddr, Viewer};
use crate::web::page::Page;
use crate::web::state::AppState;

/// The one key of the overall registration limit.
const TOTAL_KEY: &str = "all";

pub(crate) async fn form(
    State(state): State<AppState>,
    page: Page,
    viewer: Viewer,
) -> Result<Response, AppError> {
    let context = with_rules(context! { error => None::<&str>, name => "", display_name => "" });
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
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Result<Response, AppError> {
    let refuse = async |status, message: String| {
        let context = with_rules(context! {
            error => message,
            name => form.name.clone(),
            display_name => form.display_name.clone(),
        });
        page.render(&state, viewer.user(), "register.html", status, context)
            .await
    };
    // Every attempt counts on the client, valid or not: it also bounds how fast anyone can ask
    // which names are taken.
    let per_client = state.register_limits().per_client.as_ref();
    if let Decision::Limited { retry_after } = per_client.attempt(&address_key(client)).await {
        let max = state.site_config().register_rate_limit.max;
        events::registration_limited(client, "REGISTER_RATE_LIMIT", max);
        crate::metrics::registration(Registration::RateLimited);
        let wait = TooManyAttempts::after(retry_after);
        let message = format!(
            "Too many registrations from your network. Please wait {} seconds and try again.",
            wait.seconds()
        );
        let page = refuse(StatusCode::TOO_MANY_REQUESTS, message).await?;
        return Ok(wait.with_retry_after(page));
    }
    let name = normalize_name(&form.name);
    let name = name.as_str();
    let display_name = if form.display_name.trim().is_empty() {
        name
    } else {
        form.display_name.as_str()
    };
    let created = match check(&form, name, display_name) {
        Ok(()) => create(&state, name, display_name, &form.password).await,
        Err(error) => Ok(Created::Refused(error)),
    };
    let created = match created {
        Ok(created) => created,
        Err(AppError::Hash(HashError::Busy)) => {
            events::hashing_queue_full(client);
            crate::metrics::registration(Registration::Busy);
            return page.busy(&state, viewer.user()).await;
        }
        Err(error) => return Err(error),
    };
    let (status, message) = match created {
        Created::User(user) => {
            events::account_created(&user, client);
            // Logged in as `/login` does: whatever id this browser had dies here.
            let device = Device::of(&headers, client);
            accounts::log_in(&session, state.auth_keys(), &user, device).await?;
            let text = format!(
                "Welcome, {}! Your account {} is ready, and you are logged in.",
                user.display_name, user.name
            );
            crate::metrics::registration(Registration::Created);
            flash::push(&session, "message", &text).await?;
            events::login_succeeded(&user, client);
            let mut response = Redirect::to("/").into_response();
            let device_cookie = state.device_cookies().issue(&user);
            response
                .extensions_mut()
                .insert(SetDeviceCookie(device_cookie));
            return Ok(response);
        }
        Created::TooMany(wait) => {
            let max = state.site_config().register_total_rate_limit.max;
            events::registration_limited(client, "REGISTER_TOTAL_RATE_LIMIT", max);
            crate::metrics::registration(Registration::RateLimited);
            let message = format!(
                "Too many accounts are being created right now. Please try again in {} seconds.",
                wait.seconds()
            );
            let page = refuse(StatusCode::SERVICE_UNAVAILABLE, message).await?;
            return Ok(wait.with_retry_after(page));
        }
        Created::Refused(UsersError::Invalid(rule)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, upper_first(rule))
        }
        Created::Refused(taken @ (UsersError::Taken | UsersError::LooksTaken)) => {
            (StatusCode::CONFLICT, upper_first(&taken.to_string()))
        }
        Created::Refused(other) => return Err(other.into()),
    };
    crate::metrics::registration(Registration::Refused);
    refuse(status, format!("{message}.")).await
}

/// What became of a registration that passed the per-client limit.
enum Created {
    /// The account exists.
    User(User),
    /// The form broke a rule, or the name is taken.
    Refused(UsersError),
    /// `REGISTER_TOTAL_RATE_LIMIT`: too many registrations from everyone just now.
    TooMany(TooManyAttempts),
}

/// The form's own rules, checked before anything costs.
fn check(form: &RegisterForm, name: &str, display_name: &str) -> Result<(), UsersError> {
    validate_name(name)?;
    let display_name = validate_display_name(display_name)?;
    validate_new_password(&form.password, &[name, display_name])?;
    if form.password == form.confirm {
        Ok(())
    } else {
        Err(UsersError::Invalid("the two passwords differ"))
    }
}

/// Checks that the name is free, then (within the overall limit) hashes the password and
/// creates the account: nothing costs a hash that could not become an account. The database
/// still refuses a name taken meanwhile.
async fn create(
    state: &AppState,
    name: &str,
    display_name: &str,
    password: &str,
) -> Result<Created, AppError> {
    if let Some(conflict) = state.users().name_conflict(name).await? {
        return Ok(Created::Refused(conflict));
    }
    if let Decision::Limited { retry_after } =
        state.register_limits().total.attempt(TOTAL_KEY).await
    {
        return Ok(Created::TooMany(TooManyAttempts::after(retry_after)));
    }
    let hash = state.password_hashing().hash(password.to_owned()).await?;
    Ok(
        match state.users().create(name, display_name, &hash).await {
            Ok(user) => Created::User(user),
            Err(error) => Created::Refused(error),
        },
    )
}

/// The password rules the form states, from the constants that enforce them.
pub(crate) fn with_rules(context: minijinja::Value) -> minijinja::Value {
    context! {
        password_min => PASSWORD_CHARS.start(),
        password_max => PASSWORD_CHARS.end(),
        password_recommended => RECOMMENDED_CHARS,
        ..context
    }
}

/// `a user name …` → `A user name …`.
fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}
