//! `portcullis`: the reference site and its command line.
//!
//! - `portcullis serve` (the default) runs the site;
//! - `portcullis config` prints the effective configuration and where each value came from;
//! - `portcullis sessions purge-expired` removes expired session files;
//! - `portcullis sessions list --user NAME` lists a user's sessions, and
//!   `portcullis sessions end --user NAME (--all | --except-current ID)` ends them;
//! - `portcullis users reset-password --user NAME` sets a new password (from standard input)
//!   and ends all the user's sessions.
#![forbid(unsafe_code)]

mod cli;
mod serve;
mod stores;

use std::process::ExitCode;

use clap::Parser;
use portcullis::config::Config;
use portcullis_site::config::{self as site, SiteConfig};

use crate::cli::{Cli, Command, SessionsCommand, UsersCommand};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let (config, site_config) = match site::load(cli.loader()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("portcullis: configuration refused: {error}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or_default() {
        Command::Serve(_) => serve::run(config, site_config).await,
        Command::Config => {
            print!("{}", cli::describe(&config, &site_config));
            Ok(())
        }
        Command::Sessions {
            command: SessionsCommand::PurgeExpired,
        } => stores::purge_expired(&config).await,
        Command::Sessions {
            command: SessionsCommand::List { user },
        } => list_sessions(&config, &site_config, &user).await,
        Command::Sessions {
            command: SessionsCommand::End(args),
        } => end_sessions(&config, &site_config, &args).await,
        Command::Users {
            command: UsersCommand::ResetPassword { user },
        } => reset_password(&config, &site_config, &user).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portcullis: {}", chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn list_sessions(
    config: &Config,
    site_config: &SiteConfig,
    user: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let rows = stores::admin(config, site_config).await?.list(user).await?;
    print!("{}", cli::describe_sessions(user, &rows));
    Ok(())
}

async fn end_sessions(
    config: &Config,
    site_config: &SiteConfig,
    args: &cli::EndArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    let keep = if args.all {
        None
    } else {
        args.except_current.as_deref()
    };
    let ended = stores::admin(config, site_config)
        .await?
        .end(&args.user, keep)
        .await?;
    println!("ended {ended} session(s) of {}", args.user);
    Ok(())
}

async fn reset_password(
    config: &Config,
    site_config: &SiteConfig,
    user: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    let ended = stores::admin(config, site_config)
        .await?
        .reset_password(user, password)
        .await?;
    println!("password of {user} changed; ended {ended} session(s)");
    Ok(())
}

/// An error and its causes on one line, `a: b: c`; a cause that repeats the text before it
/// is shown once.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut last = line.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !last.contains(&text) {
            line = format!("{line}: {text}");
        }
        last = text;
        source = cause.source();
    }
    line
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal, not in files and CI logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
