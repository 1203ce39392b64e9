//! Progress on a terminal: a spinner with the elapsed time for each long step, and bars for
//! registry downloads (one per layer, one overall). Silent with `--quiet` or when standard
//! error is not a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use d2l_registry::{Digest, PullProgress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Shows steps, and download bars, on one display.
pub struct Progress {
    enabled: bool,
    multi: MultiProgress,
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
            multi: MultiProgress::new(),
        }
    }

    /// Starts showing a step.
    pub fn step(&self, message: String) -> Step {
        if !self.enabled {
            return Step { bar: None };
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
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

/// Download bars for a registry pull: one per layer being downloaded and one overall.
pub struct DownloadBars {
    multi: MultiProgress,
    /// Made when the layer downloads begin (nothing shows while the manifest resolves).
    overall: OnceLock<ProgressBar>,
    layers: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Progress {
    /// Bars for registry downloads, or `None` when progress is off.
    pub fn downloads(&self) -> Option<Arc<dyn PullProgress>> {
        if !self.enabled {
            return None;
        }
        Some(Arc::new(DownloadBars {
            multi: self.multi.clone(),
            overall: OnceLock::new(),
            layers: Mutex::new(HashMap::new()),
        }))
    }
}

/// A size for people: `512 B`, `12.3 kB`, `347.9 MB`, `1.2 GB` (decimal units).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The first 12 hex digits of a digest, as `docker pull` shows layers.
fn short(digest: &Digest) -> String {
    digest.hex().chars().take(12).collect()
}

impl PullProgress for DownloadBars {
    fn layers(&self, count: usize, total_bytes: u64) {
        let overall = self.multi.add(ProgressBar::new(total_bytes));
        overall.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} {elapsed}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        overall.set_message(format!("pulling {count} layers"));
        overall.enable_steady_tick(Duration::from_millis(200));
        let _ = self.overall.set(overall);
    }

    fn blob_started(&self, digest: &Digest, size: u64, resumed: u64) {
        let Some(overall_bar) = self.overall.get() else {
            return;
        };
        let mut layers = self.layers.lock().expect("not poisoned");
        let bar = layers.entry(digest.clone()).or_insert_with(|| {
            let bar = self
                .multi
                .insert_before(overall_bar, ProgressBar::new(size));
            bar.set_style(
                ProgressStyle::with_template(
                    "  {msg} [{bar:30}] {decimal_bytes}/{decimal_total_bytes}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message(short(digest));
            bar
        });
        // A restart moves the layer (and the total) back.
        let before = bar.position();
        bar.set_position(resumed);
        let overall = overall_bar.position();
        overall_bar.set_position(overall.saturating_sub(before) + resumed);
    }

    fn blob_advanced(&self, digest: &Digest, bytes: u64) {
        if let Some(bar) = self.layers.lock().expect("not poisoned").get(digest) {
            bar.inc(bytes);
        }
        if let Some(overall) = self.overall.get() {
            overall.inc(bytes);
        }
    }

    fn blob_finished(&self, digest: &Digest, size: u64, cached: bool) {
        if let Some(bar) = self.layers.lock().expect("not poisoned").remove(digest) {
            bar.finish_and_clear();
        }
        let Some(overall) = self.overall.get() else {
            return;
        };
        if cached {
            overall.inc(size);
        }
        let what = if cached { "cached" } else { "downloaded" };
        let _ = self.multi.println(format!(
            "✓ layer {} {} {what}",
            short(digest),
            human_bytes(size)
        ));
        if overall
            .length()
            .is_some_and(|len| overall.position() >= len)
        {
            overall.finish_and_clear();
        }
    }

    fn blob_failed(&self, digest: &Digest) {
        if let Some(bar) = self.layers.lock().expect("not poisoned").remove(digest) {
            bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 kB");
        assert_eq!(human_bytes(295), "295 B");
        assert_eq!(human_bytes(347_928_129), "347.9 MB");
        assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
    }
}
