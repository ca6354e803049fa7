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
//! Four rooms, and the store they share:
//!
//! - `web/`: the site over HTTP
//!   - `mod.rs`: [`app`] and the layer stack;
//!   - `state.rs`: the shared [`AppState`], which owns the process's one session layer;
//!   - `extract.rs`: who is asking and from where, as extractors (`Viewer`, `SignedIn`,
//!     `ApiUser`, `ClientAddr`); ends sessions whose password changed;
//!   - `client_addr.rs`: what a trusted proxy may tell (`X-Forwarded-For`, `X-Forwarded-Proto`);
//!   - `middleware.rs`: the security headers;
//!   - `host.rs`: the front door: `ALLOWED_HOSTS`, the public origin and the HTTPS marker the
//!     CSRF layer reads, and HSTS;
//!   - `error.rs`: errors that are responses; `page.rs`: renders a template with what every
//!     page shows (user, flashes, CSRF field, the user's appearance);
//!   - `text.rs`: times as pages and the command line write them; `next.rs`: `?next=`
//!     validation (no open redirect);
//!   - `routes/`: the route table, declared once as data (`mod.rs`, `table.rs`), and one
//!     file per area (`home`, `register`, `login`, `account`, `sessions`, `api`,
//!     `health`, `assets`), importing from no other route file;
//!   - `templates/`: the minijinja templates and the stylesheet, embedded in the binary;
//! - `accounts/`: who may log in
//!   - `mod.rs`: logging in (regenerate, `_user_id`, `_auth_hash`, `_device`) and the auth hash;
//!   - `users.rs`: the accounts in SQLite or PostgreSQL, and the rules for display names;
//!   - `names.rs`: user names of any script (NFKC, case folding, UTS #39's single-script
//!     test and confusable skeleton);
//!   - `password_policy.rs`: the rules for new passwords (length in code points, the common
//!     and breached passwords of `data/common-passwords.txt`, trivial and context checks);
//!   - `appearance.rs`: the theme and density a user chose, kept on the account;
//!   - `password.rs`: Argon2id hashing in a bounded pool (`PASSWORD_HASH_QUEUE`);
//!   - `rate_limit.rs`: failed log-in and registration limits (an IPv6 client by its /64), and
//!     the `LoginGuard` that log-in and password change share;
//!   - `device_cookie.rs`: OWASP's device cookies, so a stranger's failures never lock a user
//!     out of their own browsers;
//! - `session_data/`: what the site keeps in the session, one file per key: `flash.rs`
//!   (`_flashes`), `prefs.rs` (`_prefs`, the session's view options), `device.rs` (`_device`, and the `DeviceRow` that the
//!   sessions page and `portcullis sessions list` show);
//! - `cli/`: the `portcullis` commands: `mod.rs` (clap's types and the dispatch), `serve.rs`,
//!   `show_config.rs`, `sessions.rs`, `users.rs`; `main.rs` only calls [`cli::Cli::run`];
//! - `events.rs`: the site's security events (OWASP's names), one function each;
//! - `config.rs`: the site's own settings ([`config::SiteConfig`]), declared as the library
//!   declares its own;
//! - `stores.rs`: opens the configured session store, once per process;
//! - `metrics.rs`: the Prometheus recorder, the `/metrics` listener (`METRICS_BIND`) and the
//!   site's own metrics (`docs/METRICS.md`).
//!
//! # Session keys
//!
//! Flask's conventions, so a Flask app can share the session: `_user_id` (Flask-Login, the id
//! as a string), `_flashes` (`[[category, message], ...]`), plus `_auth_hash` (Django's idea:
//! HMAC of the password hash, so a password change ends other sessions), `_device` and
//! `_prefs`.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod cli;
pub mod config;
mod events;
pub mod metrics;
mod session_data;
mod stores;
mod web;

pub use web::{AppState, StartError, app, route_table_markdown, unsafe_routes};
