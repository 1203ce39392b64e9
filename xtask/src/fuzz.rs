//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the libFuzzer targets of `fuzz/` for N
//! seconds each (default 60), from a scratch copy of the committed seed corpus, and fails if
//! any of them finds a crash (a panic, a timeout, running out of memory), saying where the
//! input is and how to reproduce and minimise it.
//!
//! How this works on a stable toolchain: cargo-fuzz only needs nightly for the sanitizers
//! (`-Zsanitizer=address`, its default) and `-Zbuild-std`. d2l has no unsafe code
//! (`unsafe_code = "deny"`), so AddressSanitizer would find nothing that safe Rust does not
//! already check, at about twice the cost. So: `cargo fuzz ... --sanitizer none`, which passes
//! only stable flags (`-Cpasses=sancov-module` and `-Cllvm-args=-sanitizer-coverage-*` for
//! libFuzzer's coverage, `--cfg fuzzing`), in release mode with `--debug-assertions` (overflow
//! checks on, as the class of bugs fuzzed for includes integers that wrap). No
//! `RUSTC_BOOTSTRAP`, no nightly. cargo-fuzz itself is installed from crates.io when missing.
//!
//! The targets are built in `~/.cache/d2l-fuzz-build` (their instrumented dependencies never
//! mix with the workspace's, and survive a fresh clone); corpora grow in
//! `target/fuzz/corpus/TARGET` and crashes land in
//! `target/fuzz/artifacts/TARGET/`, so a CI run never changes the repository.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::util::{self, cargo};

/// The targets in `fuzz/fuzz_targets/`, in the order they run.
pub const TARGETS: &[&str] = &[
    "tar_layer",
    "image_documents",
    "references",
    "disk_readers",
    "ext4_tree",
];

/// Seconds each target runs when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 60;
/// An input that takes longer than this (seconds) is a crash: a hang on hostile input.
const INPUT_TIMEOUT: u64 = 20;
/// Memory one run may take (MiB): the promise is memory bounded by the metadata, and the
/// inputs are small.
const RSS_LIMIT_MIB: u64 = 2048;

/// What to run.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    /// Seconds per target.
    pub seconds: u64,
    /// Targets, all of them if none were named.
    pub targets: Vec<String>,
}

impl Args {
    /// `[--seconds N] [TARGET...]`.
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut seconds = DEFAULT_SECONDS;
        let mut targets = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--seconds" {
                let value = args.next().ok_or("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--seconds {value:?}: expected seconds, e.g. 60"))?;
            } else if TARGETS.contains(&arg.as_str()) {
                targets.push(arg.clone());
            } else {
                return Err(format!(
                    "unknown fuzz target {arg:?}: the targets are {}",
                    TARGETS.join(", ")
                ));
            }
        }
        if targets.is_empty() {
            targets = TARGETS.iter().map(|t| t.to_string()).collect();
        }
        Ok(Args { seconds, targets })
    }
}

/// Builds the targets once, runs each, and fails listing the crashes.
pub fn run(args: &Args) -> Result<()> {
    ensure_cargo_fuzz()?;
    let root = util::workspace_root();
    let fuzz_dir = root.join("fuzz");
    let scratch = util::target_dir()?.join("fuzz");
    let build_dir = build_dir()?;
    util::step("build fuzz targets", || {
        util::run(&mut cargo_fuzz(&fuzz_dir, &build_dir, "build"))
    })?;
    let tmp = temporary_dir(&scratch)?;
    // One target per core: each is one single-threaded process.
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let queue = std::sync::Mutex::new(args.targets.iter().collect::<Vec<_>>());
    let run_all = || -> Result<Vec<(String, PathBuf)>> {
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..jobs.min(args.targets.len()) {
                scope.spawn(|| loop {
                    let Some(target) = queue.lock().expect("not poisoned").pop() else {
                        return;
                    };
                    let result =
                        util::step(&format!("fuzz {target} for {}s", args.seconds), || {
                            run_target(
                                &fuzz_dir,
                                (&build_dir, &scratch),
                                &tmp,
                                target,
                                args.seconds,
                            )
                        });
                    results.lock().expect("not poisoned").push(result);
                });
            }
        });
        let mut crashes = Vec::new();
        for result in results.into_inner().expect("not poisoned") {
            crashes.extend(result?);
        }
        Ok(crashes)
    };
    let crashes = run_all();
    util::remove_tree(&tmp)?;
    let crashes = crashes?;
    if !crashes.is_empty() {
        for (target, input) in &crashes {
            let input = input.display();
            eprintln!("fuzz target {target} crashed on {input}");
            eprintln!("  reproduce: cd fuzz && cargo fuzz run --sanitizer none --debug-assertions --target-dir {} {target} {input}", build_dir.display());
            eprintln!("  minimise:  cd fuzz && cargo fuzz tmin --sanitizer none --debug-assertions --target-dir {} {target} {input}", build_dir.display());
        }
        bail!(
            "{} fuzz target(s) crashed: add each input as a regression test in the crate at fault",
            crashes.len()
        );
    }
    Ok(())
}

