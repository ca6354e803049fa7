//! Security events named with the OWASP Logging Vocabulary: [`SecurityEvent`] and [`emit`],
//! which writes each as one `tracing` event on the [`TARGET`] target, with only fields that
//! are safe to keep in a log. The library emits the session and CSRF events; an app (the
//! reference site) emits the authentication, rate-limit and system ones through the same call.
//!
//! Every event carries `event` (the vocabulary's name, e.g. `authn_login_fail`) and
//! `owasp_level` (the vocabulary's level: `INFO`, `WARN` or `CRITICAL`); its `tracing` level
//! follows (`CRITICAL` is `ERROR`, tracing has no higher). The other fields are [`Fields`],
//! each present only when set. None of them can hold a session id, a cookie, a token or a
//! password: sessions are named by their keyed hash ([`KeyRing::log_hash`] of the store key),
//! and a typed user name only when it names an existing account (people type their password
//! into the name field); otherwise its keyed hash.
//!
//! [`KeyRing::log_hash`]: crate::keys::KeyRing::log_hash

use std::net::IpAddr;

/// The `tracing` target of every security event: filter on it (`RUST_LOG`) or route it to a
/// log of its own.
pub const TARGET: &str = "portcullis::security";

/// A security event, by its name in the OWASP Logging Vocabulary (Application Logging
/// Vocabulary Cheat Sheet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecurityEvent {
    /// `authn_login_success`: a log-in succeeded.
    AuthnLoginSuccess,
    /// `authn_login_fail`: a log-in failed (wrong name or password, a disabled account, the
    /// session cap).
    AuthnLoginFail,
    /// `authn_login_lock`: log-ins are refused for a while after too many failures.
    AuthnLoginLock,
    /// `authn_password_change`: a password was changed (or reset).
    AuthnPasswordChange,
    /// `authn_password_change_fail`: a password change gave a wrong current password.
    AuthnPasswordChangeFail,
    /// `authz_fail`: a request for something its user may not have.
    AuthzFail,
    /// `crypt_decrypt_fail`: a session record did not open (tampered with, or sealed by a key
    /// this process does not hold).
    CryptDecryptFail,
    /// `excess_rate_limit_exceeded`: a request was refused by a rate limit or a queue bound.
    ExcessRateLimitExceeded,
    /// `input_validation_fail`: a request was refused for what it carried: a CSRF refusal,
    /// a session cookie that failed verification.
    InputValidationFail,
    /// `session_created`: a session record was created (a first write, or a log-in).
    SessionCreated,
    /// `session_renewed`: a session got a new id for the same user (a password change, a
    /// log-in again as the same user).
    SessionRenewed,
    /// `session_expired`: a session ended, with the reason (`logout`, `absolute`, `revoked`,
    /// `evicted`).
    SessionExpired,
    /// `session_use_after_expire`: a request presented the cookie of a session that has
    /// expired or was ended.
    SessionUseAfterExpire,
    /// `sys_startup`: the service started.
    SysStartup,
    /// `sys_shutdown`: the service was asked to stop.
    SysShutdown,
    /// `user_created`: an account was created.
    UserCreated,
    /// `user_updated`: an account was changed by an administrator (disabled, enabled).
    UserUpdated,
}

/// The vocabulary's level of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OwaspLevel {
    /// `INFO`: routine, worth keeping.
    Info,
    /// `WARN`: worth a look, alert on a rate.
    Warn,
    /// `CRITICAL`: alert on one.
    Critical,
}

impl OwaspLevel {
    /// `INFO`, `WARN` or `CRITICAL`, as the vocabulary writes it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Critical => "CRITICAL",
        }
    }
}

impl SecurityEvent {
    /// Every event, in the vocabulary's order.
    pub const ALL: [Self; 17] = [
        Self::AuthnLoginSuccess,
        Self::AuthnLoginFail,
        Self::AuthnLoginLock,
        Self::AuthnPasswordChange,
        Self::AuthnPasswordChangeFail,
        Self::AuthzFail,
        Self::CryptDecryptFail,
        Self::ExcessRateLimitExceeded,
        Self::InputValidationFail,
        Self::SessionCreated,
        Self::SessionRenewed,
        Self::SessionExpired,
        Self::SessionUseAfterExpire,
        Self::SysStartup,
        Self::SysShutdown,
        Self::UserCreated,
        Self::UserUpdated,
    ];

