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
            eprintln!("d2l: error: {}", one_line(&error));
            exit_code(&error)
        }
    }
}

/// The error on one line: its chain of contexts, outermost first, joined by ": ", leaving
/// out a cause that an earlier part already says (an error whose message includes its
/// source's, such as a path context that a library error also names) and folding a cause
/// that repeats the part before it and says more.
fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string().replace('\n', " ");
        if text.is_empty() || parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        match parts.last_mut() {
            Some(last) if text.starts_with(last.as_str()) => *last = text,
            _ => parts.push(text),
        }
    }
    parts.join(": ")
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
    // Colour only for a person at a terminal, and never when NO_COLOR (no-color.org) is set.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::one_line;
    use anyhow::Context;

    #[test]
    fn one_line_says_each_thing_once() {
        let io = std::io::Error::from_raw_os_error(20);
        let text = io.to_string();
        // A library error that prints its source and also returns it.
        #[derive(Debug)]
        struct Persist(std::io::Error);
        impl std::fmt::Display for Persist {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "failed to persist temporary file: {}", self.0)
            }
        }
        impl std::error::Error for Persist {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = anyhow::Error::new(Persist(io)).context("renaming the output to x/");
        assert_eq!(
            one_line(&error),
            format!("renaming the output to x/: failed to persist temporary file: {text}")
        );
        // A context that the cause repeats at its start, saying more.
        let error = Err::<(), _>(anyhow::anyhow!("oci:in/img:img: holds no image"))
            .context("oci:in/img:img")
            .unwrap_err();
        assert_eq!(one_line(&error), "oci:in/img:img: holds no image");
        let error = Err::<(), _>(anyhow::anyhow!("line one\nline two"))
            .context("outer")
            .unwrap_err();
        assert_eq!(one_line(&error), "outer: line one line two");
    }
}
