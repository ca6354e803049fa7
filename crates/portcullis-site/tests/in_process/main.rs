//! The site in-process, as one test binary: `app(state)` on a memory store and a
//! `ManualClock`, driven with `oneshot` (the harness), for accounts, pages and sessions.
//!
//! The account and session tests (`auth.rs`, `sessions.rs`) run once per accounts database:
//! `sqlite::auth::…` and `postgres::auth::…` are the same tests, their `TestApp` opened on
//! SQLite or on a database of the binary's shared PostgreSQL cluster.

mod docs;
mod endings;
mod harness;
mod limits;
mod origin;
mod pages;
mod pre_session;
mod registration;
mod routes;

/// A module per database, each compiling `auth.rs` and `sessions.rs` against a `harness`
/// whose `TestApp::new` and `TestApp::with_env` open the site on that database (the store
/// contract suite of `crates/portcullis/tests/store_contract.rs` runs on every store the same
/// way).
macro_rules! on_each_database {
    ($($module:ident => $database:expr),+ $(,)?) => {$(
        // Files of the module are this folder's: `auth.rs`, not `sqlite/auth.rs`.
        #[path = "."]
        mod $module {
            mod harness {
                #![allow(unreachable_pub, dead_code)]
                pub use crate::harness::*;

                /// The harness's app, opened on this module's database.
                pub struct TestApp(crate::harness::TestApp);

                impl TestApp {
                    pub async fn new() -> Self {
                        Self::with_env(&[]).await
                    }

                    pub async fn with_env(env: &[(&str, &str)]) -> Self {
                        Self(crate::harness::TestApp::on($database, env).await)
                    }
                }

                impl std::ops::Deref for TestApp {
                    type Target = crate::harness::TestApp;

                    fn deref(&self) -> &Self::Target {
                        &self.0
                    }
                }
            }

            // Loaded once per database on purpose: that is the point of the macro.
            #[allow(clippy::duplicate_mod)]
            #[path = "auth.rs"]
            mod auth;
            #[allow(clippy::duplicate_mod)]
            #[path = "sessions.rs"]
            mod sessions;
        }
    )+};
}

on_each_database! {
    sqlite => crate::harness::Database::Sqlite,
    postgres => crate::harness::Database::Postgres,
}
