//! The Portcullis reference site: a small, clean web application that shows every promise of
//! the session layer to a person (register, log in, a protected page with the time left in the
//! session, protected forms, log out, and expiry after 5 idle minutes), and the template a team
//! copies to start a real application. The `portcullis` binary serves it.
//!
//! Build the router with [`app`] from an [`AppState`]; tests drive it in-process with
//! `tower::ServiceExt::oneshot`, the binary serves it with the client's socket address.
//!
//! # Layout
//!
//! - `routes/`: one file per area: `home.rs` (`/`), `register.rs`, `login.rs` (log in and out),
//!   `account.rs`, `sessions.rs` (`/account/sessions`), `api.rs` (`/api/...`), `health.rs`,
//!   `assets.rs`; `mod.rs` holds the table;
//! - `templates/`: the minijinja templates and the stylesheet, embedded in the binary;
//! - `page.rs`: renders a template with what every page shows (user, flashes, CSRF field);
//! - `viewer.rs`: who is asking, as extractors; ends sessions whose password changed;
//! - `auth.rs`: logging in (regenerate, `_user_id`, `_auth_hash`, `_device`);
//! - `device.rs`: the browser and address a session logged in from;
//! - `admin.rs`: what the command line does to a user's sessions (list, end, reset password);
//! - `users.rs`: the accounts in SQLite, and the rules for names and passwords;
//! - `password.rs`: Argon2id hashing;
//! - `rate_limit.rs`: failed log-in limits; `client_addr.rs`: the client's address;
//! - `next.rs`: `?next=` validation (no open redirect); `flash.rs`: flashed messages;
//! - `prefs.rs`: display preferences kept in the session;
//! - `headers.rs`: security headers; `error.rs`: errors that are responses;
//! - `state.rs`: the shared [`AppState`]; `config.rs`: the site's own settings.
//!
//! # Session keys
//!
//! Flask's conventions, so a Flask app can share the session: `_user_id` (Flask-Login, the id
//! as a string), `_flashes` (`[[category, message], ...]`), plus `_auth_hash` (Django's idea:
//! HMAC of the password hash, so a password change ends other sessions), `_device` and
//! `_prefs`.
#![forbid(unsafe_code)]

pub mod admin;
mod auth;
mod client_addr;
pub mod config;
pub mod device;
pub mod error;
mod flash;
mod headers;
pub mod next;
mod page;
pub mod password;
mod prefs;
pub mod rate_limit;
mod routes;
mod state;
mod templates;
pub mod users;
mod viewer;

pub use headers::CONTENT_SECURITY_POLICY;
pub use routes::app;
pub use state::{AppState, StartError};
