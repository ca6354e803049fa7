//! Where a setting's raw text comes from: the command line, then the process environment, then
//! the `.env` file, each lookup returning the [`Source`] that supplied the value. The `.env`
//! file is read into a map; the process environment is never modified.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use super::{ConfigError, Source};
use crate::redact::REDACTED;

/// The three layers a setting can be given in, highest precedence first.
pub(super) struct Layers {
    /// Settings given as command-line options, by environment name.
    pub(super) command_line: HashMap<&'static str, String>,
    /// The process environment, or a replacement given by tests.
    pub(super) environment: HashMap<String, OsString>,
    /// The `.env` file's variables.
    pub(super) dotenv: HashMap<String, String>,
}

impl Layers {
    /// The raw value of `setting` and where it came from, or `None` if no layer sets it.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] if the environment holds a value that is not UTF-8.
    pub(super) fn lookup(
        &self,
        setting: &'static str,
    ) -> Result<Option<(String, Source)>, ConfigError> {
        if let Some(value) = self.command_line.get(setting) {
            return Ok(Some((value.clone(), Source::CommandLine)));
        }
        if let Some(value) = self.environment.get(setting) {
            let value = value.clone().into_string().map_err(|value| {
                ConfigError::invalid(setting, &value.to_string_lossy(), "valid UTF-8 text")
            })?;
            return Ok(Some((value, Source::Environment)));
        }
        Ok(self
            .dotenv
            .get(setting)
            .map(|value| (value.clone(), Source::DotEnv)))
    }
}

/// The process environment. Variables whose names are not UTF-8 cannot be settings and are
/// skipped; values stay raw so that a non-UTF-8 setting is reported, not silently altered.
pub(super) fn process_environment() -> HashMap<String, OsString> {
    std::env::vars_os()
        .filter_map(|(name, value)| name.into_string().ok().map(|name| (name, value)))
        .collect()
}

/// The variables of the `.env` file at `path`; none if the file does not exist. A variable
/// given twice keeps its last value, as python-dotenv and the shell do.
///
/// # Errors
///
/// [`ConfigError::DotEnv`] if the file exists but cannot be read or has a malformed line.
pub(super) fn read_dotenv(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let error = |source| ConfigError::DotEnv {
        path: path.to_owned(),
        source: redact_line(source),
    };
    let lines = match dotenvy::from_path_iter(path) {
        Ok(lines) => lines,
        Err(e) if e.not_found() => return Ok(HashMap::new()),
        Err(e) => return Err(error(e)),
    };
    lines.map(|line| line.map_err(error)).collect()
}

/// dotenvy quotes a malformed line in full, and the line may hold a secret: keep only the
/// variable name.
fn redact_line(error: dotenvy::Error) -> dotenvy::Error {
    match error {
        dotenvy::Error::LineParse(line, index) => {
            let shown = match line.split_once('=') {
                Some((name, _)) => format!("{}={REDACTED}", name.trim()),
                None => REDACTED.to_owned(),
            };
            dotenvy::Error::LineParse(shown, index)
        }
        other => other,
    }
}
