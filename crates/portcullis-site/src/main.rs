//! `portcullis`: the reference site and its command line.
//!
//! - `portcullis serve` (the default) runs the site;
//! - `portcullis config` prints the effective configuration and where each value came from;
//! - `portcullis sessions purge-expired` removes expired session files;
//! - `portcullis sessions list --user NAME` lists a user's sessions, and
//!   `portcullis sessions end --user NAME (--all | --except-current ID)` ends them;
//! - `portcullis users reset-password --user NAME` sets a new password (from standard input)
//!   and ends all the user's sessions.

use std::process::ExitCode;

use clap::Parser;
use portcullis_site::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let config = match cli.loader().load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("portcullis: configuration refused: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portcullis: {}", chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
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
