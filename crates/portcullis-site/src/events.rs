//! The site's security events (docs/EVENTS.md), one function each, so that every place where
//! one happens says so in one line. Each builds only safe fields: the account's id, a typed
//! name as `logged_name` in `login.rs` shows it, the client's address, the limit's setting.

use std::net::IpAddr;

use portcullis::events::{Fields, SecurityEvent, emit};

use crate::accounts::users::User;

/// `authn_login_success`.
pub(crate) fn login_succeeded(user: &User, client: IpAddr) {
    let id = user.id.to_string();
    let fields = Fields {
        user: Some(&id),
        client: Some(client),
        ..Fields::default()
    };
    emit(SecurityEvent::AuthnLoginSuccess, fields, "logged in");
}

/// `authn_login_fail` for a wrong name or password; `user_name` as `logged_name` shows it.
pub(crate) fn login_failed(user_name: &str, client: IpAddr) {
    let fields = Fields {
        user_name: Some(user_name),
        client: Some(client),
        reason: Some("invalid credentials"),
        ..Fields::default()
    };
    emit(SecurityEvent::AuthnLoginFail, fields, "log-in failed");
}

/// `authn_login_fail` for an existing account refused after its password was right.
pub(crate) fn login_refused(user: &User, client: IpAddr, reason: &str) {
    let id = user.id.to_string();
    let fields = Fields {
        user: Some(&id),
        client: Some(client),
        reason: Some(reason),
        ..Fields::default()
    };
    emit(SecurityEvent::AuthnLoginFail, fields, "log-in refused");
}

/// `authn_login_lock`: log-ins refused after `max` failures (`LOGIN_RATE_LIMIT`).
pub(crate) fn login_locked(user_name: &str, client: IpAddr, max: u32) {
    let fields = Fields {
        user_name: Some(user_name),
        client: Some(client),
        reason: Some("maxretries"),
        max: Some(u64::from(max)),
        ..Fields::default()
    };
    emit(
        SecurityEvent::AuthnLoginLock,
        fields,
        "log-in refused: too many failures",
    );
}

/// `authn_login_lock` for the password form, after `max` wrong current passwords.
pub(crate) fn password_form_locked(user: &User, client: IpAddr, max: u32) {
    let id = user.id.to_string();
    let fields = Fields {
        user: Some(&id),
        client: Some(client),
        reason: Some("maxretries"),
        what: Some("password change"),
        max: Some(u64::from(max)),
        ..Fields::default()
    };
    emit(
        SecurityEvent::AuthnLoginLock,
        fields,
        "password change refused: too many failures",
    );
}

/// `authn_password_change_fail`: the password form got a wrong current password.
pub(crate) fn password_change_failed(user: &User, client: IpAddr) {
    let id = user.id.to_string();
    let fields = Fields {
        user: Some(&id),
        client: Some(client),
        reason: Some("current password not matched"),
        ..Fields::default()
    };
    emit(
        SecurityEvent::AuthnPasswordChangeFail,
        fields,
        "password change refused",
    );
}

/// `authn_password_change` on the account page; `ended` other sessions ended.
pub(crate) fn password_changed(user: &User, client: IpAddr, ended: usize) {
    let id = user.id.to_string();
    let fields = Fields {
        user: Some(&id),
        client: Some(client),
        count: Some(ended as u64),
        ..Fields::default()
    };
    emit(
        SecurityEvent::AuthnPasswordChange,
        fields,
        "password changed",
    );
}

/// An administrator's command on the account `user` (`authn_password_change` for a reset,
/// `user_updated` for disable and enable); the sessions it ends are the session layer's to
/// log (`session_expired`, revoked).
pub(crate) fn administered(event: SecurityEvent, user: i64, description: &str) {
    let id = user.to_string();
    let fields = Fields {
        user: Some(&id),
        what: Some("command line"),
        ..Fields::default()
    };
    emit(event, fields, description);
}

/// `user_created`: an account was registered.
pub(crate) fn account_created(user: &User, client: IpAddr) {
    let id = user.id.to_string();
    let fields = Fields {
        user: Some(&id),
        client: Some(client),
        ..Fields::default()
    };
    emit(SecurityEvent::UserCreated, fields, "account created");
}

/// `excess_rate_limit_exceeded` for a registration refused by `limit` (its setting's name).
pub(crate) fn registration_limited(client: IpAddr, limit: &str, max: u32) {
    let fields = Fields {
        client: Some(client),
        what: Some(limit),
        max: Some(u64::from(max)),
        ..Fields::default()
    };
    emit(
        SecurityEvent::ExcessRateLimitExceeded,
        fields,
        "registration refused: too many",
    );
}

/// `excess_rate_limit_exceeded` for a password check refused by a full `PASSWORD_HASH_QUEUE`.
pub(crate) fn hashing_queue_full(client: IpAddr) {
    let fields = Fields {
        client: Some(client),
        what: Some("PASSWORD_HASH_QUEUE"),
        ..Fields::default()
    };
    let description = "password check refused: the hashing queue is full";
    emit(SecurityEvent::ExcessRateLimitExceeded, fields, description);
}

/// `session_expired` (logout): the user of `user` (its id, when logged in) logged out.
pub(crate) fn logged_out(user: Option<&str>, client: IpAddr) {
    let fields = Fields {
        user,
        client: Some(client),
        reason: Some("logout"),
        ..Fields::default()
    };
    emit(SecurityEvent::SessionExpired, fields, "logged out");
}

/// `session_expired` (revoked): a session of `user` lost its right to be in (password changed,
/// account disabled or gone, every session ended).
pub(crate) fn session_revoked(user: i64) {
    let id = user.to_string();
    let fields = Fields {
        user: Some(&id),
        reason: Some("revoked"),
        ..Fields::default()
    };
    let description = "session no longer valid for its user (password changed, account \
                       disabled or gone, or every session ended); logging it out";
    emit(SecurityEvent::SessionExpired, fields, description);
}

/// `session_expired` (revoked) for every logged-in session, from the command line.
pub(crate) fn everyone_logged_out() {
    let fields = Fields {
        reason: Some("revoked"),
        what: Some("command line: every session"),
        ..Fields::default()
    };
    emit(
        SecurityEvent::SessionExpired,
        fields,
        "every session ended from the command line",
    );
}

/// `input_validation_fail` for a `Host` outside `ALLOWED_HOSTS`.
pub(crate) fn host_refused(host: Option<&str>) {
    let fields = Fields {
        what: Some("Host"),
        reason: Some("not in ALLOWED_HOSTS"),
        host: Some(host.unwrap_or("")),
        ..Fields::default()
    };
    emit(
        SecurityEvent::InputValidationFail,
        fields,
        "refused a Host outside ALLOWED_HOSTS",
    );
}

/// `sys_startup`: `serve` is listening, on `profile`.
pub(crate) fn started(profile: &str) {
    let fields = Fields {
        what: Some(profile),
        ..Fields::default()
    };
    emit(SecurityEvent::SysStartup, fields, "the site started");
}

/// `sys_shutdown`: `serve` got its signal; `/readyz` answers 503 from now on.
pub(crate) fn shutdown_requested() {
    let fields = Fields {
        reason: Some("signal"),
        ..Fields::default()
    };
    let description = "shutdown requested: /readyz answers 503; finishing requests in flight";
    emit(SecurityEvent::SysShutdown, fields, description);
}
