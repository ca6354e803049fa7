//! Accounts: the [`Users`] repository over SQLite or PostgreSQL (runtime queries, one SQL text
//! for both, embedded migrations run at start-up) and the rules for user names, display names
//! and passwords.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{ColumnIndex, Decode, Row, Type};

/// User names: 3 to 32 characters (OWASP's authentication cheat sheet asks for a clear,
/// bounded rule), letters, digits, `_`, `.` and `-`.
const NAME_CHARS: std::ops::RangeInclusive<usize> = 3..=32;
/// Display names: 1 to 64 characters, any printable text.
const DISPLAY_NAME_CHARS: std::ops::RangeInclusive<usize> = 1..=64;
/// Passwords: at least 8 characters (NIST SP 800-63B with MFA absent asks for 8 or more,
/// OWASP for at most 64+ allowed); at most 128 so hashing cost stays bounded.
pub(crate) const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;
/// Connections in the pool: SQLite writes one at a time anyway.
const MAX_CONNECTIONS: u32 = 4;
/// Connections to PostgreSQL per site process: sqlx's default; a log-in needs one for a few
/// milliseconds, and many processes share the server's `max_connections` (100 by default).
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
/// How long a query waits for a connection to PostgreSQL: a server that is down fails the
/// request with a 503 (and `/healthz`) in seconds, not after sqlx's default of 30 s.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

// The schema, embedded in the binary: `MIGRATIONS_SQLITE` and `MIGRATIONS_POSTGRES`, one entry
// per file of `migrations/sqlite/` and `migrations/postgres/`, written by `build.rs` (see
// [`Embedded`] for why not `sqlx::migrate!`).
include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// An account as the site uses it.
#[derive(Clone, Debug)]
pub struct User {
    /// The row id; in the session as a string under `_user_id` (Flask-Login's key).
    pub id: i64,
    /// The user name, as typed at registration.
    pub name: String,
    /// The name shown on pages.
    pub display_name: String,
    /// The Argon2id PHC string.
    pub(crate) password_hash: String,
    /// When an administrator disabled the account (Unix seconds); `None` while enabled.
    pub(crate) disabled_at: Option<i64>,
    /// Bumped by every disable and enable; signed into device cookies, so an account enabled
    /// again holds none of the ones issued before.
    pub(crate) device_epoch: i64,
}

impl User {
    /// Whether the account may log in and be served.
    pub(crate) fn enabled(&self) -> bool {
        self.disabled_at.is_none()
    }
}

/// Why the repository refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The input breaks a rule; the message says which, for the person who typed it.
    #[error("{0}")]
    Invalid(&'static str),
    /// Another account already has this name (in any case).
    #[error("this user name is taken; please choose another")]
    Taken,
    /// The database failed.
    #[error("the accounts database failed")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("the accounts database could not be migrated")]
    Migrate(#[from] MigrateError),
}

impl UsersError {
    /// Whether the database could not be reached (down, refused, closed, timed out), as
    /// opposed to a query it refused: the site answers 503 "try again", not 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Database(
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            )
        )
    }
}

/// The accounts table. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Users {
    pool: Pool,
}

