//! [`Route`]: one row of the site's route table, declared once as data. The router mounts the
//! rows ([`app`](crate::app)), the README's route table is rendered from them
//! ([`markdown`]), and a test sends every unsafe method of every row without a CSRF token.

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;

use crate::web::state::AppState;

/// A path, what it does (the README's words), and each method with its handler.
pub(crate) struct Route {
    pub(crate) path: &'static str,
    pub(crate) purpose: &'static str,
    /// In declaration order; `GET` also answers `HEAD` (axum's rule).
    pub(crate) methods: Vec<Method>,
    pub(crate) router: MethodRouter<AppState>,
    /// A probe: mounted outside the session, CSRF, host and load-shedding layers.
    pub(crate) probe: bool,
}

impl Route {
    /// A path with no method yet.
    pub(crate) fn new(path: &'static str, purpose: &'static str) -> Self {
        Self {
            path,
            purpose,
            methods: Vec::new(),
            router: MethodRouter::new(),
            probe: false,
        }
    }

    /// Marks the route as a probe (`/livez`, `/readyz`): outside every layer but the security
    /// headers, so neither a session, a host check nor load shedding stands in its way.
    pub(crate) fn probe(mut self) -> Self {
        self.probe = true;
        self
    }

    /// `GET` (and `HEAD`) by `handler`.
    pub(crate) fn get<H: Handler<T, AppState>, T: 'static>(mut self, handler: H) -> Self {
        self.methods.push(Method::GET);
        self.router = self.router.get(handler);
        self
    }

    /// `POST` by `handler`.
    pub(crate) fn post<H: Handler<T, AppState>, T: 'static>(mut self, handler: H) -> Self {
        self.methods.push(Method::POST);
        self.router = self.router.post(handler);
        self
    }

    /// `PATCH` by `handler`.
    pub(crate) fn patch<H: Handler<T, AppState>, T: 'static>(mut self, handler: H) -> Self {
        self.methods.push(Method::PATCH);
        self.router = self.router.patch(handler);
        self
    }

    /// `PUT` by `handler`.
    pub(crate) fn put<H: Handler<T, AppState>, T: 'static>(mut self, handler: H) -> Self {
        self.methods.push(Method::PUT);
        self.router = self.router.put(handler);
        self
    }

    /// Bodies of this route's requests up to `bytes` (below the site's `MAX_CONTENT_LENGTH`).
    pub(crate) fn body_limit(mut self, bytes: usize) -> Self {
        self.router = self.router.layer(DefaultBodyLimit::max(bytes));
        self
    }

    /// The README's first cell: `` `GET`, `POST /login` ``.
    fn cell(&self) -> String {
        let names: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
        match names.split_last() {
            Some((last, rest)) => {
                let mut cell: String = rest.iter().map(|m| format!("`{m}`, ")).collect();
                cell.push_str(&format!("`{last} {}`", self.path));
                cell
            }
            None => format!("`{}`", self.path),
        }
    }
}

/// The README's route table, header included.
pub(crate) fn markdown(routes: &[Route]) -> String {
    let mut table = String::from("| route | what it does |\n|---|---|\n");
    for route in routes {
        table.push_str(&format!("| {} | {} |\n", route.cell(), route.purpose));
    }
    table
}
