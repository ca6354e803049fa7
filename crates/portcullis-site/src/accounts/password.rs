//! Password hashing with Argon2id at OWASP's parameters (m = 19 MiB, t = 2, p = 1), in a
//! [`HashPool`]: on the blocking pool so a hash never stalls other requests, at most one hash
//! per core at a time so a flood of log-ins does not take 19 MiB per request, and a bounded
//! queue (`PASSWORD_HASH_QUEUE`) beyond which a check is refused at once ([`HashError::Busy`],
//! 503 with `Retry-After`) instead of waiting without end. Passwords are never logged.

use std::num::NonZero;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{Semaphore, TryAcquireError};

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};

use super::password_policy::normalize;

/// OWASP Password Storage Cheat Sheet, Argon2id: "m=19456 (19 MiB), t=2, p=1".
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .unwrap_or_else(|e| panic!("OWASP's Argon2 parameters are valid: {e}"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// How long a client refused by a full queue is asked to wait (`Retry-After`): a queue drains
/// in well under a second, so one second is enough and not a punishment.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Hashing could not run.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing thread is busy and `PASSWORD_HASH_QUEUE` checks already wait: answer 503
    /// with `Retry-After` ([`BUSY_RETRY_AFTER`]) rather than queue without end.
    #[error("every password-hashing thread is busy and the queue is full")]
    Busy,
    /// The blocking pool is gone, or the OS random generator failed.
    #[error("password hashing failed")]
    Failed,
}

/// Where password hashes run: at most one per core at a time, on the blocking pool, with at
/// most `queue` more waiting for a turn. A flood of log-ins or registrations then gets 503 at
/// once instead of an ever longer wait that stalls every log-in behind it.
#[derive(Debug)]
pub struct HashPool {
    permits: Arc<Semaphore>,
    threads: usize,
    queue: usize,
    waiting: AtomicUsize,
}

/// Leaves the queue when dropped (the turn came, or the request was dropped while waiting).
struct InQueue<'p>(&'p AtomicUsize);

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::hash_queue_left();
    }
}

impl HashPool {
    /// A pool with one thread per core and room for `queue` waiting jobs.
    #[must_use]
    pub fn new(queue: usize) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, NonZero::get);
        Self {
            permits: Arc::new(Semaphore::new(threads)),
            threads,
            queue,
            waiting: AtomicUsize::new(0),
        }
    }

    /// How many jobs run at once.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `job` on the blocking pool when a thread of this pool is free: at once, after a
    /// wait in the queue, or not at all when the queue is full. The turn is held until `job`
    /// returns, even if the caller stops waiting.
    ///
    /// # Errors
    /// [`HashError::Busy`] when the queue is full; [`HashError::Failed`] when the job panicked or
    /// the runtime is shutting down.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(HashError::Failed),
            Err(TryAcquireError::NoPermits) => {
                let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
                crate::metrics::hash_queue_entered();
                let _in_queue = InQueue(&self.waiting);
                if ahead >= self.queue {
                    return Err(HashError::Busy);
                }
                Arc::clone(&self.permits)
                    .acquire_owned()
                    .await
                    .map_err(|_| HashError::Failed)?
            }
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|_| HashError::Failed)
    }

    /// Hashes `password` into a PHC string with a fresh random salt.
    ///
    /// # Errors
    /// As [`HashPool::run`]; [`HashError::Failed`] also when the salt cannot be generated.
    /// The password is hashed in its NFKC form (`password_policy.rs`), as NIST SP 800-63B asks.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || {
            argon2()
                .hash_password(normalize(&password).as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|_| HashError::Failed)
        })
        .await?
    }

    /// Whether `password` matches `stored` (constant time, inside argon2). With `stored` =
    /// `None` (no such user) it still does the same work against a dummy hash and answers
    /// `false`, so timing does not tell whether a user name exists.
    ///
    /// The NFKC form of `password` is checked first, as new passwords are hashed; a password
    /// that NFKC changes is then checked as typed too, since passwords set before were hashed
    /// as typed. Both depend on the typed password alone, never on whether the user exists.
    ///
    /// Inside [`COUNTED`]'s scope, each verification records the parameters of the hash it ran
    /// against (never the password), so a test can count the work instead of timing it.
    ///
    /// # Errors
    /// As [`HashPool::run`]: the password was not checked.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let counted = COUNTED.try_with(Arc::clone).ok();
        self.run(move || {
            let known = stored.is_some();
            let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
            let normal = normalize(&password);
            let mut tries = vec![normal.as_str()];
            if normal != password {
                tries.push(password.as_str());
            }
            let mut matches = false;
            for typed in tries {
                if let Some(counted) = &counted {
                    counted
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(params_of(&hash).to_owned());
                }
                if argon2()
                    .verify_password(typed.as_bytes(), hash.as_str())
                    .is_ok()
                {
                    matches = true;
                    break;
                }
            }
            known && matches
        })
        .await
    }
}

/// Hashes `password` outside any request (tests, tools): on a pool of this process with no
/// queue bound, since nobody but the caller waits. Requests use their site's
/// [`HashPool`] (`AppState::password_hashing`).
///
/// # Errors
/// As [`HashPool::hash`], never [`HashError::Busy`].
pub async fn hash(password: String) -> Result<String, HashError> {
    static UNBOUNDED: OnceLock<HashPool> = OnceLock::new();
    UNBOUNDED
        .get_or_init(|| HashPool::new(usize::MAX))
        .hash(password)
        .await
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
        let pool = HashPool::new(8);
        let stored = pool.hash("correct horse".to_owned()).await.ok();
        assert!(
            stored
                .as_deref()
                .is_some_and(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"))
        );
        let verify = async |password: &str, stored: Option<String>| {
            pool.verify(password.to_owned(), stored).await.ok()
        };
        assert_eq!(verify("correct horse", stored.clone()).await, Some(true));
        assert_eq!(verify("wrong horse", stored).await, Some(false));
        assert_eq!(verify("correct horse", None).await, Some(false));
        assert_eq!(
            verify("x", Some("not a phc string".to_owned())).await,
            Some(false)
        );
    }

    #[tokio::test]
    async fn new_hashes_are_of_the_nfkc_form_and_old_ones_of_what_was_typed_still_verify() {
        let pool = HashPool::new(8);
        // U+FB01 LATIN SMALL LIGATURE FI: NFKC makes it "fi".
        let typed = "\u{fb01}ne horse battery";
        let stored = pool.hash(typed.to_owned()).await.ok();
        let verify = async |password: &str, stored: Option<String>| {
            pool.verify(password.to_owned(), stored).await.ok()
        };
        assert_eq!(
            verify("fine horse battery", stored.clone()).await,
            Some(true)
        );
        assert_eq!(verify(typed, stored).await, Some(true));
        // A hash made before, of the password as typed (no NFKC).
        let before = argon2()
            .hash_password(typed.as_bytes())
            .map(|hash| hash.to_string())
            .ok();
        assert_eq!(verify(typed, before.clone()).await, Some(true));
        assert_eq!(verify("fine horse batteri", before).await, Some(false));
    }
}