/// The database behind [`Users`], chosen by `DATABASE_URL`'s scheme.
#[derive(Clone, Debug)]
enum Pool {
    /// `sqlite:`: a file next to the site, the embedded default.
    Sqlite(SqlitePool),
    /// `postgres:` or `postgresql:`: one database shared by every process of the site.
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the pool that `$users` holds: each query is written once
/// and compiled for both drivers. The SQL is the subset both speak (`$1` placeholders,
/// `RETURNING`, `ON CONFLICT`), so one text serves both.
macro_rules! with_pool {
    ($users:expr, |$pool:ident| $body:expr) => {
        match &$users.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

impl Users {
    /// Opens the database at `url` and migrates it: a `postgres://` or `postgresql://` URL
    /// connects to PostgreSQL, anything else is a SQLite file (created if needed).
    ///
    /// On PostgreSQL, sqlx's migrator holds an advisory lock while it migrates, so processes
    /// starting at the same moment apply each migration once.
    ///
    /// # Errors
    /// [`UsersError::Database`] when the URL is bad or the database cannot be reached;
    /// [`UsersError::Migrate`] when the schema cannot be applied.
    pub async fn open(url: &str) -> Result<Self, UsersError> {
        if is_postgres_url(url) {
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
                .connect(url)
                .await?;
            Migrator::new(Embedded(MIGRATIONS_POSTGRES))
                .await?
                .run(&pool)
                .await?;
            return Ok(Self {
                pool: Pool::Postgres(pool),
            });
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        Migrator::new(Embedded(MIGRATIONS_SQLITE))
            .await?
            .run(&pool)
            .await?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
        })
    }

    /// Creates an account; `password_hash` is already hashed.
    ///
    /// # Errors
    /// [`UsersError::Invalid`] for a bad name or display name, [`UsersError::Taken`] for a
    /// name in use, [`UsersError::Database`] otherwise.
    pub async fn create(
        &self,
        name: &str,
        display_name: &str,
        password_hash: &str,
    ) -> Result<User, UsersError> {
        validate_name(name)?;
        let display_name = validate_display_name(display_name)?;
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let result = with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO users (name, name_key, display_name, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(name)
            .bind(name_key(name))
            .bind(display_name)
            .bind(password_hash)
            .bind(created)
            .fetch_one(pool)
            .await
            .and_then(|row| row.try_get::<i64, _>("id"))
        });
        match result {
            Ok(id) => Ok(User {
                id,
                name: name.to_owned(),
                display_name: display_name.to_owned(),
                password_hash: password_hash.to_owned(),
                disabled_at: None,
                device_epoch: 0,
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(UsersError::Taken),
            Err(e) => Err(e.into()),
        }
    }

    /// The account named `name`, in any case.
    ///
    /// # Errors
    /// [`UsersError::Database`].
    pub async fn by_name(&self, name: &str) -> Result<Option<User>, UsersError> {
        let key = name_key(name);
        Ok(with_pool!(self, |pool| {
            sqlx::query(
                "SELECT id, name, display_name, password_hash, disabled_at, device_epoch \
                 FROM users WHERE name_key = $1",
            )
            .bind(&key)
            .fetch_optional(pool)
            .await?
            .map(|r| user(&r))
            .transpose()?
        }))
    }

    /// The account with id `id`.
    ///
    /// # Errors
    /// [`UsersError::Database`].
    pub async fn by_id(&self, id: i64) -> Result<Option<User>, UsersError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query(
                "SELECT id, name, display_name, password_hash, disabled_at, device_epoch \
                 FROM users WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|r| user(&r))
            .transpose()?
        }))
    }

