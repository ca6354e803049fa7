//! TEMPORARY STUB (replaced by the config branch)
#![allow(missing_docs)]
use std::time::Duration;
#[derive(Clone, Copy, Debug)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}
#[derive(Debug)]
pub struct SecretKey(pub String);
#[derive(Debug)]
pub struct Config {
    pub secret_key: SecretKey,
    pub secret_key_fallbacks: Vec<SecretKey>,
    pub session_cookie_name: String,
    pub session_cookie_path: String,
    pub session_cookie_domain: Option<String>,
    pub session_cookie_secure: bool,
    pub session_cookie_httponly: bool,
    pub session_cookie_samesite: SameSite,
    pub permanent_session_lifetime: Duration,
    pub session_absolute_lifetime: Duration,
    pub session_permanent: bool,
    pub session_refresh_each_request: bool,
    pub session_key_prefix: String,
    pub session_use_signer: bool,
    pub session_max_bytes: usize,
}
impl Config {
    pub fn key_ring(&self) -> crate::keys::KeyRing {
        crate::keys::KeyRing::new(self.secret_key.0.as_bytes(), &[])
    }
}
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
