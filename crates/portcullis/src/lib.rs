#![doc = include_str!("docs/overview.md")]
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod csrf;
mod error_chain;
pub mod events;
mod folder;
#[cfg(feature = "flask")]
mod itsdangerous;
pub mod keys;
pub mod metrics;
pub mod redact;
mod response;
pub mod session;
pub mod store;

pub use error_chain::ErrorChain;
pub use response::Answer;
pub use session::{Session, SessionError, SessionLayer};