    /// Changes the display name; returns it as stored (trimmed).
    ///
    /// # Errors
    /// [`UsersError::Invalid`] for a bad display name, [`UsersError::Database`].
    pub async fn set_display_name(
        &self,
        id: i64,
        display_name: &str,
    ) -> Result<String, UsersError> {
        let display_name = validate_display_name(display_name)?;
        with_pool!(self, |pool| {
            sqlx::query("UPDATE users SET display_name = $1 WHERE id = $2")
                .bind(display_name)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(display_name.to_owned())
    }

    /// Replaces the password hash.
    ///
    /// # Errors
    /// [`UsersError::Database`].
    pub async fn set_password_hash(&self, id: i64, password_hash: &str) -> Result<(), UsersError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(password_hash)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Disables the account (`disabled`) or enables it again.
    ///
    /// # Errors
    /// [`UsersError::Database`].
    pub async fn set_disabled(&self, id: i64, disabled: bool) -> Result<(), UsersError> {
        let at = disabled.then(|| unix_seconds(SystemTime::now()));
        // The epoch moves on both: the device cookies of before a disable stay cancelled after
        // the enable (an administrator disables an account they think taken over).
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE users SET disabled_at = $1, device_epoch = device_epoch + 1 WHERE id = $2",
            )
            .bind(at)
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Logs out every session created before `not_before` (`portcullis sessions end
    /// --everyone`): the site compares each logged-in session's start with it.
    ///
    /// # Errors
    /// [`UsersError::Database`].
    pub async fn end_sessions_before(&self, not_before: SystemTime) -> Result<(), UsersError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO sessions_epoch (id, not_before) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET not_before = excluded.not_before",
            )
            .bind(unix_millis(not_before))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Sessions created before this time are ended; `None` until `sessions end --everyone`.
    ///
    /// # Errors
    /// [`UsersError::Database`].
    pub async fn sessions_not_before(&self) -> Result<Option<SystemTime>, UsersError> {
        let millis: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT not_before FROM sessions_epoch WHERE id = 1")
                .fetch_optional(pool)
                .await?
        });
        Ok(millis.map(|ms| {
            UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        }))
    }

    /// Closes the connections: every later query fails (at shutdown; tests use it for "the
    /// database is down").
    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await);
    }

    /// Whether the database answers (for `/healthz`).
    ///
    /// # Errors
    /// [`UsersError::Database`].
    pub async fn ping(&self) -> Result<(), UsersError> {
        with_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }
}

/// Whether `url` names a PostgreSQL database (the two schemes libpq accepts).
fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A `users` row of either driver as a [`User`].
fn user<'r, R: Row>(row: &'r R) -> Result<User, sqlx::Error>
where
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        disabled_at: row.try_get("disabled_at")?,
        device_epoch: row.try_get("device_epoch")?,
    })
}

fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The case-insensitive form of a name (names are ASCII, so this is exact).
fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Checks a user name: 3 to 32 of letters, digits, `_`, `.`, `-`.
///
/// # Errors
/// [`UsersError::Invalid`] with the rule broken.
pub fn validate_name(name: &str) -> Result<(), UsersError> {
    if !NAME_CHARS.contains(&name.chars().count()) {
        return Err(UsersError::Invalid("a user name has 3 to 32 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(UsersError::Invalid(
            "a user name may hold only letters, digits, '_', '.' and '-'",
        ));
    }
    Ok(())
}

/// Checks a display name and returns it trimmed: 1 to 64 characters, no control characters.
///
/// # Errors
/// [`UsersError::Invalid`] with the rule broken.
pub fn validate_display_name(display_name: &str) -> Result<&str, UsersError> {
    let trimmed = display_name.trim();
    if !DISPLAY_NAME_CHARS.contains(&trimmed.chars().count()) {
        return Err(UsersError::Invalid("a display name has 1 to 64 characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(UsersError::Invalid(
            "a display name may not hold control characters",
        ));
    }
    Ok(trimmed)
}

/// Checks a new password's length: 8 to 128 characters.
///
/// # Errors
/// [`UsersError::Invalid`] with the rule broken.
pub fn validate_password(password: &str) -> Result<(), UsersError> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(UsersError::Invalid("a password has 8 to 128 characters"))
    }
}

