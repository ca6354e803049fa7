//! The `portcullis` command line: clap's types, and [`Cli::run`], which hands each command to
//! its file.
//!
//! - `portcullis serve` (the default) runs the site (`serve.rs`);
//! - `portcullis config` prints the effective configuration and where each value came from
//!   (`show_config.rs`);
//! - `portcullis sessions purge-expired` removes expired session files;
//! - `portcullis sessions list --user NAME` lists a user's sessions, and
//!   `portcullis sessions end --user NAME (--all | --except-current ID)` ends them;
//!   `portcullis sessions end --everyone` ends every session of every user (`sessions.rs`);
//! - `portcullis users add --user NAME` creates an account (the password from standard input,
//!   under the registration form's rules);
//!   `portcullis users reset-password --user NAME` sets a new password (from standard input)
//!   and ends all the user's sessions; `portcullis users disable --user NAME` refuses its
//!   log-ins and ends its sessions, `enable` lets it in again (`users.rs`).
//!
//! The commands that work on stored sessions build the site's [`AppState`] on the site's own
//! store, so they reach sessions through the same session layer as the site. Users are named by
//! their user name; the session layer knows them by id (`_user_id`), so each command looks the
//! name up first.

mod serve;
mod sessions;
mod show_config;
mod users;

use std::error::Error;
use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use portcullis::SessionError;
use portcullis::config::{Config, ConfigLoader, Profile, StoreKind};

use crate::accounts::password::HashError;
use crate::accounts::users::{User, UsersError};
use crate::config::SiteConfig;
use crate::stores::Stores;
use crate::web::AppState;

/// Portcullis: secure server-side sessions, and a reference site that shows them working.
///
/// Settings use Flask's names and are read from the environment and from `.env`.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version)]
pub struct Cli {
    /// Configuration profile: `dev` (files, the default) or `redis` (production).
    /// Overrides PORTCULLIS_PROFILE.
    #[arg(long, global = true, value_parser = parse_profile)]
    profile: Option<Profile>,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the site (the default).
    Serve(ServeArgs),
    /// Print the effective configuration, where each value came from, and warnings.
    Config,
    /// Manage stored sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Manage accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

impl Default for Command {
    fn default() -> Self {
        Self::Serve(ServeArgs { bind: None })
    }
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on. Overrides PORTCULLIS_BIND (default 127.0.0.1:8000).
    #[arg(long)]
    bind: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// Remove expired sessions from the file store (Redis expires them by itself).
    PurgeExpired,
    /// List a user's live sessions: handle, start, last use, expiry, browser, address.
    /// Listing extends no session's lifetime.
    List {
        /// The user name.
        #[arg(long = "user", value_name = "NAME")]
        user: String,
    },
    /// End a user's sessions now: all of them, or all but one; or every session of every
    /// user (`--everyone`, after a key leak).
    End(EndArgs),
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("which").required(true).args(["all", "except_current", "everyone"])
))]
pub(crate) struct EndArgs {
    /// The user name.
    #[arg(
        long = "user",
        value_name = "NAME",
        required_unless_present = "everyone"
    )]
    pub(crate) user: Option<String>,
    /// End every session of every user, at once (after a key leak).
    #[arg(long, conflicts_with = "user")]
    pub(crate) everyone: bool,
    /// End every session of the user.
    #[arg(long)]
    pub(crate) all: bool,
    /// End every session but this one (a handle printed by `sessions list`; one that begins
    /// with `-`, as base64url handles may, is taken as the value, not as an option).
    #[arg(long = "except-current", value_name = "ID", allow_hyphen_values = true)]
    pub(crate) except_current: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Create an account, with the password read from the first line of standard input; the
    /// rules of the registration form apply (names of any script, no look-alike of a taken
    /// name, no common or breached password).
    Add {
        /// The user name.
        #[arg(long = "user", value_name = "NAME")]
        user: String,
        /// The name shown on pages; the user name when omitted.
        #[arg(long = "display-name", value_name = "TEXT")]
        display_name: Option<String>,
    },
    /// Set a new password, read from the first line of standard input, and end every session
    /// of the user (a password reset).
    ResetPassword {
        /// The user name.
        #[arg(long = "user", value_name = "NAME")]
        user: String,
    },
    /// Refuse the account's log-ins (as a wrong password is refused) and end all its
    /// sessions.
    Disable {
        /// The user name.
        #[arg(long = "user", value_name = "NAME")]
        user: String,
    },
    /// Let a disabled account log in again.
    Enable {
        /// The user name.
        #[arg(long = "user", value_name = "NAME")]
        user: String,
    },
}

