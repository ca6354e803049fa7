//! Command-line parsing (clap) and the text of `portcullis config`.

mod serve;
mod sessions;

pub(crate) use sessions::Admin;

use std::fmt::Write as _;
use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use portcullis::config::{Config, ConfigLoader, Profile};

use crate::stores;

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
    /// End a user's sessions now: all of them, or all but one.
    End(EndArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["all", "except_current"])))]
pub(crate) struct EndArgs {
    /// The user name.
    #[arg(long = "user", value_name = "NAME")]
    pub(crate) user: String,
    /// End every session of the user.
    #[arg(long)]
    pub(crate) all: bool,
    /// End every session but this one (a handle printed by `sessions list`).
    #[arg(long = "except-current", value_name = "ID")]
    pub(crate) except_current: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Set a new password, read from the first line of standard input, and end every session
    /// of the user (a password reset).
    ResetPassword {
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
    #[must_use]
    pub fn loader(&self) -> ConfigLoader {
        let mut loader = ConfigLoader::new();
        if let Some(profile) = self.profile {
            loader = loader.profile(profile);
        }
        if let Some(Command::Serve(ServeArgs { bind: Some(bind) })) = &self.command {
            loader = loader.bind(*bind);
        }
        loader
    }
}

/// The text of `portcullis sessions list`: one line per session, under a header.
pub(crate) fn describe_sessions(name: &str, rows: &[sessions::SessionRow]) -> String {
    if rows.is_empty() {
        return format!("{name} has no live session\n");
    }
    let time = |t| {
        humantime::format_rfc3339_seconds(t)
            .to_string()
            .replace('T', " ")
    };
    let mut out = format!(
        "{:43}  {:20}  {:20}  {:20}  {:24}  ADDRESS\n",
        "ID", "STARTED", "LAST USED", "EXPIRES", "BROWSER"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:43}  {:20}  {:20}  {:20}  {:24}  {}",
            row.handle.as_str(),
            time(row.started),
            time(row.last_used),
            time(row.expires),
            row.browser,
            row.address
        );
    }
    out
}

/// The text of `portcullis config`: one line per setting, then warnings.
pub(crate) fn describe(config: &Config) -> String {
    let settings = config.report();
    let width = settings.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut out = format!("profile: {}\n\n", config.profile);
    for setting in settings {
        let _ = writeln!(
            out,
            "{:width$}  {}  ({})",
            setting.name, setting.value, setting.source
        );
    }
    let warnings = config.warnings();
    if !warnings.is_empty() {
        out.push('\n');
        for warning in warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
    }
    out
}

impl Cli {
    /// Runs the command (`serve` when none was given) with `config`.
    ///
    /// # Errors
    /// Whatever stopped the command; the binary prints it with its causes.
    pub async fn run(self, config: Config) -> Result<(), Box<dyn std::error::Error>> {
        match self.command.unwrap_or_default() {
            Command::Serve(_) => serve::run(config).await,
            Command::Config => {
                print!("{}", describe(&config));
                Ok(())
            }
            Command::Sessions {
                command: SessionsCommand::PurgeExpired,
            } => stores::purge_expired(&config).await,
            Command::Sessions {
                command: SessionsCommand::List { user },
            } => list_sessions(&config, &user).await,
            Command::Sessions {
                command: SessionsCommand::End(args),
            } => end_sessions(&config, &args).await,
            Command::Users {
                command: UsersCommand::ResetPassword { user },
            } => reset_password(&config, &user).await,
        }
    }
}

async fn list_sessions(config: &Config, user: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rows = stores::admin(config).await?.list(user).await?;
    print!("{}", describe_sessions(user, &rows));
    Ok(())
}

async fn end_sessions(config: &Config, args: &EndArgs) -> Result<(), Box<dyn std::error::Error>> {
    let keep = if args.all {
        None
    } else {
        args.except_current.as_deref()
    };
    let ended = stores::admin(config).await?.end(&args.user, keep).await?;
    println!("ended {ended} session(s) of {}", args.user);
    Ok(())
}

async fn reset_password(config: &Config, user: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    let ended = stores::admin(config)
        .await?
        .reset_password(user, password)
        .await?;
    println!("password of {user} changed; ended {ended} session(s)");
    Ok(())
}