    /// The vocabulary's name, e.g. `authn_login_fail`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::AuthnLoginSuccess => "authn_login_success",
            Self::AuthnLoginFail => "authn_login_fail",
            Self::AuthnLoginLock => "authn_login_lock",
            Self::AuthnPasswordChange => "authn_password_change",
            Self::AuthnPasswordChangeFail => "authn_password_change_fail",
            Self::AuthzFail => "authz_fail",
            Self::CryptDecryptFail => "crypt_decrypt_fail",
            Self::ExcessRateLimitExceeded => "excess_rate_limit_exceeded",
            Self::InputValidationFail => "input_validation_fail",
            Self::SessionCreated => "session_created",
            Self::SessionRenewed => "session_renewed",
            Self::SessionExpired => "session_expired",
            Self::SessionUseAfterExpire => "session_use_after_expire",
            Self::SysStartup => "sys_startup",
            Self::SysShutdown => "sys_shutdown",
            Self::UserCreated => "user_created",
            Self::UserUpdated => "user_updated",
        }
    }

    /// The vocabulary's level for the event.
    #[must_use]
    pub const fn level(self) -> OwaspLevel {
        match self {
            Self::AuthnLoginSuccess
            | Self::AuthnPasswordChange
            | Self::SessionCreated
            | Self::SessionRenewed
            | Self::SessionExpired => OwaspLevel::Info,
            Self::AuthnPasswordChangeFail | Self::AuthzFail | Self::SessionUseAfterExpire => {
                OwaspLevel::Critical
            }
            Self::AuthnLoginFail
            | Self::AuthnLoginLock
            | Self::CryptDecryptFail
            | Self::ExcessRateLimitExceeded
            | Self::InputValidationFail
            | Self::SysStartup
            | Self::SysShutdown
            | Self::UserCreated
            | Self::UserUpdated => OwaspLevel::Warn,
        }
    }
}

/// What an event says beyond its name; every field is optional and written only when set.
/// Each must stay safe to log: see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fields<'a> {
    /// The account's id, for an account that exists.
    pub user: Option<&'a str>,
    /// A keyed hash of a session's user id (the library does not know what an app's user ids
    /// reveal).
    pub user_hash: Option<&'a str>,
    /// A typed user name: quoted when it names an existing account, else `hash:` and its keyed
    /// hash.
    pub user_name: Option<&'a str>,
    /// The session, by the keyed hash of its store key.
    pub session: Option<&'a str>,
    /// A keyed hash of a presented cookie value that failed verification (a forged cookie seen
    /// again has the same hash).
    pub cookie_hash: Option<&'a str>,
    /// The client's address.
    pub client: Option<IpAddr>,
    /// Why, in a word or a few (`logout`, `maxretries`, "The CSRF token is missing.").
    pub reason: Option<&'a str>,
    /// Which limit, field or check refused the request.
    pub what: Option<&'a str>,
    /// The request's method, for a refused request.
    pub method: Option<&'a str>,
    /// The request's path (never its query), for a refused request.
    pub path: Option<&'a str>,
    /// The `Host` a refused request was sent to.
    pub host: Option<&'a str>,
    /// How many (sessions ended, failures counted).
    pub count: Option<u64>,
    /// The limit that was reached.
    pub max: Option<u64>,
}

/// Writes `event` as one `tracing` event on [`TARGET`], with `description` as its message,
/// `event` and `owasp_level`, and each field of `fields` that is set.
///
/// ```
/// use portcullis::events::{Fields, SecurityEvent, emit};
///
/// let fields = Fields { user: Some("42"), reason: Some("logout"), ..Fields::default() };
/// emit(SecurityEvent::SessionExpired, fields, "logged out");
/// assert_eq!(SecurityEvent::SessionExpired.name(), "session_expired");
/// ```
pub fn emit(event: SecurityEvent, fields: Fields<'_>, description: &str) {
    macro_rules! at {
        ($level:expr) => {
            tracing::event!(
                target: TARGET,
                $level,
                event = event.name(),
                owasp_level = event.level().as_str(),
                user = fields.user.map(tracing::field::display),
                user_hash = fields.user_hash.map(tracing::field::display),
                user_name = fields.user_name.map(tracing::field::display),
                session = fields.session.map(tracing::field::display),
                cookie_hash = fields.cookie_hash.map(tracing::field::display),
                client = fields.client.map(tracing::field::display),
                reason = fields.reason.map(tracing::field::display),
                what = fields.what.map(tracing::field::display),
                method = fields.method.map(tracing::field::display),
                path = fields.path,
                host = fields.host,
                count = fields.count,
                max = fields.max,
                "{description}"
            )
        };
    }
    match event.level() {
        OwaspLevel::Info => at!(tracing::Level::INFO),
        OwaspLevel::Warn => at!(tracing::Level::WARN),
        OwaspLevel::Critical => at!(tracing::Level::ERROR),
    }
}

// The library's own events, one function each, so that each place where one happens says so
// in one line. Sessions are named by `session`, the keyed hash of their store key.

/// Whether `event` would be written at all (a subscriber listens at its level on [`TARGET`]),
/// so that a caller can skip computing its fields (keyed hashes) when nobody listens.
pub(crate) fn enabled(event: SecurityEvent) -> bool {
    match event.level() {
        OwaspLevel::Info => tracing::enabled!(target: TARGET, tracing::Level::INFO),
        OwaspLevel::Warn => tracing::enabled!(target: TARGET, tracing::Level::WARN),
        OwaspLevel::Critical => tracing::enabled!(target: TARGET, tracing::Level::ERROR),
    }
}

/// `session_created`, or `session_renewed` for a new id of the same user's session.
pub(crate) fn session_written(renewed: bool, session: &str, user_hash: Option<&str>) {
    let fields = Fields {
        session: Some(session),
        user_hash,
        ..Fields::default()
    };
    if renewed {
        emit(
            SecurityEvent::SessionRenewed,
            fields,
            "session renewed under a new id",
        );
    } else {
        emit(SecurityEvent::SessionCreated, fields, "session created");
    }
}

