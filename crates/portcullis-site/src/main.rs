//! `portcullis`: the reference site and its command line. The commands live in the library's
//! `cli/` (so tests can reach them); this binary only parses, sets up logging (text until the
//! configuration is read, then in its `LOG_FORMAT`), loads the configuration, runs the command
//! and turns its outcome into an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use portcullis::ErrorChain;
use portcullis_site::cli::Cli;
use portcullis_site::config::{self as site, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// The subscriber under the output layer: the registry filtered by `RUST_LOG`.
type Filtered = tracing_subscriber::layer::Layered<EnvFilter, Registry>;

/// The output layer, swapped once `LOG_FORMAT` is known.
type Output = Box<dyn Layer<Filtered> + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = init_logging();
    let (config, site_config) = match site::load(cli.loader()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("portcullis: configuration refused: {error}");
            return ExitCode::from(2);
        }
    };
    if site_config.log_format == LogFormat::Json
        && let Err(error) = output.reload(json_output())
    {
        eprintln!("portcullis: cannot switch the log to JSON: {error}");
    }
    match cli.run(config, site_config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portcullis: {}", ErrorChain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Logs text lines to standard error, filtered by `RUST_LOG` (default `info`); the handle
/// swaps the output for JSON.
fn init_logging() -> reload::Handle<Output, Filtered> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let text: Output = tracing_subscriber::fmt::layer()
        // Colour codes only for a person at a terminal, not in files and CI logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .boxed();
    let (output, handle) = reload::Layer::new(text);
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
    handle
}

/// One JSON object per line on standard error, each event's fields at the top level
/// (`{"timestamp", "level", "target", "message", "event", ...}`), so a log pipeline can alert
/// on `event` directly.
fn json_output() -> Output {
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .boxed()
}
