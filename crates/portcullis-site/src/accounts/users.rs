//! Accounts: the [`Users`] repository over SQLite or PostgreSQL (runtime queries, one SQL text
//! for both, embedded migrations run at start-up) and the rules for user names (`names.rs`),
//! display names and passwords (`password_policy.rs`).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{names, password_policy};
use crate::accounts::appearance::Appearance;

/// Display names: 1 to 64 characters, any printable text.
const DISPLAY_NAME_CHARS: std::ops::RangeInclusive<usize> = 1..=64;
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
    /// The user name, as typed at registration, trimmed and in NFKC (`names.rs`).
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
    /// Another account has a name that looks the same (UTS #39's confusables: `bob1` and
    /// `bobl`, a Cyrillic `ѕсоре` and a Latin `scope`).
    #[error("this user name looks too much like one that is taken; please choose another")]
    LooksTaken,
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
            let users = Self {
                pool: Pool::Postgres(pool),
            };
            users.fill_in_look_alike_keys().await?;
            return Ok(users);
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
        let users = Self {
            pool: Pool::Sqlite(pool),
        };
        users.fill_in_look_alike_keys().await?;
        Ok(users)
    }

    /// Gives every account that has none (those created before migration 5) its look-alike
    /// key. One that another account already holds stays empty: that account's key then keeps
    /// refusing new look-alikes of both, so nothing is lost but a log line.
    async fn fill_in_look_alike_keys(&self) -> Result<(), UsersError> {
        let rows: Vec<(i64, String)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT id, name FROM users WHERE name_skeleton IS NULL")
                .fetch_all(pool)
                .await
        })?;
        for (id, name) in rows {
            let result = with_pool!(self, |pool| {
                sqlx::query(
                    "UPDATE users SET name_skeleton = $1 WHERE id = $2 AND name_skeleton IS NULL",
                )
                .bind(names::look_alike_key(&name))
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
            });
            match result {
                Ok(()) => {}
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    tracing::info!(
                        user = id,
                        "user name looks like another account's; left without a look-alike key"
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Creates an account; `password_hash` is already hashed. The name is kept in NFKC
    /// ([`normalize_name`]); the database's unique indexes on its key and its look-alike key
    /// decide between two registrations of the same name or of look-alikes.
    ///
    /// # Errors
    /// [`UsersError::Invalid`] for a bad name or display name, [`UsersError::Taken`] for a
    /// name in use, [`UsersError::LooksTaken`] for a look-alike of one,
    /// [`UsersError::Database`] otherwise.
    pub async fn create(
        &self,
        name: &str,
        display_name: &str,
        password_hash: &str,
    ) -> Result<User, UsersError> {
        let name = normalize_name(name);
        let name = name.as_str();
        validate_name(name)?;
        let display_name = validate_display_name(display_name)?;
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let result = with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO users (name, name_key, name_skeleton, display_name, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(name)
            .bind(name_key(name))
            .bind(names::look_alike_key(name))
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
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(match self.by_name(name).await? {
                    Some(_) => UsersError::Taken,
                    None => UsersError::LooksTaken,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Why `name` cannot be registered now, if another account holds it or a look-alike of
    /// it: a check before any password is hashed (the unique indexes decide in the end).
    ///
    /// # Errors
    /// [`UsersError::Database`].
    pub async fn name_conflict(&self, name: &str) -> Result<Option<UsersError>, UsersError> {
        if self.by_name(name).await?.is_some() {
            return Ok(Some(UsersError::Taken));
        }
        let look_alike: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM users WHERE name_skeleton = $1")
                .bind(names::look_alike_key(name))
                .fetch_optional(pool)
                .await
        })?;
        Ok(look_alike.map(|_| UsersError::LooksTaken))
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

    /// The appearance the user chose (the defaults until they choose one, or for an id that
    /// is not an account).
    ///
    /// # Errors
    /// [`UsersError::Database`].
    pub async fn appearance(&self, id: i64) -> Result<Appearance, UsersError> {
        let row: Option<(String, String)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT theme, density FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        let Some((theme, density)) = row else {
            return Ok(Appearance::default());
        };
        Ok(Appearance::stored(&theme, &density))
    }

    /// Keeps `appearance` on the account: every device of the user shows it from its next page.
    ///
    /// # Errors
    /// [`UsersError::Database`].
    pub async fn set_appearance(&self, id: i64, appearance: &Appearance) -> Result<(), UsersError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE users SET theme = $1, density = $2 WHERE id = $3")
                .bind(appearance.theme())
                .bind(appearance.density())
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
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

/// The case-insensitive key of a name (`names.rs`): NFKC, case folding, NFKC. For the ASCII
/// names of before it is their lower case, as stored.
fn name_key(name: &str) -> String {
    names::key(name)
}

/// The form a typed user name is kept and checked in: trimmed, NFKC.
#[must_use]
pub fn normalize_name(typed: &str) -> String {
    names::normalize(typed)
}

/// Checks a user name, in the form [`normalize_name`] gives: 3 to 32 letters of any one script,
/// digits, `_`, `.`, `-` (`names.rs`).
///
/// # Errors
/// [`UsersError::Invalid`] with the rule broken.
pub fn validate_name(name: &str) -> Result<(), UsersError> {
    names::broken_rule(name).map_or(Ok(()), |rule| Err(UsersError::Invalid(rule)))
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

/// Checks a new password without an account's context: 8 to 128 characters, not common, not
/// trivial (`password_policy.rs`).
///
/// # Errors
/// [`UsersError::Invalid`] with the rule broken.
pub fn validate_password(password: &str) -> Result<(), UsersError> {
    validate_new_password(password, &[])
}

/// Checks a new password for the account named `names` (its user name and display name): the
/// rules of [`validate_password`], and none of those names.
///
/// # Errors
/// [`UsersError::Invalid`] with the rule broken.
pub fn validate_new_password(password: &str, names: &[&str]) -> Result<(), UsersError> {
    password_policy::broken_rule(password, names)
        .map_or(Ok(()), |rule| Err(UsersError::Invalid(rule)))
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

    /// The SQLite pool of `users`, for a test that writes rows as an older version would.
    fn sqlite_pool(users: &Users) -> &SqlitePool {
        match &users.pool {
            Pool::Sqlite(pool) => pool,
            Pool::Postgres(_) => panic!("a SQLite database was opened"),
        }
    }

    #[test]
    fn user_names_follow_the_rules() {
        for good in ["ada", "Ada.Lovelace-1", "a_b", &"x".repeat(32), "ädä"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["ab", "", &"x".repeat(33), "ada lovelace", "ada/..", "<b>"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_and_display_names_are_bounded() {
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_err(), "common");
        assert!(validate_password("correct horse").is_ok());
        assert!(validate_new_password("correct horse", &["Correct Horse"]).is_err());
        assert!(validate_password(&"p".repeat(129)).is_err());
        assert_eq!(validate_display_name("  Ada  ").ok(), Some("Ada"));
        assert!(validate_display_name("   ").is_err());
        assert!(validate_display_name("a\u{7}b").is_err());
    }

    /// An account of before migration 0004 keeps working, with the appearance it showed then.
    #[tokio::test]
    async fn an_account_made_before_the_appearance_column_shows_the_defaults_until_it_chooses() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("u.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        // The schema as it stood before 0004: sqlx applies (and records) 0001 to 0003 only.
        let mut before = Migrator::new(Embedded(MIGRATIONS_SQLITE)).await.unwrap();
        before.migrations = Cow::Owned(before.migrations[..3].to_vec());
        before.run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO users (name, name_key, display_name, password_hash, created_at) \
             VALUES ('old', 'old', 'Old', 'hash', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        let users = Users::open(&url).await.unwrap();
        let old = users.by_name("old").await.unwrap().unwrap();
        assert_eq!(
            users.appearance(old.id).await.unwrap(),
            Appearance::default()
        );
        let dark = Appearance::parse("dark", "compact").unwrap();
        users.set_appearance(old.id, &dark).await.unwrap();
        assert_eq!(users.appearance(old.id).await.unwrap(), dark);
        assert_eq!(
            users.appearance(old.id + 1).await.unwrap(),
            Appearance::default()
        );
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
    async fn look_alike_names_are_refused_and_accounts_of_before_get_their_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let url = format!("sqlite://{}", dir.path().join("u.db").display());
        let users = Users::open(&url).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(users.create("scope", "Scope", "hash").await.is_ok());
        // All Cyrillic (so one script): only the skeleton tells it from the Latin one.
        let cyrillic = "\u{455}\u{441}\u{43e}\u{440}\u{435}";
        assert!(matches!(
            users.name_conflict(cyrillic).await,
            Ok(Some(UsersError::LooksTaken))
        ));
        assert!(matches!(
            users.create(cyrillic, "Other", "hash").await,
            Err(UsersError::LooksTaken)
        ));
        assert!(matches!(
            users.name_conflict("SCOPE").await,
            Ok(Some(UsersError::Taken))
        ));
        assert!(matches!(users.name_conflict("scopes").await, Ok(None)));

        // Accounts of before migration 5: no skeleton, until the next open fills it in; two
        // that look alike keep working, the second without a key of its own.
        for (id, name) in [(100, "mike"), (101, "rnike")] {
            let inserted = sqlx::query(
                "INSERT INTO users (id, name, name_key, display_name, password_hash, created_at) \
                 VALUES ($1, $2, $2, $2, 'hash', 0)",
            )
            .bind(id)
            .bind(name)
            .execute(sqlite_pool(&users))
            .await;
            assert!(inserted.is_ok(), "{inserted:?}");
        }
        let users = Users::open(&url).await.unwrap_or_else(|e| panic!("{e}"));
        let keyed: Vec<(i64, Option<String>)> =
            sqlx::query_as("SELECT id, name_skeleton FROM users WHERE id >= 100 ORDER BY id")
                .fetch_all(sqlite_pool(&users))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            keyed,
            vec![(100, Some(names::look_alike_key("mike"))), (101, None)]
        );
        // A dotless ı: "mıke" looks like both.
        assert!(matches!(
            users.create("m\u{131}ke", "Mike", "hash").await,
            Err(UsersError::LooksTaken)
        ));
        assert!(users.by_name("RNIKE").await.ok().flatten().is_some());
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
