#![doc = include_str!("docs/overview.md")]
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod csrf;
mod itsdangerous;
pub mod keys;
mod response;
pub mod session;
pub mod store;

pub use session::{Session, SessionError, SessionLayer};
