//! What `portcullis config` warns about: [`Config::warnings`] lists legal but risky choices.
//! (The report of every value, [`Config::report`], is made from the declarations.)

use super::secret::MIN_SECRET_BYTES;
use super::{Config, ExtraSettings, Profile, SessionFormat, StoreKind};
use crate::redact::redact_url_password;

impl Config {
    /// Choices that are allowed but weaken a production deployment, one sentence each; empty
    /// when there is nothing to say.
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        self.warnings_with(&())
    }

    /// As [`Config::warnings`], with an application's own ([`ExtraSettings::warnings`]) after
    /// the library's warnings about single settings and before what the session format gives
    /// up, which closes the list.
    #[must_use]
    pub fn warnings_with(&self, extra: &impl ExtraSettings) -> Vec<String> {
        let mut warnings = self.setting_warnings();
        warnings.extend(extra.warnings(self));
        self.flask_warnings(&mut warnings);
        warnings
    }

    /// The warnings about single settings.
    fn setting_warnings(&self) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[cfg(feature = "redis")]
    #[test]
    fn warnings_name_each_risky_production_choice() {
        let base = [
            ("PORTCULLIS_PROFILE", "redis"),
            ("SESSION_COOKIE_NAME", "__Host-session"),
        ];
        assert_eq!(
            load(&keyed(&base)).unwrap().warnings(),
            Vec::<String>::new()
        );
        assert_eq!(
            load(&keyed(&[])).unwrap().warnings(),
            Vec::<String>::new(),
            "dev defaults"
        );

        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[
                    ("SESSION_COOKIE_SECURE", "false"),
                    ("SESSION_COOKIE_NAME", "session"),
                ],
                "SESSION_COOKIE_SECURE=false on the redis profile",
            ),
            (&[("WTF_CSRF_ENABLED", "false")], "WTF_CSRF_ENABLED=false"),
            (&[("SESSION_USE_SIGNER", "0")], "SESSION_USE_SIGNER=false"),
            (
                &[("SESSION_PERMANENT", "no")],
                "SESSION_PERMANENT=false on the redis profile",
            ),
            (
                &[("SESSION_TYPE", "memory")],
                "SESSION_TYPE=memory on the redis profile: sessions are lost on restart",
            ),
            (
                &[("SESSION_COOKIE_NAME", "session")],
                "SESSION_COOKIE_NAME=\"session\": consider __Host-session",
            ),
            (
                &[("SESSION_COOKIE_HTTPONLY", "off")],
                "SESSION_COOKIE_HTTPONLY=false",
            ),
        ];
        for &(extra, expected) in cases {
            let mut pairs = keyed(&base);
            pairs.extend_from_slice(extra);
            let warnings = load(&pairs).unwrap().warnings();
            assert_eq!(warnings.len(), 1, "{extra:?}: {warnings:?}");
            assert!(warnings[0].starts_with(expected), "{warnings:?}");
        }
    }

    #[test]
    fn host_prefix_advice_only_when_the_cookie_could_take_it() {
        let advises = |pairs: &[(&str, &str)]| {
            let warnings = load(&keyed(pairs)).unwrap().warnings();
            warnings.iter().any(|w| w.contains("consider __Host-"))
        };
        assert!(advises(&[("SESSION_COOKIE_SECURE", "true")]));
        assert!(!advises(&[]), "not Secure on dev");
        let secure = ("SESSION_COOKIE_SECURE", "true");
        assert!(!advises(&[
            secure,
            ("SESSION_COOKIE_DOMAIN", "example.com")
        ]));
        assert!(!advises(&[secure, ("SESSION_COOKIE_PATH", "/app")]));
    }

    #[cfg(all(feature = "redis", feature = "flask"))]
    #[test]
    fn flask_warnings_say_what_the_format_gives_up_and_what_redis_needs() {
        let warnings = load(&keyed(&FLASK)).unwrap().warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        for words in [
            "SESSION_FORMAT=flask gives up",
            "plain MessagePack",
            "HMAC-SHA1",
            "no key rotation",
            "BREACH",
            "the last writer wins",
        ] {
            assert!(warnings[0].contains(words), "{words}: {}", warnings[0]);
        }
        assert!(
            warnings[1].starts_with(
                "SESSION_FORMAT=flask: Flask-Session falls back to pickle for a record it cannot \
                 decode, so anyone who can write to Redis can run code in the Flask app: Redis needs \
                 a password or TLS, and REDIS_URL has neither"
            ),
            "{}",
            warnings[1]
        );
        for url in ["redis://:pw@cache:6379", "rediss://cache:6380"] {
            let mut pairs = keyed(&FLASK);
            pairs.push(("REDIS_URL", url));
            let warnings = load(&pairs).unwrap().warnings();
            assert!(
                warnings[1].ends_with("Redis needs a password or TLS"),
                "{url}: {warnings:?}"
            );
        }
        let mut pairs = keyed(&FLASK);
        pairs.push(("SECRET_KEY_FALLBACKS", OLD_KEY));
        let warnings = load(&pairs).unwrap().warnings();
        assert_eq!(
            warnings.last().map(String::as_str),
            Some(
                "SECRET_KEY_FALLBACKS is ignored with SESSION_FORMAT=flask: Flask-Session and \
                 Flask-WTF sign with SECRET_KEY only"
            )
        );
    }
}
