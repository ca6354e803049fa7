//! Command-line parsing (clap) and the text of `portcullis config`.

use std::fmt::Write as _;
use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use portcullis::config::{Config, ConfigLoader, Profile};
use portcullis_site::config::{self as site, SiteConfig};

/// Portcullis: secure server-side sessions, and a reference site that shows them working.
///
/// Settings use Flask's names and are read from the environment and from `.env`.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version)]
pub(crate) struct Cli {
    /// Configuration profile: `dev` (files, the default) or `redis` (production).
    /// Overrides PORTCULLIS_PROFILE.
    #[arg(long, global = true, value_parser = parse_profile)]
    profile: Option<Profile>,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
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
    pub(crate) fn loader(&self) -> ConfigLoader {
        let mut loader = ConfigLoader::new();
        if let Some(profile) = self.profile {
            loader = loader.profile(profile);
        }
        if let Some(Command::Serve(ServeArgs { bind: Some(bind) })) = &self.command {
            loader = site::with_bind(loader, *bind);
        }
        loader
    }
}

/// The text of `portcullis sessions list`: one line per session, under a header.
pub(crate) fn describe_sessions(name: &str, rows: &[portcullis_site::admin::SessionRow]) -> String {
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
pub(crate) fn describe(config: &Config, site_config: &SiteConfig) -> String {
    let mut settings = config.report();
    settings.extend(site_config.report());
    let width = settings.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut out = format!("profile: {}\n\n", config.profile);
    for setting in settings {
        let _ = writeln!(
            out,
            "{:width$}  {}  ({})",
            setting.name, setting.value, setting.source
        );
    }
    let warnings = config.warnings_with(site_config);
    if !warnings.is_empty() {
        out.push('\n');
        for warning in warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
    }
    out
}
