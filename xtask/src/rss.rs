//! Wall time and peak resident set size of a command, measured exactly.
//!
//! `getrusage(RUSAGE_CHILDREN)` reports the largest peak RSS among *all* the children a
//! process has waited for, so xtask cannot ask it about one command among many. Instead
//! [`run`] starts xtask itself again as `xtask peak-rss PROGRAM ARGS...` ([`child_main`]):
//! that process has exactly one child, so its `RUSAGE_CHILDREN` maximum is the command's
//! own peak (the kernel's `ru_maxrss`, the high-water mark of its RSS over its whole life,
//! not a sample). It also times the command, so the start-up of the extra process is not
//! counted, and prints both on one line of standard output for [`run`] to parse.

use std::ffi::OsString;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::resource::{getrusage, UsageWho};

use crate::util;

/// The hidden task that runs a command and reports on it.
pub const TASK: &str = "peak-rss";

/// What one run of a command cost.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Wall time from spawning the command to reaping it.
    pub time: Duration,
    /// Peak resident set size, in bytes.
    pub peak_rss: u64,
}

/// Runs `cmd` (its standard output discarded, its standard error kept for the error
/// message) and returns its wall time and peak RSS; fails unless it exits 0. Only the
/// program and arguments of `cmd` are used, not its environment or directory.
pub fn run(cmd: &Command) -> Result<Usage> {
    let me = std::env::current_exe().context("cannot find the xtask executable")?;
    let mut wrapper = Command::new(me);
    wrapper
        .arg(TASK)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    let out = wrapper
        .output()
        .with_context(|| format!("cannot start `{}`", util::display(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}\n{}",
            util::display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    parse(&text).with_context(|| format!("`{TASK}` printed {text:?}"))
}

/// `xtask peak-rss PROGRAM ARGS...`: runs the command with standard output discarded and
/// prints `<nanoseconds> <peak RSS KiB>`; exits 1 if the command fails.
pub fn child_main(argv: &[OsString]) -> Result<ExitCode> {
    let Some((program, args)) = argv.split_first() else {
        bail!("usage: xtask {TASK} PROGRAM [ARGS...]");
    };
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::null());
    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{}`", util::display(&cmd)))?;
    let time = start.elapsed();
    if !status.success() {
        eprintln!("`{}` failed: {status}", util::display(&cmd));
        return Ok(ExitCode::FAILURE);
    }
    // Linux reports ru_maxrss in KiB (getrusage(2)).
    let kib = getrusage(UsageWho::RUSAGE_CHILDREN)
        .context("getrusage(RUSAGE_CHILDREN)")?
        .max_rss();
    println!("{} {kib}", time.as_nanos());
    Ok(ExitCode::SUCCESS)
}

/// Reads the line [`child_main`] prints.
fn parse(text: &str) -> Result<Usage> {
    let mut fields = text.split_whitespace();
    let (Some(nanos), Some(kib), None) = (fields.next(), fields.next(), fields.next()) else {
        bail!("expected `<nanoseconds> <KiB>`");
    };
    let nanos: u64 = nanos.parse().context("nanoseconds")?;
    let kib: u64 = kib.parse().context("KiB")?;
    Ok(Usage {
        time: Duration::from_nanos(nanos),
        peak_rss: kib * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_report_line() {
        let usage = parse("1500000000 20480\n").unwrap();
        assert_eq!(usage.time, Duration::from_millis(1500));
        assert_eq!(usage.peak_rss, 20 << 20);
        assert!(parse("12").is_err());
        assert!(parse("1 2 3").is_err());
        assert!(parse("x 2").is_err());
    }
}
