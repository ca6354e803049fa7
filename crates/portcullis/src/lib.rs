#![doc = include_str!("docs/overview.md")]
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod csrf;
pub mod keys;
mod response;
pub mod session;
pub mod store;

pub use response::Answer;
pub use session::{Session, SessionError, SessionLayer};
