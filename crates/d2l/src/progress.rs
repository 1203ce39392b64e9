//! Progress on a terminal: a spinner with the elapsed time for each long step. Silent with
//! `--quiet` or when standard error is not a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Shows steps.
pub struct Progress {
    enabled: bool,
}

/// One step being shown; [`Step::done`] ends it.
pub struct Step {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress display, on only for a terminal and without `--quiet`.
    pub fn new(quiet: bool) -> Progress {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// Starts showing a step.
    pub fn step(&self, message: String) -> Step {
        if !self.enabled {
            return Step { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("a valid template"),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        Step { bar: Some(bar) }
    }
}

impl Step {
    /// Ends the step, leaving a line saying it is done.
    pub fn done(self) {
        if let Some(bar) = self.bar {
            bar.set_style(
                ProgressStyle::with_template("✓ {msg} {elapsed}").expect("a valid template"),
            );
            bar.finish();
        }
    }
}
