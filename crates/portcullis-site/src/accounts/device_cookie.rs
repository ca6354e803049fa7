//! OWASP's "device cookies" (Slow Down Online Guessing Attacks with Device Cookies): a browser
//! that has logged in as a user holds a signed cookie saying so, and its log-ins as that user
//! are counted on the device alone (`device:<nonce>`, `LOGIN_RATE_LIMIT`), not on the user
//! name nor the address: a stranger's failures lock out strangers only, never the user's own
//! browsers. A client without one (or with one of another user) is an unknown client, limited
//! per name and per address as before.
//!
//! The value is `<nonce>.<issued>.<signature>`: a random nonce (128 bits), the Unix second it
//! was issued, and HMAC-SHA256 from the key ring over a label, the user's id, the user's current
//! credential (the stored password hash and the account's disabled stamp), the nonce and the
//! time. The cookie names the user only through that keyed hash: it checks out for one user id,
//! and tells nobody which. Binding the credential means a password change (the account page or
//! `users reset-password`) cancels every device cookie of the user: whoever once knew the old
//! password and collected cookies with it is an unknown client again, limited per name, instead
//! of holding one `LOGIN_RATE_LIMIT` of guesses at the new password per cookie. A disable or an
//! enable (`users disable` / `enable`) bumps the user's device epoch, also signed, so an account
//! enabled again holds none of the cookies issued before either. It lives [`LIFETIME`], is `HttpOnly`, `SameSite=Lax`,
//! `Path=/`, `Secure` (and named `__Host-…`) when `SESSION_COOKIE_SECURE` is on, and survives
//! logging out. Every successful log-in issues a new one.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::keys::KeyRing;

use crate::accounts::users::User;

/// The cookie's name over plain HTTP (the `dev` profile).
const NAME: &str = "portcullis_device";
/// Its name when cookies are `Secure`: `__Host-` makes browsers refuse it from a sibling
/// subdomain or over HTTP (RFC 6265bis, cookie prefixes).
const SECURE_NAME: &str = "__Host-portcullis_device";
/// How long a device stays known: a year, below Chrome's cap of 400 days on any cookie.
pub(crate) const LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Bytes of the nonce: 128 bits, so no two devices share a limit.
const NONCE_LEN: usize = 16;
/// The first signed part: this HMAC means "a device cookie", nothing else signed by the ring.
/// v2 added the credential to the signed parts, so every v1 cookie (unbound) is refused.
const LABEL: &[u8] = b"portcullis-site device cookie v2";

/// Issues and checks device cookies.
pub(crate) struct DeviceCookies {
    keys: KeyRing,
    secure: bool,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DeviceCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCookies")
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

/// A request's device cookie, valid for the user it was checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KnownDevice {
    nonce: String,
}

impl KnownDevice {
    /// The device's own key in the log-in limiter.
    pub(crate) fn limit_key(&self) -> String {
        format!("device:{}", self.nonce)
    }
}

impl DeviceCookies {
    /// Device cookies under `config`'s key ring and `Secure` setting, dated by `clock`.
    pub(crate) fn new(config: &Config, clock: Arc<dyn Clock>) -> Self {
        Self {
            keys: config.key_ring(),
            secure: config.session_cookie_secure,
            clock,
        }
    }

    /// The cookie's name.
    pub(crate) fn name(&self) -> &'static str {
        if self.secure { SECURE_NAME } else { NAME }
    }

    /// A `Set-Cookie` value for a browser that just logged in as `user` (or changed its
    /// password: the cookie is bound to `user`'s credential as it is now).
    pub(crate) fn issue(&self, user: &User) -> HeaderValue {
        let mut nonce = [0u8; NONCE_LEN];
        if getrandom::fill(&mut nonce).is_err() {
            // Without randomness there is no cookie to trust: the browser stays unknown.
            tracing::error!("no randomness for a device cookie; none issued");
            return HeaderValue::from_static("");
        }
        let nonce = URL_SAFE_NO_PAD.encode(nonce);
        let issued = self.now_secs().to_string();
        let signature = self.signature(user, &nonce, &issued);
        let mut cookie =
            cookie::Cookie::build((self.name(), format!("{nonce}.{issued}.{signature}")))
                .path("/")
                .http_only(true)
                .secure(self.secure)
                .same_site(cookie::SameSite::Lax)
                .max_age(cookie::time::Duration::seconds(
                    LIFETIME.as_secs().cast_signed(),
                ))
                .build()
                .to_string();
        cookie.retain(|c| c != '\r' && c != '\n');
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The request's device cookie when it is valid for `user` with the credential `user` has
    /// now, and not older than [`LIFETIME`]; `None` for no cookie, another user's, a forged or
    /// an expired one, or one issued before the password was changed.
    pub(crate) fn known(&self, headers: &HeaderMap, user: &User) -> Option<KnownDevice> {
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == self.name())?
            .value()
            .to_owned();
        let mut parts = value.splitn(3, '.');
        let (nonce, issued, signature) = (parts.next()?, parts.next()?, parts.next()?);
        let issued_secs: u64 = issued.parse().ok()?;
        let (id, credential) = bound_to(user);
        let parts = signed_parts(&id, &credential, nonce, issued);
        self.keys.verify(&parts, signature)?;
        let age = self.now_secs().saturating_sub(issued_secs);
        (age <= LIFETIME.as_secs()).then(|| KnownDevice {
            nonce: nonce.to_owned(),
        })
    }

    fn signature(&self, user: &User, nonce: &str, issued: &str) -> String {
        let (id, credential) = bound_to(user);
        self.keys
            .sign(&signed_parts(&id, &credential, nonce, issued))
    }

    fn now_secs(&self) -> u64 {
        self.clock
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// What a cookie is bound to: the user's id, and their credential as it is now (the stored
/// password hash, which every password change replaces with a freshly salted one, the disabled
/// stamp, and the device epoch, which every disable and enable bumps). The hash never leaves the server: it is only signed over, under the ring.
fn bound_to(user: &User) -> (String, String) {
    let disabled = user
        .disabled_at
        .map_or_else(|| "enabled".to_owned(), |at| format!("disabled:{at}"));
    (
        user.id.to_string(),
        format!("{disabled}|{}|{}", user.device_epoch, user.password_hash),
    )
}

/// The signed parts, in order (the ring length-prefixes each, so none can bleed into another).
fn signed_parts<'a>(
    id: &'a str,
    credential: &'a str,
    nonce: &'a str,
    issued: &'a str,
) -> [&'a [u8]; 5] {
    [
        LABEL,
        id.as_bytes(),
        credential.as_bytes(),
        nonce.as_bytes(),
        issued.as_bytes(),
    ]
}

