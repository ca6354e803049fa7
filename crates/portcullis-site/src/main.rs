//! `portcullis`: the reference site and its command line.
//!
//! - `portcullis serve` (the default) runs the site;
//! - `portcullis config` prints the effective configuration and where each value came from;
//! - `portcullis sessions purge-expired` removes expired session files.
#![forbid(unsafe_code)]

mod cli;
mod serve;
mod stores;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, SessionsCommand};

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
    let result = match cli.command.unwrap_or_default() {
        Command::Serve(_) => serve::run(config).await,
        Command::Config => {
            print!("{}", cli::describe(&config));
            Ok(())
        }
        Command::Sessions {
            command: SessionsCommand::PurgeExpired,
        } => stores::purge_expired(&config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portcullis: {error}");
            ExitCode::FAILURE
        }
    }
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
