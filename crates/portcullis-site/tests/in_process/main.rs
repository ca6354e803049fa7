//! The site in-process, as one test binary: `app(state)` on a memory store and a
//! `ManualClock`, driven with `oneshot` (the harness), for accounts, pages and sessions.

mod auth;
mod docs;
mod endings;
mod harness;
mod limits;
mod origin;
mod pages;
mod pre_session;
mod routes;
mod sessions;
