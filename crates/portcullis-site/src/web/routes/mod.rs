//! The route handlers, one file per area of the site; the table that mounts them is `app()` in
//! `web/mod.rs`.

pub(crate) mod account;
pub(crate) mod api;
pub(crate) mod assets;
pub(crate) mod health;
pub(crate) mod home;
pub(crate) mod login;
pub(crate) mod register;
pub(crate) mod sessions;
