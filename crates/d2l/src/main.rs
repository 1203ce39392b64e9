//! `d2l`: turns a container image into a disk that boots.

mod cli;
mod commands;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(&cli);
    output::remove_partial_outputs_on_interrupt();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the chain of contexts, outermost first.
            eprintln!("d2l: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &cli::Cli) {
    use tracing_subscriber::EnvFilter;
    let default = if cli.quiet {
        "error"
    } else if cli.verbose > 0 {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("D2L_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}
