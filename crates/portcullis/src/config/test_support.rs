//! What the configuration's tests share: loaders over given variables, a valid key, `.env`
//! files; each file's tests sit in that file.

pub(super) use std::collections::HashMap;
pub(super) use std::ffi::OsString;
pub(super) use std::fs;
pub(super) use std::os::unix::ffi::OsStringExt;
pub(super) use std::os::unix::fs::PermissionsExt;
pub(super) use std::path::PathBuf;
pub(super) use std::time::Duration;

pub(super) use tempfile::{TempDir, tempdir};

pub(super) use super::*;

/// Exactly the minimum length, 32 bytes.
pub(super) const KEY: &str = "0123456789abcdef0123456789abcdef";
pub(super) const OLD_KEY: &str = "an-older-key-that-is-long-enough-0001";

pub(super) fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A loader over `pairs` only: no process environment, no `.env`, state in `dir`.
pub(super) fn loader(dir: &TempDir, pairs: &[(&str, &str)]) -> ConfigLoader {
    ConfigLoader::new()
        .env(vars(pairs))
        .no_dotenv()
        .state_dir(dir.path().join("state"))
}

pub(super) fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempdir().unwrap();
    loader(&dir, pairs).load()
}

/// `pairs` with a valid `SECRET_KEY` in front (later pairs win).
pub(super) fn keyed<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![("SECRET_KEY", KEY)];
    all.extend_from_slice(pairs);
    all
}

pub(super) fn error(pairs: &[(&str, &str)]) -> ConfigError {
    load(&keyed(pairs)).expect_err("the configuration should be refused")
}

pub(super) fn dotenv(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path().join(".env");
    fs::write(&path, text).unwrap();
    path
}

pub(super) fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The settings of a Portcullis that shares sessions with a Flask app.
#[cfg(all(feature = "redis", feature = "flask"))]
pub(super) const FLASK: [(&str, &str); 3] = [
    ("PORTCULLIS_PROFILE", "redis"),
    ("SESSION_FORMAT", "flask"),
    ("SESSION_COOKIE_NAME", "__Host-session"),
];
