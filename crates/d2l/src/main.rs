//! `d2l`: turns a container image into a disk that boots.

mod cli;
mod commands;
mod output;
mod progress;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::try_parse_checked(std::env::args_os()).unwrap_or_else(|e| e.exit());
    init_logging(&cli);
    output::remove_partial_outputs_on_interrupt();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the chain of contexts, outermost first.
            eprintln!("d2l: error: {error:#}");
            exit_code(&error)
        }
    }
}

/// 1, or the image builder's own exit code when a Dockerfile build failed (what a script
/// around `docker build` would see).
fn exit_code(error: &anyhow::Error) -> ExitCode {
    let builder_code =
        error.chain().find_map(
            |cause| match cause.downcast_ref::<d2l_image_builder::Error>()? {
                d2l_image_builder::Error::Failed { status, .. } => status.code(),
                _ => None,
            },
        );
    match builder_code.and_then(|code| u8::try_from(code).ok()) {
        Some(code) if code != 0 => ExitCode::from(code),
        _ => ExitCode::FAILURE,
    }
}

fn init_logging(cli: &cli::Cli) {
    use tracing_subscriber::EnvFilter;
    let default = if cli.quiet {
        "error"
    } else if cli.verbose > 1 {
        "debug"
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
