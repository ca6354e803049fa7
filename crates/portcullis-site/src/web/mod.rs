//! The web part of the site: [`app`] and the layer stack. The routes are declared once, as
//! data, in `routes/mod.rs` (`routes::table()`): [`app`] mounts them, the README's route table
//! is rendered from them (a test fails until the README holds exactly the rendered one), and
//! [`unsafe_routes`] hands them to the test that sends each without a CSRF token. Pages are
//! HTML rendered from `templates/`; `/api/` answers JSON.

pub(crate) mod client_addr;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod host;
pub(crate) mod limits;
pub(crate) mod middleware;
pub(crate) mod next;
pub(crate) mod page;
mod refused;
mod routes;
pub(crate) mod state;
pub(crate) mod templates;
pub(crate) mod text;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode};
use axum::response::Response;

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
    let (probes, routes): (Vec<_>, Vec<_>) =
        routes::table().into_iter().partition(|route| route.probe);
    let probes = probes
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.router)
        })
        .with_state(state.clone());
    let router = routes
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.router)
        })
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.max_content_length))
        // Inside the session layer: the CSRF check reads the session.
        .layer(state.csrf().clone())
        // Between the two: the CSRF layer's refusals answered in the layout.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refused::answer_refusals,
        ))
        .layer(state.session_layer().clone())
        // Outside the session layer: a device cookie goes after the session's `Set-Cookie`.
        .layer(axum::middleware::map_response(
            crate::accounts::device_cookie::append_device_cookie,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::warn_untrusted_forwarded,
        ))
        // Outside the session layer: a refused host gets no session. Outside the CSRF layer:
        // it tells it the public origin and which requests came over HTTPS.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            host::front_door,
        ))
        .with_state(state.clone());
    // Outside everything else (the security headers apart): a shed request costs nothing.
    // The probes beside it, under the security headers only.
    let router = middleware::add(limits::add(router, &state).merge(probes));
    // Outermost: every request is counted, a shed or refused one too.
    crate::metrics::track_http(router)
}

/// The site's route table in markdown, as the README shows it (rendered from the declaration).
#[must_use]
pub fn route_table_markdown() -> String {
    routes::markdown(&routes::table())
}

/// Every path of the site with its unsafe methods (POST, PATCH, ...), from the route table:
/// each must refuse a request without a CSRF token.
#[must_use]
pub fn unsafe_routes() -> Vec<(&'static str, Vec<Method>)> {
    routes::table()
        .into_iter()
        .map(|route| {
            let methods = route.methods.into_iter().filter(|m| !m.is_safe()).collect();
            (route.path, methods)
        })
        .filter(|(_, methods): &(_, Vec<Method>)| !methods.is_empty())
        .collect()
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
    /// The README's route table, from its header line to the last row.
    fn readme_table(readme: &str) -> String {
        readme
            .lines()
            .skip_while(|line| !line.starts_with("| route |"))
            .take_while(|line| line.starts_with('|'))
            .map(|line| format!("{line}\n"))
            .collect()
    }

    #[test]
    fn the_readme_route_table_is_the_one_rendered_from_the_declaration() {
        let readme = include_str!("../../../../README.md");
        let generated = super::route_table_markdown();
        assert_eq!(
            readme_table(readme),
            generated,
            "the README's route table must be exactly this:\n{generated}"
        );
    }
}
