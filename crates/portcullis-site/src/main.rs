//! `portcullis`: the reference site and its command line. The commands live in the library's
//! `cli/` (so tests can reach them); this binary only parses, sets up logging, loads the
//! configuration, runs the command and turns its outcome into an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use portcullis::ErrorChain;
use portcullis_site::cli::Cli;
use portcullis_site::config as site;

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
    match cli.run(config, site_config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portcullis: {}", ErrorChain(error.as_ref()));
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
