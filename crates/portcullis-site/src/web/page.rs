//! [`Page`]: the extractor that renders templates with what every page shows: the viewer's
//! name, the waiting flash messages, the CSRF field for forms, and the viewer's appearance
//! (kept on the account; a visitor sees the defaults).

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Value, context};
use portcullis::Session;
use portcullis::csrf::CsrfToken;
use portcullis::session::MissingSessionLayer;

use crate::accounts::appearance::Appearance;
use crate::accounts::users::User;
use crate::session_data::flash;
use crate::web::error::AppError;
use crate::web::extract;
use crate::web::state::AppState;
use crate::web::templates::Templates;
use crate::web::text;

/// Renders pages for one request.
#[derive(Debug)]
pub(crate) struct Page {
    session: Session,
}

impl FromRequestParts<AppState> for Page {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &AppState,
    ) -> Result<Self, MissingSessionLayer> {
        Ok(Self {
            session: extract::session(parts)?,
        })
    }
}

impl Page {
    /// The renderer for `session`'s request, for a middleware that has no extractor.
    pub(crate) fn for_session(session: Session) -> Self {
        Self { session }
    }

    /// The hidden CSRF field, for pages with forms (every page of a logged-in user has the
    /// log-out form). Other pages leave it empty, so a visitor who only reads gets no session.
    /// Made at render time, so a page rendered after a log-in carries the new secret.
    async fn csrf_input(&self, template: &str, signed_in: bool) -> Result<String, AppError> {
        if signed_in || Templates::has_forms(template) {
            Ok(CsrfToken::for_session(&self.session).await?.hidden_input())
        } else {
            Ok(String::new())
        }
    }

    /// Renders `template` with `context` plus the layout's variables, with `status`.
    pub(crate) async fn render(
        &self,
        state: &AppState,
        user: Option<&User>,
        template: &str,
        status: StatusCode,
        context: Value,
    ) -> Result<Response, AppError> {
        let csrf_input = self.csrf_input(template, user.is_some()).await?;
        let flashes = flash::take(&self.session).await?;
        let appearance = match user {
            Some(user) => state.users().appearance(user.id).await?,
            None => Appearance::default(),
        };
        let idle_time = text::duration(state.config().permanent_session_lifetime);
        let user = user
            .map(|u| context! { name => u.name.as_str(), display_name => u.display_name.as_str() });
        let layout = context! {
            user,
            flashes => Value::from(minijinja::value::Serde(&flashes)),
            csrf_input => Value::from_safe_string(csrf_input),
            theme => appearance.theme(),
            density => appearance.density(),
            idle_time,
        };
        let html = state
            .templates()
            .render(template, context! { ..layout, ..context })?;
        Ok((status, Html(html)).into_response())
    }

    /// The answer to a full password-hashing queue: 503, `Retry-After`, and the site's page
    /// saying to try again.
    pub(crate) async fn busy(
        &self,
        state: &AppState,
        user: Option<&User>,
    ) -> Result<Response, AppError> {
        let message = "Too many people are logging in at this moment. Please try again in a \
                       few seconds.";
        let mut response = self
            .error(state, user, StatusCode::SERVICE_UNAVAILABLE, message)
            .await?;
        crate::web::error::with_busy_retry_after(&mut response);
        Ok(response)
    }

    /// An error page (404, 429, ...) with a title and a message.
    pub(crate) async fn error(
        &self,
        state: &AppState,
        user: Option<&User>,
        status: StatusCode,
        message: &str,
    ) -> Result<Response, AppError> {
        let title = status.canonical_reason().unwrap_or("Error");
        self.render(
            state,
            user,
            "error.html",
            status,
            context! { title, message },
        )
        .await
    }
}

/// An error page for answers made before the session layer (a host outside `ALLOWED_HOSTS`,
/// load shedding, timeouts): the layout as a visitor sees it, with no session read or written,
/// and the page's way on to the start page.
pub(crate) fn plain_error(state: &AppState, status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let appearance = Appearance::default();
    let context = context! {
        user => Value::from(()),
        flashes => Value::from(Vec::<Value>::new()),
        csrf_input => Value::from_safe_string(String::new()),
        theme => appearance.theme(),
        density => appearance.density(),
        idle_time => text::duration(state.config().permanent_session_lifetime),
        title,
        message,
    };
    match state.templates().render("error.html", context) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => AppError::from(error).into_response(),
    }
}
