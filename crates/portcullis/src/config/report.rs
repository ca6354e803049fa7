//! What `portcullis config` shows: [`Config::report`] lists every setting with its value
//! (secrets redacted) and source, and [`Config::warnings`] lists legal but risky choices.

use std::time::Duration;

use super::error::{REDACTED, redact_url_password};
use super::rules::is_loopback;
use super::secret::MIN_SECRET_BYTES;
use super::{Config, Profile, SessionFormat, Setting, StoreKind};

impl Config {
    /// Every setting, in the order of the table in the module docs, with its value as `.env`
    /// would spell it and where it came from. Secrets print as `[redacted]` (one per fallback
    /// key) and a password in `REDIS_URL` is redacted.
    #[must_use]
    pub fn report(&self) -> Vec<Setting> {
        let fallbacks = vec![REDACTED; self.secret_key_fallbacks.len()].join(",");
        let values: [(&'static str, String); 33] = [
            ("PORTCULLIS_PROFILE", self.profile.to_string()),
            ("SECRET_KEY", REDACTED.to_owned()),
            ("SECRET_KEY_FALLBACKS", fallbacks),
            (
                "PERMANENT_SESSION_LIFETIME",
                duration(self.permanent_session_lifetime),
            ),
            (
                "SESSION_ABSOLUTE_LIFETIME",
                duration(self.session_absolute_lifetime),
            ),
            ("SESSION_PERMANENT", self.session_permanent.to_string()),
            (
                "SESSION_REFRESH_EACH_REQUEST",
                self.session_refresh_each_request.to_string(),
            ),
            ("SESSION_TYPE", self.session_type.to_string()),
            ("SESSION_FORMAT", self.session_format.to_string()),
            ("SESSION_KEY_PREFIX", self.session_key_prefix.clone()),
            ("SESSION_USE_SIGNER", self.session_use_signer.to_string()),
            (
                "SESSION_FILE_DIR",
                self.session_file_dir.display().to_string(),
            ),
            ("SESSION_COOKIE_NAME", self.session_cookie_name.clone()),
            (
                "SESSION_COOKIE_DOMAIN",
                self.session_cookie_domain.clone().unwrap_or_default(),
            ),
            ("SESSION_COOKIE_PATH", self.session_cookie_path.clone()),
            (
                "SESSION_COOKIE_SECURE",
                self.session_cookie_secure.to_string(),
            ),
            (
                "SESSION_COOKIE_HTTPONLY",
                self.session_cookie_httponly.to_string(),
            ),
            (
                "SESSION_COOKIE_SAMESITE",
                self.session_cookie_samesite.to_string(),
            ),
            ("SESSION_MAX_BYTES", self.session_max_bytes.to_string()),
            (
                "SESSION_MAX_PER_USER",
                self.session_max_per_user
                    .map_or("none".to_owned(), |max| max.to_string()),
            ),
            (
                "SESSION_LIMIT_POLICY",
                match self.session_limit_policy {
                    crate::store::LimitPolicy::EvictOldest => "evict-oldest",
                    crate::store::LimitPolicy::Refuse => "refuse",
                }
                .to_owned(),
            ),
            ("REDIS_URL", redact_url_password(&self.redis_url)),
            (
                "REDIS_CONNECT_TIMEOUT",
                duration(self.redis_connect_timeout),
            ),
            (
                "REDIS_RESPONSE_TIMEOUT",
                duration(self.redis_response_timeout),
            ),
            ("WTF_CSRF_ENABLED", self.wtf_csrf_enabled.to_string()),
            (
                "WTF_CSRF_TIME_LIMIT",
                self.wtf_csrf_time_limit.map_or("none".to_owned(), duration),
            ),
            ("CSRF_TRUSTED_ORIGINS", self.csrf_trusted_origins.join(",")),
            ("MAX_CONTENT_LENGTH", self.max_content_length.to_string()),
            ("PORTCULLIS_BIND", self.bind.to_string()),
            (
                "PORTCULLIS_ALLOW_DEV_PROFILE",
                self.allow_dev_profile.to_string(),
            ),
            ("DATABASE_URL", redact_url_password(&self.database_url)),
            ("LOGIN_RATE_LIMIT", self.login_rate_limit.to_string()),
            ("TRUSTED_PROXIES", join(&self.trusted_proxies)),
        ];
        values
            .into_iter()
            .map(|(name, value)| Setting {
                name,
                value,
                source: self.source(name),
            })
            .collect()
    }

    /// Choices that are allowed but weaken a production deployment, one sentence each; empty
    /// when there is nothing to say.
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        let redis = self.profile == Profile::Redis;
        let mut warnings = Vec::new();
        let mut warn = |condition: bool, text: String| {
            if condition {
                warnings.push(text);
            }
        };
        warn(
            redis && !self.session_cookie_secure,
            "SESSION_COOKIE_SECURE=false on the redis profile: the session cookie is also sent \
             over plain HTTP, where it can be read and stolen"
                .to_owned(),
        );
        warn(
            !self.wtf_csrf_enabled,
            "WTF_CSRF_ENABLED=false: forms are not protected against cross-site request forgery"
                .to_owned(),
        );
        warn(
            !self.session_use_signer,
            "SESSION_USE_SIGNER=false: session cookies are not signed, so forged or guessed ids \
             reach the session store"
                .to_owned(),
        );
        warn(
            redis && !self.session_permanent,
            "SESSION_PERMANENT=false on the redis profile: session cookies carry no expiry and \
             live until the browser closes, which session restore can make forever"
                .to_owned(),
        );
        warn(
            redis && self.session_type == StoreKind::Memory,
            "SESSION_TYPE=memory on the redis profile: sessions are lost on restart and not \
             shared between processes"
                .to_owned(),
        );
        warn(
            self.could_use_host_prefix(),
            format!(
                "SESSION_COOKIE_NAME={name:?}: consider __Host-{name}; with Secure on, path / \
                 and no domain, the prefix stops subdomains and plain HTTP from setting it",
                name = self.session_cookie_name
            ),
        );
        warn(
            !self.session_cookie_httponly,
            "SESSION_COOKIE_HTTPONLY=false: scripts on the page can read the session cookie"
                .to_owned(),
        );
        warn(
            self.profile == Profile::Dev && !is_loopback(self.bind),
            format!(
                "PORTCULLIS_ALLOW_DEV_PROFILE=true lets the dev profile listen on {}: it keeps \
                 sessions in local files and is not for production",
                self.bind
            ),
        );
        self.flask_warnings(&mut warnings);
        warnings
    }

