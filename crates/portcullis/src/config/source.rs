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

#[cfg(test)]
mod tests {
    use super::Layers;
    use crate::config::test_support::*;

    #[test]
    fn environment_beats_dotenv_and_dotenv_beats_default() {
        let dir = tempdir().unwrap();
        let text = "SESSION_COOKIE_NAME=from_dotenv\n\
                    PERMANENT_SESSION_LIFETIME=10m\n\
                    SECRET_KEY='a-dotenv-key-that-is-long-enough-01'\n";
        let file = dotenv(&dir, text);
        let pairs = keyed(&[("SESSION_COOKIE_NAME", "from_env")]);
        let c = loader(&dir, &pairs).dotenv_file(file).load().unwrap();
        assert_eq!(c.session_cookie_name, "from_env");
        assert_eq!(c.source("SESSION_COOKIE_NAME"), Source::Environment);
        assert_eq!(c.secret_key.as_bytes(), KEY.as_bytes());
        assert_eq!(c.permanent_session_lifetime, Duration::from_secs(600));
        assert_eq!(c.source("PERMANENT_SESSION_LIFETIME"), Source::DotEnv);
        assert_eq!(c.session_cookie_path, "/");
        assert_eq!(c.source("SESSION_COOKIE_PATH"), Source::Default);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn dotenv_sets_the_profile_and_its_last_duplicate_wins() {
        let dir = tempdir().unwrap();
        let file = dotenv(&dir, "PORTCULLIS_PROFILE=dev\nPORTCULLIS_PROFILE=redis\n");
        let c = loader(&dir, &keyed(&[])).dotenv_file(file).load().unwrap();
        assert_eq!(c.profile, Profile::Redis);
        assert_eq!(c.source("PORTCULLIS_PROFILE"), Source::DotEnv);
        assert!(
            c.session_cookie_secure,
            "the redis profile's defaults apply"
        );
    }

    #[test]
    fn a_missing_dotenv_file_is_fine() {
        let dir = tempdir().unwrap();
        let c = loader(&dir, &keyed(&[]))
            .dotenv_file(dir.path().join("absent.env"))
            .load();
        assert!(c.is_ok());
    }

    #[test]
    fn a_malformed_dotenv_file_is_refused_without_echoing_values() {
        let dir = tempdir().unwrap();
        let file = dotenv(
            &dir,
            "SESSION_TYPE=redis\nSECRET_KEY=\"unterminated-secret-value\n",
        );
        let err = loader(&dir, &[]).dotenv_file(&file).load().unwrap_err();
        assert!(
            matches!(&err, ConfigError::DotEnv { path, .. } if *path == file),
            "{err:?}"
        );
        let text = format!("{err} {err:?}");
        assert!(!text.contains("unterminated-secret"), "{text}");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn a_non_utf8_environment_value_is_refused() {
        let environment = HashMap::from([(
            "SESSION_COOKIE_NAME".to_owned(),
            OsString::from_vec(vec![0xff]),
        )]);
        let layers = Layers {
            command_line: HashMap::new(),
            environment,
            dotenv: HashMap::new(),
        };
        let err = layers.lookup("SESSION_COOKIE_NAME").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid SESSION_COOKIE_NAME=\"\u{fffd}\": valid UTF-8 text"
        );
    }
}
