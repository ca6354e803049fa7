//! Password hashing with Argon2id at OWASP's parameters (m = 19 MiB, t = 2, p = 1), on the
//! blocking pool so a hash never stalls other requests, and at most one hash per core at a
//! time, so a flood of log-ins queues instead of taking 19 MiB per request. Passwords are never
//! logged.

use std::num::NonZero;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Semaphore;

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};

/// OWASP Password Storage Cheat Sheet, Argon2id: "m=19456 (19 MiB), t=2, p=1".
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// Permits to hash: one per core, since each hash keeps a core busy anyway.
fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(2, NonZero::get))
    })
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .unwrap_or_else(|e| panic!("OWASP's Argon2 parameters are valid: {e}"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashing failed: the blocking pool is gone or the OS random generator failed.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

/// Hashes `password` into a PHC string with a fresh random salt.
///
/// # Errors
/// [`HashError`] when the salt cannot be generated or the task cannot run.
pub async fn hash(password: String) -> Result<String, HashError> {
    let _permit = permits().acquire().await.map_err(|_| HashError)?;
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|_| HashError)
    })
    .await
    .map_err(|_| HashError)?
}

/// Whether `password` matches `stored` (constant time, inside argon2). With `stored` = `None`
/// (no such user) it still does the same work against a dummy hash and answers `false`, so
/// timing does not tell whether a user name exists.
///
/// Inside [`COUNTED`]'s scope, each verification records the parameters of the hash it ran
/// against (never the password), so a test can count the work instead of timing it.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    let Ok(_permit) = permits().acquire().await else {
        return false;
    };
    let counted = COUNTED.try_with(Arc::clone).ok();
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let matches = argon2()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        if let Some(counted) = counted {
            counted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(params_of(&hash).to_owned());
        }
        known && matches
    })
    .await
    .unwrap_or(false)
}

tokio::task_local! {
    /// The Argon2 verifications made by the task running in its scope: the parameters
    /// (`m=19456,t=2,p=1`) of each. Tests scope a request with it to count hashes.
    pub static COUNTED: Arc<Mutex<Vec<String>>>;
}

/// The parameter field of a PHC string (`m=19456,t=2,p=1`), or `""`.
fn params_of(hash: &str) -> &str {
    hash.split('$').nth(3).unwrap_or("")
}

/// A hash of a random password with the same parameters, made once.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        argon2()
            .hash_password(b"no user has this password: it is never checked for real")
            .map(|hash| hash.to_string())
            .unwrap_or_else(|e| panic!("hashing a constant with a fresh salt works: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse".to_owned()).await.ok();
        assert!(
            stored
                .as_deref()
                .is_some_and(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"))
        );
        assert!(verify("correct horse".to_owned(), stored.clone()).await);
        assert!(!verify("wrong horse".to_owned(), stored).await);
        assert!(!verify("correct horse".to_owned(), None).await);
        assert!(!verify("x".to_owned(), Some("not a phc string".to_owned())).await);
    }
}
