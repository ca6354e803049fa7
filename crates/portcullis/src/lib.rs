//! Portcullis: secure server-side sessions for axum and tower.
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod store;
