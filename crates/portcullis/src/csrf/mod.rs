//! CSRF protection (the token layer comes with the CSRF issue).

/// The session key holding the CSRF secret, as Flask-WTF names it. Regenerating a session
/// removes it, so a login rotates the secret.
pub const SESSION_KEY: &str = "csrf_token";