/// `session_expired`: `count` sessions of the user ended, for `reason` (`revoked`, `evicted`
/// at `max`).
pub(crate) fn sessions_ended(user_hash: &str, reason: &str, count: usize, max: Option<usize>) {
    let fields = Fields {
        user_hash: Some(user_hash),
        reason: Some(reason),
        count: Some(count as u64),
        max: max.map(|max| max as u64),
        ..Fields::default()
    };
    emit(
        SecurityEvent::SessionExpired,
        fields,
        "ended sessions of a user",
    );
}

/// `session_expired` (absolute): a loaded session is past its absolute lifetime.
pub(crate) fn session_past_absolute(session: &str) {
    let fields = Fields {
        session: Some(session),
        reason: Some("absolute"),
        ..Fields::default()
    };
    let description = "session past its absolute lifetime; ending it and issuing a new id";
    emit(SecurityEvent::SessionExpired, fields, description);
}

/// `session_use_after_expire`: a cookie named a session that has expired or was ended.
pub(crate) fn session_gone(session: &str) {
    let fields = Fields {
        session: Some(session),
        reason: Some("expired or ended"),
        ..Fields::default()
    };
    let description = "session cookie names no live session (expired or ended); issuing a new id";
    emit(SecurityEvent::SessionUseAfterExpire, fields, description);
}

/// `crypt_decrypt_fail`: `what` (a session record of `bytes`, the routing key) did not open,
/// for `reason`; `session` when known.
pub(crate) fn unopened(what: &str, session: Option<&str>, bytes: usize, reason: &str) {
    let fields = Fields {
        session,
        what: Some(what),
        reason: Some(reason),
        count: (bytes > 0).then_some(bytes as u64),
        ..Fields::default()
    };
    emit(
        SecurityEvent::CryptDecryptFail,
        fields,
        "a session record did not open",
    );
}

/// `input_validation_fail`: the session cookie failed verification `failures` times in one
/// request; `cookie_hash` is the keyed hash of the first value.
pub(crate) fn cookie_unverified(cookie_hash: &str, failures: usize) {
    let fields = Fields {
        cookie_hash: Some(cookie_hash),
        what: Some("session cookie"),
        reason: Some("malformed, or not signed by a key of the ring"),
        count: Some(failures as u64),
        ..Fields::default()
    };
    let description = "session cookie failed verification; starting an anonymous session";
    emit(SecurityEvent::InputValidationFail, fields, description);
}

/// `input_validation_fail`: a CSRF refusal, for `reason`, by `check` (the token, or the
/// origin check that failed).
pub(crate) fn csrf_refused(reason: &str, check: &str, method: &str, path: &str) {
    let fields = Fields {
        what: Some(check),
        reason: Some(reason),
        method: Some(method),
        path: Some(path),
        ..Fields::default()
    };
    emit(
        SecurityEvent::InputValidationFail,
        fields,
        "CSRF protection refused a request",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_a_distinct_vocabulary_name_in_snake_case() {
        let mut names: Vec<&str> = SecurityEvent::ALL.iter().map(|e| e.name()).collect();
        assert!(names.iter().all(|n| {
            n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                && [
                    "authn_", "authz_", "crypt_", "excess_", "input_", "session_", "sys_", "user_",
                ]
                .iter()
                .any(|prefix| n.starts_with(prefix))
        }));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SecurityEvent::ALL.len());
    }

    /// What a JSON subscriber writes, captured.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_event_is_one_json_line_with_its_name_level_and_only_the_fields_set() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let fields = Fields {
                session: Some("abcdefghijklmnop"),
                client: Some(IpAddr::from([127, 0, 0, 1])),
                ..Fields::default()
            };
            emit(SecurityEvent::SessionUseAfterExpire, fields, "expired");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["target"], TARGET);
        assert_eq!(line["event"], "session_use_after_expire");
        assert_eq!(line["owasp_level"], "CRITICAL");
        assert_eq!(line["level"], "ERROR", "CRITICAL is tracing's ERROR");
        assert_eq!(line["session"], "abcdefghijklmnop");
        assert_eq!(line["client"], "127.0.0.1");
        assert_eq!(line["message"], "expired");
        for unset in ["user", "user_name", "reason", "count", "max", "path"] {
            assert!(line.get(unset).is_none(), "{unset} is not set: {line}");
        }
    }

    #[test]
    fn levels_are_the_vocabularys() {
        assert_eq!(SecurityEvent::AuthnLoginSuccess.level(), OwaspLevel::Info);
        assert_eq!(SecurityEvent::AuthnLoginFail.level(), OwaspLevel::Warn);
        assert_eq!(SecurityEvent::SysStartup.level(), OwaspLevel::Warn);
        assert_eq!(
            SecurityEvent::SessionUseAfterExpire.level(),
            OwaspLevel::Critical
        );
        assert_eq!(OwaspLevel::Critical.as_str(), "CRITICAL");
    }
}