fn parse_profile(text: &str) -> Result<Profile, String> {
    text.parse()
        .map_err(|_| format!("unknown profile {text:?}: use dev or redis"))
}

impl Cli {
    /// The configuration loader with this command line's overrides.
    pub fn loader(&self) -> ConfigLoader {
        let mut loader = ConfigLoader::new();
        if let Some(profile) = self.profile {
            loader = loader.profile(profile);
        }
        if let Some(Command::Serve(ServeArgs { bind: Some(bind) })) = &self.command {
            loader = crate::config::with_bind(loader, *bind);
        }
        loader
    }

    /// Runs the command (`serve` when none was given) with the library's and the site's
    /// settings.
    ///
    /// # Errors
    /// Whatever stopped the command; the binary prints it with its causes.
    pub async fn run(self, config: Config, site_config: SiteConfig) -> Result<(), Box<dyn Error>> {
        match self.command.unwrap_or_default() {
            Command::Serve(_) => serve::run(config, site_config).await,
            Command::Config => {
                print!("{}", show_config::describe(&config, &site_config));
                Ok(())
            }
            Command::Sessions {
                command: SessionsCommand::PurgeExpired,
            } => sessions::purge_expired(&config).await,
            Command::Sessions {
                command: SessionsCommand::List { user },
            } => sessions::list(&administered(config, site_config).await?, &user).await,
            Command::Sessions {
                command: SessionsCommand::End(args),
            } => sessions::end(&administered(config, site_config).await?, &args).await,
            Command::Users {
                command: UsersCommand::Add { user, display_name },
            } => {
                let state = administered(config, site_config).await?;
                users::add(&state, &user, display_name.as_deref()).await
            }
            Command::Users {
                command: UsersCommand::ResetPassword { user },
            } => users::reset_password(&administered(config, site_config).await?, &user).await,
            Command::Users {
                command: UsersCommand::Disable { user },
            } => users::disable(&administered(config, site_config).await?, &user).await,
            Command::Users {
                command: UsersCommand::Enable { user },
            } => users::enable(&administered(config, site_config).await?, &user).await,
        }
    }
}

/// Why an administrative command could not be done.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    /// No account has this user name.
    #[error("there is no user named {0:?}")]
    NoSuchUser(String),
    /// A session handle that `list` could not have printed.
    #[error("{0:?} is not a session handle (43 letters, digits, '-' and '_', as `list` prints)")]
    BadHandle(String),
    /// The new password breaks a rule.
    #[error("password not changed: {0}")]
    Invalid(&'static str),
    /// The new account breaks a rule, or its name (or a look-alike) is taken.
    #[error("account not created: {0}")]
    NotCreated(String),
    /// The session store failed.
    #[error("the session store failed")]
    Session(#[from] SessionError),
    /// The accounts database failed.
    #[error("the accounts database failed")]
    Users(#[from] UsersError),
    /// Hashing the new password failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// The site as the administrative commands see it: its store (without the file store's
/// sweeper) and accounts, behind the one session layer of the `AppState`. The memory store is
/// refused: it lives inside the serving process.
async fn administered(config: Config, site_config: SiteConfig) -> Result<AppState, Box<dyn Error>> {
    if config.session_type == StoreKind::Memory {
        return Err(
            "SESSION_TYPE=memory keeps sessions inside the serving process; \
                    the command line cannot reach them"
                .into(),
        );
    }
    let stores = Stores::open(&config).await?;
    Ok(AppState::open(config, site_config, stores.sessions, stores.redis).await?)
}

/// The account named `name`.
async fn user(state: &AppState, name: &str) -> Result<User, AdminError> {
    state
        .users()
        .by_name(name)
        .await?
        .ok_or_else(|| AdminError::NoSuchUser(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sessions list` prints base64url handles, and one in 64 begins with `-`: it must still
    /// be taken as the handle to keep.
    #[test]
    fn a_handle_that_begins_with_a_hyphen_is_a_value() {
        let handle = "-bcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
        let parsed = Cli::try_parse_from([
            "portcullis",
            "sessions",
            "end",
            "--user",
            "carol",
            "--except-current",
            handle,
        ]);
        let Ok(Cli {
            command:
                Some(Command::Sessions {
                    command: SessionsCommand::End(args),
                }),
            ..
        }) = parsed
        else {
            panic!("refused: {parsed:?}");
        };
        assert_eq!(args.except_current.as_deref(), Some(handle));
    }
}