/// Where the instrumented targets are built: beside the fixtures' cache, outside the clone,
/// so that a CI run on a fresh clone rebuilds only what changed (their dependencies, the
/// registry's network stack among them, take many minutes on two cores).
fn build_dir() -> Result<PathBuf> {
    let dir = crate::fixtures::cache_base()?
        .parent()
        .context("the fixtures' cache has a parent")?
        .join("d2l-fuzz-build");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `cargo fuzz SUBCOMMAND` with the flags every use shares (see the module's comment).
fn cargo_fuzz(fuzz_dir: &Path, build_dir: &Path, subcommand: &str) -> Command {
    let mut cmd = cargo();
    cmd.current_dir(fuzz_dir)
        .args([
            "fuzz",
            subcommand,
            "--sanitizer",
            "none",
            "--debug-assertions",
        ])
        .arg("--target-dir")
        .arg(build_dir);
    cmd
}

/// Runs one target from a fresh copy of its committed corpus; returns the crash input, if any.
fn run_target(
    fuzz_dir: &Path,
    (build_dir, scratch): (&Path, &Path),
    tmp: &Path,
    target: &str,
    seconds: u64,
) -> Result<Option<(String, PathBuf)>> {
    let corpus = scratch.join("corpus").join(target);
    let artifacts = scratch.join("artifacts").join(target);
    if corpus.exists() {
        util::remove_tree(&corpus)?;
    }
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(&artifacts)?;
    let seeds = fuzz_dir.join("corpus").join(target);
    let mut count = 0;
    if seeds.is_dir() {
        for entry in std::fs::read_dir(&seeds)? {
            let entry = entry?;
            std::fs::copy(entry.path(), corpus.join(entry.file_name()))
                .with_context(|| format!("copying seed {}", entry.path().display()))?;
            count += 1;
        }
    }
    let log = scratch.join(format!("{target}.log"));
    println!("    {count} seeds; libFuzzer's output in {}", log.display());
    let started = SystemTime::now();
    let mut cmd = cargo_fuzz(fuzz_dir, build_dir, "run");
    cmd.env("TMPDIR", tmp);
    // No -max_len: libFuzzer takes the largest seed (at least 4 KiB), and disk seeds are
    // tens of KiB.
    cmd.arg(target)
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MIB}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1");
    let start = Instant::now();
    let result = util::run_logged(&mut cmd, &log);
    let summary = std::fs::read_to_string(&log).unwrap_or_default();
    // libFuzzer's last coverage line and "Done N runs in S second(s)".
    let last = |needle: &str| summary.lines().rev().find(|l| l.contains(needle));
    for line in [last(" cov: "), last("Done ")].into_iter().flatten() {
        println!("    {}", line.trim());
    }
    let Err(err) = result else {
        return Ok(None);
    };
    eprintln!("{err:#}");
    let Some(input) = newest_since(&artifacts, started)? else {
        bail!(
            "fuzz target {target} failed after {} without leaving an input in {}: see {}",
            util::secs(start.elapsed()),
            artifacts.display(),
            log.display()
        );
    };
    Ok(Some((target.to_owned(), input)))
}

/// Where the targets' temporary files go: a directory on `/dev/shm` (tmpfs) when there is
/// one, as every run creates and deletes a few files and deleting them on a disk filesystem
/// costs milliseconds (five times fewer runs of image_documents); else under `scratch`.
fn temporary_dir(scratch: &Path) -> Result<PathBuf> {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm } else { scratch };
    let dir = base.join(format!("d2l-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    Ok(dir)
}

/// The newest file in `dir` written since `since`.
fn newest_since(dir: &Path, since: SystemTime) -> Result<Option<PathBuf>> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let modified = entry.metadata()?.modified()?;
        if modified >= since && newest.as_ref().is_none_or(|(t, _)| modified > *t) {
            newest = Some((modified, entry.path()));
        }
    }
    Ok(newest.map(|(_, path)| path))
}

/// Installs cargo-fuzz from crates.io when `cargo fuzz` is not there.
fn ensure_cargo_fuzz() -> Result<()> {
    let works = cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if works {
        return Ok(());
    }
    util::step("install cargo-fuzz", || {
        util::run(cargo().args(["install", "cargo-fuzz", "--locked"]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments() {
        let all = parse(&[]).unwrap();
        assert_eq!(all.seconds, DEFAULT_SECONDS);
        assert_eq!(all.targets.len(), TARGETS.len());
        assert_eq!(
            parse(&["--seconds", "45", "references"]).unwrap(),
            Args {
                seconds: 45,
                targets: vec!["references".into()]
            }
        );
        assert!(parse(&["--seconds"]).is_err());
        assert!(parse(&["--seconds", "0"]).is_err());
        assert!(parse(&["nope"]).is_err());
    }

    #[test]
    fn every_target_has_a_source_and_seeds() {
        let fuzz = util::workspace_root().join("fuzz");
        for target in TARGETS {
            let source = fuzz.join("fuzz_targets").join(format!("{target}.rs"));
            assert!(source.is_file(), "{} is missing", source.display());
            let seeds = fuzz.join("corpus").join(target);
            let count = std::fs::read_dir(&seeds)
                .map(|d| d.count())
                .unwrap_or_default();
            assert!(count > 0, "no seeds in {}", seeds.display());
        }
    }
}