    /// What `SESSION_FORMAT=flask` gives up, and what it needs from Redis.
    fn flask_warnings(&self, warnings: &mut Vec<String>) {
        if self.session_format != SessionFormat::Flask {
            return;
        }
        warnings.push(
            "SESSION_FORMAT=flask gives up the native format's guarantees to share sessions with \
             a Flask app: records are plain MessagePack in Redis (whoever reads Redis reads them, \
             whoever writes it changes them), cookies and CSRF tokens are signed with HMAC-SHA1, \
             SECRET_KEY_FALLBACKS are ignored (no key rotation: a new SECRET_KEY logs everybody \
             out), CSRF tokens are not masked against BREACH, the absolute lifetime is enforced \
             on the Rust routes only, and Flask writes the whole session back on every request \
             (the last writer wins)"
                .to_owned(),
        );
        let tls = self.redis_url.contains("rediss://");
        let password = redact_url_password(&self.redis_url) != self.redis_url;
        warnings.push(format!(
            "SESSION_FORMAT=flask: Flask-Session falls back to pickle for a record it cannot \
             decode, so anyone who can write to Redis can run code in the Flask app: Redis needs \
             a password or TLS{}",
            if tls || password {
                ""
            } else {
                ", and REDIS_URL has neither (redis://:password@host, rediss://)"
            }
        ));
        if self.secret_key.len() < MIN_SECRET_BYTES {
            warnings.push(format!(
                "SECRET_KEY is {} bytes, under the {MIN_SECRET_BYTES} the native format requires: \
                 accepted because SESSION_FORMAT=flask takes the Flask app's key; give both apps \
                 a longer one",
                self.secret_key.len()
            ));
        }
        if !self.secret_key_fallbacks.is_empty() {
            warnings.push(
                "SECRET_KEY_FALLBACKS is ignored with SESSION_FORMAT=flask: Flask-Session and \
                 Flask-WTF sign with SECRET_KEY only"
                    .to_owned(),
            );
        }
    }

    /// Whether the cookie meets the `__Host-` prefix's conditions without using the prefix.
    fn could_use_host_prefix(&self) -> bool {
        let prefixed = self
            .session_cookie_name
            .to_ascii_lowercase()
            .starts_with("__host-");
        !prefixed
            && self.session_cookie_secure
            && self.session_cookie_path == "/"
            && self.session_cookie_domain.is_none()
    }
}

/// A list as `.env` would spell it: comma-separated.
fn join(items: &[impl ToString]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A duration as `.env` would accept it back, e.g. `5m` or `1h 30m`.
fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
