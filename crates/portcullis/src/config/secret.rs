//! [`SecretKey`], which never prints itself, and the development key file: on the `dev`
//! profile without `SECRET_KEY`, a random key is generated once into `<state_dir>/secret-key`
//! (mode 0600) so that sessions survive restarts.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ConfigError;
use crate::redact::REDACTED;

/// The shortest accepted key, in bytes: an HMAC-SHA256 key should be at least as long as the
/// hash output (RFC 2104, section 3).
pub(super) const MIN_SECRET_BYTES: usize = 32;

/// How to make a good key, for error messages.
pub(super) const GENERATE_HINT: &str = "generate one with `openssl rand -base64 48`";

/// Random bytes in a generated development key (256 bits; 43 base64url characters).
const GENERATED_KEY_BYTES: usize = 32;

/// The development key's file name inside the state directory.
pub(super) const DEV_KEY_FILE: &str = "secret-key";

/// A secret key (`SECRET_KEY` or one of `SECRET_KEY_FALLBACKS`).
///
/// `Debug` and `Display` print `[redacted]`, so a key cannot leak through a log line or a
/// panic message.
#[derive(Clone)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps `key`, which must be at least 32 bytes of UTF-8.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for `SECRET_KEY` if the key is shorter; the error gives the
    /// length, never the key.
    pub fn new(key: impl Into<String>) -> Result<Self, ConfigError> {
        let key = key.into();
        Self::parse(&key).map_err(|allowed| ConfigError::invalid("SECRET_KEY", &key, allowed))
    }

    /// `raw` as a key whatever its length: the Flask format's, where the Flask app defines it.
    pub(super) fn any_length(raw: String) -> Self {
        Self(raw)
    }

    /// `raw` as a key, or what is allowed if it is too short.
    pub(super) fn parse(raw: &str) -> Result<Self, String> {
        check_length(raw)?;
        Ok(Self(raw.to_owned()))
    }

    /// The key material.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The key's length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty; never true for a key built by [`SecretKey::new`].
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// `Err(what is allowed)` if `key` is too short.
fn check_length(key: &str) -> Result<(), String> {
    if key.len() >= MIN_SECRET_BYTES {
        Ok(())
    } else {
        let len = key.len();
        Err(format!(
            "at least {MIN_SECRET_BYTES} bytes (got {len}); {GENERATE_HINT}"
        ))
    }
}

/// The development key from `<state_dir>/secret-key`, generating and saving it first if the
/// file does not exist yet.
pub(super) fn dev_key(state_dir: &Path) -> Result<SecretKey, ConfigError> {
    let path = state_dir.join(DEV_KEY_FILE);
    let file_error = |source| ConfigError::SecretFile {
        path: path.clone(),
        source,
    };
    let key = match fs::read_to_string(&path) {
        Ok(text) => text.trim_end().to_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = generate().map_err(file_error)?;
            match write_new(state_dir, &path, &key) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "generated a development SECRET_KEY");
                    key
                }
                // Another process won the race: use its key.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::read_to_string(&path)
                    .map_err(file_error)?
                    .trim_end()
                    .to_owned(),
                Err(e) => return Err(file_error(e)),
            }
        }
        Err(e) => return Err(file_error(e)),
    };
    check_length(&key).map_err(|allowed| {
        let allowed = format!(
            "{allowed}, in {} (delete it to generate a new one)",
            path.display()
        );
        ConfigError::invalid("SECRET_KEY", &key, allowed)
    })?;
    Ok(SecretKey(key))
}

/// A fresh random key, base64url without padding.
fn generate() -> io::Result<String> {
    let mut bytes = [0u8; GENERATED_KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Creates `dir` (0700) and `path` (0600 from the start, never readable by others), failing
/// with `AlreadyExists` if the file is already there.
fn write_new(dir: &Path, path: &Path, key: &str) -> io::Result<()> {
    let mut dirs = DirBuilder::new();
    dirs.recursive(true);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        dirs.mode(0o700);
        options.mode(0o600);
    }
    dirs.create(dir)?;
    crate::folder::ignore_in_git(dir)?;
    options.open(path)?.write_all(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn a_short_secret_key_is_refused_with_its_length_but_never_its_value() {
        let err = load(&[("SECRET_KEY", "hunter2-is-not-enough")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid SECRET_KEY=[redacted]: at least 32 bytes (got 21); \
             generate one with `openssl rand -base64 48`"
        );
        assert!(!format!("{err:?}").contains("hunter2"));
        // Length is in bytes of UTF-8, not characters: 16 'é' are 32 bytes.
        assert!(load(&[("SECRET_KEY", &"é".repeat(16))]).is_ok());
        assert!(load(&[("SECRET_KEY", &"é".repeat(15))]).is_err());
    }

    #[test]
    fn dev_key_is_generated_once_privately_and_reused() {
        let dir = tempdir().unwrap();
        let state = dir.path().join("state");
        let first = loader(&dir, &[]).load().unwrap();
        assert_eq!(first.source("SECRET_KEY"), Source::Generated);
        assert_eq!(
            first.secret_key.len(),
            43,
            "32 random bytes, base64url without padding"
        );
        let file = state.join("secret-key");
        assert_eq!(fs::read(&file).unwrap(), first.secret_key.as_bytes());
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&state), 0o700);

        let second = loader(&dir, &[]).load().unwrap();
        assert_eq!(second.secret_key.as_bytes(), first.secret_key.as_bytes());
        assert_eq!(second.source("SECRET_KEY"), Source::Generated);

        let elsewhere = load(&[]).unwrap();
        assert_ne!(elsewhere.secret_key.as_bytes(), first.secret_key.as_bytes());
    }

    #[test]
    fn a_truncated_dev_key_file_is_refused_without_echoing_it() {
        let dir = tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir(&state).unwrap();
        fs::write(state.join("secret-key"), "truncated-key").unwrap();
        let message = loader(&dir, &[]).load().unwrap_err().to_string();
        assert!(message.starts_with("invalid SECRET_KEY=[redacted]: at least 32 bytes (got 13)"));
        assert!(
            message.contains("secret-key (delete it to generate a new one)"),
            "{message}"
        );
        assert!(!message.contains("truncated-key"));
    }

    #[test]
    fn an_explicit_dev_key_writes_no_key_file() {
        let dir = tempdir().unwrap();
        loader(&dir, &keyed(&[])).load().unwrap();
        assert!(!dir.path().join("state").exists());
    }

    #[test]
    fn secret_key_never_prints_itself() {
        let key = SecretKey::new(KEY).unwrap();
        assert_eq!(format!("{key} {key:?}"), "[redacted] [redacted]");
        assert_eq!(key.len(), 32);
        assert!(!key.is_empty());
        assert!(matches!(
            SecretKey::new("short"),
            Err(ConfigError::Invalid {
                setting: "SECRET_KEY",
                ..
            })
        ));
    }
}
