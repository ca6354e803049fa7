//! The web part of the site: [`app`], the route table and the layer stack. Pages are HTML
//! rendered from `templates/`; `/api/` answers JSON. The README's route table mirrors this one,
//! and a test fails when a mounted path is missing from either.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | the landing page, or the dashboard when logged in |
//! | `GET, POST /register` | create an account |
//! | `GET, POST /login` | log in (`?next=` a local path) |
//! | `POST /logout` | end the session |
//! | `GET /account` | the account page (logged in) |
//! | `POST /account/display-name`, `/account/password`, `/account/preferences` | its forms |
//! | `GET /account/sessions` | every device the user is logged in on |
//! | `POST /account/sessions/end`, `/account/sessions/end-others` | end one (`session=<handle>`), or all but this one |
//! | `GET /api/me` | who is logged in, and the seconds left |
//! | `GET, PATCH /api/prefs` | display preferences kept in the session; `PATCH` sets only the keys it names (`PUT`: the same) |
//! | `GET, POST /api/session` | session values as JSON (tests and the load benchmark) |
//! | `GET /api/csrf-token` | `{"csrf_token": ...}` for the `X-CSRFToken` header |
//! | `GET /healthz` | whether the session store and the database answer |
//! | `GET /static/style.css` | the stylesheet |

pub(crate) mod client_addr;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod middleware;
pub(crate) mod next;
pub(crate) mod page;
mod routes;
pub(crate) mod state;
pub(crate) mod templates;
pub(crate) mod text;

use routes::{account, api, assets, health, home, login, register, sessions};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};

use error::AppError;
use extract::Viewer;
use page::Page;
pub use state::{AppState, StartError};

/// The whole site: routes, the CSRF layer inside the session layer (both the state's, so the
/// process has one of each), and the security headers. Every unsafe
/// request (POST, PUT, ...) needs a CSRF token: the `csrf_token` field that every form
/// carries, or the `X-CSRFToken` header with a token from `/api/csrf-token`.
pub fn app(state: AppState) -> Router {
    let config = state.config();
    let router = Router::new()
        .route("/", get(home::home))
        .route("/register", get(register::form).post(register::submit))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/account", get(account::page))
        .route("/account/display-name", post(account::display_name))
        .route("/account/password", post(account::password))
        .route("/account/preferences", post(account::preferences))
        .route("/account/sessions", get(sessions::page))
        .route("/account/sessions/end", post(sessions::end))
        .route("/account/sessions/end-others", post(sessions::end_others))
        .route("/api/me", get(api::me))
        .route(
            "/api/prefs",
            get(api::prefs)
                .patch(api::patch_prefs)
                .put(api::patch_prefs)
                .layer(DefaultBodyLimit::max(api::MAX_PREFS_BODY)),
        )
        .route("/api/session", get(api::read_values).post(api::write_value))
        .route("/healthz", get(health::healthz))
        .route("/static/style.css", get(assets::stylesheet))
        .route("/api/csrf-token", get(api::csrf_token))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.max_content_length))
        // Inside the session layer: the CSRF check reads the session.
        .layer(state.csrf().clone())
        .layer(state.session_layer().clone())
        // Outside the session layer: a device cookie goes after the session's `Set-Cookie`.
        .layer(axum::middleware::map_response(
            crate::accounts::device_cookie::append_device_cookie,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::warn_untrusted_forwarded,
        ))
        // Outside the CSRF layer: it tells it which requests came over HTTPS.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::mark_https,
        ))
        .with_state(state);
    middleware::add(router)
}

async fn not_found(
    axum::extract::State(state): axum::extract::State<AppState>,
    page: Page,
    viewer: Viewer,
) -> Result<Response, AppError> {
    page.error(
        &state,
        viewer.user(),
        StatusCode::NOT_FOUND,
        "There is no page at this address.",
    )
    .await
}

#[cfg(test)]
mod tests {
    /// The paths `app()` mounts, read from its `.route(` calls in this file.
    fn mounted_paths() -> Vec<&'static str> {
        let source = include_str!("mod.rs");
        let table = source.split("#[cfg(test)]").next().unwrap_or(source);
        table
            .split(".route(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect()
    }

    /// The first cells of the markdown table that starts at the `| route |` header in `text`.
    fn table_routes(text: &str) -> Vec<String> {
        text.lines()
            .map(|line| line.trim_start_matches("//!").trim())
            .skip_while(|line| !line.starts_with("| route |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| line.split('|').nth(1).map(str::to_owned))
            .collect()
    }

    /// Whether a table's first cells name `path` (`GET /x`, `` `POST /x` ``, `` `/x` ``).
    fn listed(cells: &[String], path: &str) -> bool {
        let after_method = format!(" {path}`");
        let alone = format!("`{path}`");
        cells
            .iter()
            .any(|cell| cell.contains(&after_method) || cell.contains(&alone))
    }

    #[test]
    fn every_mounted_route_is_in_the_module_docs_and_the_readme() {
        let paths = mounted_paths();
        assert!(paths.len() >= 15, "found only {paths:?}");
        let docs = table_routes(include_str!("mod.rs"));
        let readme_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme =
            std::fs::read_to_string(readme_path).unwrap_or_else(|e| panic!("{readme_path}: {e}"));
        let readme = table_routes(&readme);
        for path in paths {
            assert!(
                listed(&docs, path),
                "{path} is missing from web/mod.rs's table"
            );
            assert!(
                listed(&readme, path),
                "{path} is missing from the README's route table"
            );
        }
    }
}
