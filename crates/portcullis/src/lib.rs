//! Portcullis: secure server-side sessions for axum and tower.
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod csrf;
pub mod keys;
mod response;
pub mod session;
pub mod store;

pub use session::{Session, SessionError, SessionLayer};