/// A device cookie for the response, carried as a response extension so that the middleware
/// [`append_device_cookie`] sends it after the session layer's own `Set-Cookie`.
#[derive(Clone, Debug)]
pub(crate) struct SetDeviceCookie(pub(crate) HeaderValue);

/// Middleware (outside the session layer): appends a handler's [`SetDeviceCookie`].
pub(crate) async fn append_device_cookie(
    mut response: axum::response::Response,
) -> axum::response::Response {
    if let Some(SetDeviceCookie(value)) = response.extensions_mut().remove::<SetDeviceCookie>()
        && !value.is_empty()
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use portcullis::clock::ManualClock;
    use portcullis::config::ConfigLoader;

    use super::*;

    fn cookies(clock: &ManualClock) -> DeviceCookies {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigLoader::new()
            .env([(
                "SECRET_KEY".to_owned(),
                "a device cookie test key of 32+ bytes".to_owned(),
            )])
            .no_dotenv()
            .state_dir(dir.path().join("state"))
            .load()
            .unwrap();
        DeviceCookies::new(&config, Arc::new(clock.clone()))
    }

    fn user(id: i64) -> User {
        User {
            id,
            name: format!("user{id}"),
            display_name: format!("User {id}"),
            password_hash: "$argon2id$old".to_owned(),
            disabled_at: None,
            device_epoch: 0,
        }
    }

    fn request_with(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
        headers
    }

    #[test]
    fn a_device_cookie_is_known_for_its_user_only_and_until_it_expires() {
        let clock = ManualClock::new();
        let cookies = cookies(&clock);
        let issued = cookies.issue(&user(7));
        let headers = request_with(&issued);
        assert!(cookies.known(&headers, &user(7)).is_some());
        assert!(
            cookies.known(&headers, &user(8)).is_none(),
            "another user's"
        );
        let text = issued.to_str().unwrap();
        assert!(
            !text.contains(".7."),
            "the user id is not in the cookie: {text}"
        );
        let tampered = text.replacen("portcullis_device=", "portcullis_device=A", 1);
        let tampered = request_with(&HeaderValue::from_str(&tampered).unwrap());
        assert!(
            cookies.known(&tampered, &user(7)).is_none(),
            "a changed nonce"
        );
        clock.advance(LIFETIME + Duration::from_secs(1));
        assert!(cookies.known(&headers, &user(7)).is_none(), "expired");
    }

    #[test]
    fn a_device_cookie_is_cancelled_by_a_new_password_or_a_disable() {
        let clock = ManualClock::new();
        let cookies = cookies(&clock);
        let headers = request_with(&cookies.issue(&user(7)));
        let changed = User {
            password_hash: "$argon2id$new".to_owned(),
            ..user(7)
        };
        assert!(
            cookies.known(&headers, &changed).is_none(),
            "a new password"
        );
        let disabled = User {
            disabled_at: Some(1),
            ..user(7)
        };
        assert!(cookies.known(&headers, &disabled).is_none(), "disabled");
        let enabled_again = User {
            device_epoch: 2,
            ..user(7)
        };
        assert!(
            cookies.known(&headers, &enabled_again).is_none(),
            "disabled, then enabled again"
        );
        let fresh = request_with(&cookies.issue(&changed));
        assert!(cookies.known(&fresh, &changed).is_some(), "one issued now");
    }
}
