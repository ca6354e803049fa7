//! Helpers shared by the library's integration tests: the session app and its request helpers
//! ([`app`]). Real Redis servers and the probing store wrapper are in `portcullis-testing`.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

pub mod app;
