//! `portcullis`: the reference site and its command line. The commands live in the library's
//! `cli/` (so tests can reach them); this binary only parses, sets up logging (in the
//! environment's `LOG_FORMAT` while the configuration loads, then in the configuration's), loads the configuration, runs the command
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
    let early = LogFormat::from_environment();
    let output = init_logging(early);
    let (config, site_config) = match site::load(cli.loader()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("portcullis: configuration refused: {error}");
            return ExitCode::from(2);
        }
    };
    if site_config.log_format != early {
        let switched = match site_config.log_format {
            LogFormat::Json => output.reload(json_output()),
            LogFormat::Text => output.reload(text_output()),
        };
        if let Err(error) = switched {
            eprintln!(
                "portcullis: cannot switch the log to {}: {error}",
                site_config.log_format
            );
        }
    }
    match cli.run(config, site_config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portcullis: {}", ErrorChain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error in `format`, filtered by `RUST_LOG` (default `info`); the handle
/// swaps the output once the configuration is read.
fn init_logging(format: LogFormat) -> reload::Handle<Output, Filtered> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (output, handle) = reload::Layer::new(match format {
        LogFormat::Text => text_output(),
        LogFormat::Json => json_output(),
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
    handle
}

/// Text lines for people.
fn text_output() -> Output {
    tracing_subscriber::fmt::layer()
        // Colour codes only for a person at a terminal, not in files and CI logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .boxed()
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