/// One dialect's embedded migrations, handed to sqlx's [`Migrator`] without its compile-time
/// macros.
///
/// `sqlx::migrate!("migrations/sqlite")` would do the same in one line, but it needs sqlx's
/// `macros` feature, which is off: it brings the sqlx-macros proc-macro crates (and `syn`) into
/// every clean build, on a project that runs no compile-time query. `build.rs` and twenty lines
/// here cost less; a new migration is one more file in `migrations/sqlite/` and
/// `migrations/postgres/`, with the same number.
#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<Vec<Migration>, Box<dyn std::error::Error + Send + Sync>>>
                + Send,
        >,
    > {
        let migrations = self
            .0
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_the_rules() {
        for good in ["ada", "Ada.Lovelace-1", "a_b", &"x".repeat(32)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "",
            &"x".repeat(33),
            "ada lovelace",
            "ada/..",
            "ädä",
            "<b>",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_and_display_names_are_bounded() {
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password(&"p".repeat(129)).is_err());
        assert_eq!(validate_display_name("  Ada  ").ok(), Some("Ada"));
        assert!(validate_display_name("   ").is_err());
        assert!(validate_display_name("a\u{7}b").is_err());
    }

    #[test]
    fn both_dialects_have_the_same_migrations() {
        let numbers = |migrations: &[(i64, &str, &str)]| {
            migrations
                .iter()
                .map(|&(version, description, _)| (version, description.to_owned()))
                .collect::<Vec<_>>()
        };
        assert!(MIGRATIONS_SQLITE.len() >= 3, "{MIGRATIONS_SQLITE:?}");
        assert_eq!(numbers(MIGRATIONS_SQLITE), numbers(MIGRATIONS_POSTGRES));
    }

    #[test]
    fn postgres_urls_select_postgres() {
        assert!(is_postgres_url("postgres://app@db/users"));
        assert!(is_postgres_url("postgresql://db/users"));
        assert!(!is_postgres_url("sqlite://postgres.db"));
    }

    #[tokio::test]
    async fn names_are_unique_in_any_case() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let url = format!("sqlite://{}", dir.path().join("u.db").display());
        let users = Users::open(&url).await.unwrap_or_else(|e| panic!("{e}"));
        let ada = users.create("Ada", "Ada", "hash").await;
        assert!(ada.is_ok());
        assert!(matches!(
            users.create("ADA", "Other", "hash").await,
            Err(UsersError::Taken)
        ));
        let found = users.by_name("aDa").await.ok().flatten();
        assert_eq!(found.map(|u| u.name), Some("Ada".to_owned()));
        // Reopening runs the migrations again without harm.
        assert!(Users::open(&url).await.is_ok());
    }

    #[tokio::test]
    async fn postgres_holds_the_same_accounts_with_the_same_errors() {
        let url = portcullis_testing::Postgres::shared().database();
        // Two processes starting at once: the migrator's lock applies each migration once.
        let (first, second) = tokio::join!(Users::open(&url), Users::open(&url));
        let users = first.unwrap_or_else(|e| panic!("{e}"));
        assert!(second.is_ok());
        let ada = users
            .create("Ada", " Ada L. ", "hash")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ada.display_name, "Ada L.");
        assert!(matches!(
            users.create("ADA", "Other", "hash").await,
            Err(UsersError::Taken)
        ));
        let found = users.by_name("aDa").await.ok().flatten();
        assert_eq!(found.as_ref().map(|u| u.id), Some(ada.id));
        users
            .set_disabled(ada.id, true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let disabled = users.by_id(ada.id).await.ok().flatten();
        assert!(
            disabled
                .as_ref()
                .is_some_and(|u| !u.enabled() && u.device_epoch == 1)
        );
        assert_eq!(users.sessions_not_before().await.ok(), Some(None));
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert!(users.end_sessions_before(at).await.is_ok());
        assert!(users.end_sessions_before(at).await.is_ok());
        assert_eq!(users.sessions_not_before().await.ok(), Some(Some(at)));
        assert!(users.ping().await.is_ok());
        users.close().await;
        assert!(users.ping().await.is_err_and(|e| e.is_unavailable()));
    }

    #[tokio::test]
    async fn a_postgres_server_that_dies_makes_queries_unavailable_not_failed() {
        let cluster = portcullis_testing::Postgres::start();
        let users = Users::open(&cluster.database())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(users.ping().await.is_ok());
        drop(cluster);
        let started = std::time::Instant::now();
        let error = users.by_name("ada").await.err();
        assert!(
            error.as_ref().is_some_and(UsersError::is_unavailable),
            "{error:?}"
        );
        assert!(
            started.elapsed() < POSTGRES_ACQUIRE_TIMEOUT + std::time::Duration::from_secs(2),
            "bounded by the acquire timeout: {:?}",
            started.elapsed()
        );
        let taken = UsersError::Taken;
        assert!(!taken.is_unavailable());
    }
}
