//! `cargo xtask ci`: the whole gate, as `.ci/run` runs it. Stops at the first failure.

use std::ffi::OsString;
use std::process::Command;
use std::time::Instant;

use anyhow::Result;

use crate::util::{self, cargo, step};
use crate::{fixtures, fuzz, machine_fixture, minbase, test_binaries};

/// Test binaries run at once unless `D2L_TEST_JOBS` says otherwise. One: each binary
/// already runs its tests on both cores, and two binaries of QEMU boots at once took 722 s
/// where one after the other took 480 (stock and boot_disk, measured on the 2-core CI
/// machine): software emulation thrashes when four guests share two cores.
const DEFAULT_TEST_JOBS: usize = 1;

/// Seconds each fuzz target runs in CI: five targets, one per core, about two minutes in
/// all on two cores.
const FUZZ_SECONDS: u64 = 45;

/// Packages, `cargo fmt --check`, clippy with warnings denied, the fixtures, the tests
/// (`test_binaries`: several binaries at once), then every fuzz target for [`FUZZ_SECONDS`].
pub fn run() -> Result<()> {
    let start = Instant::now();
    step("packages", || {
        util::ensure_tools(util::FIXTURE_TOOLS)?;
        ensure_rust_components()
    })?;
    // The fixtures are mostly debootstrap waiting on the network and dpkg: they are built
    // while clippy and the tests compile.
    let fixtures = std::thread::spawn(|| -> Result<Vec<(&'static str, OsString)>> {
        let fix = step("fixtures", fixtures::ensure)?;
        let minbase = step("minbase fixture", minbase::ensure)?;
        let machine = step("machine fixture", machine_fixture::ensure)?;
        let (trixie, bullseye) = step("stock image fixtures", minbase::ensure_stock)?;
        Ok(vec![
            ("D2L_FIXTURES", fix.into_os_string()),
            ("D2L_MINBASE_FIXTURE", minbase.into_os_string()),
            ("D2L_MACHINE_FIXTURE", machine.into_os_string()),
            ("D2L_MINBASE_TRIXIE_FIXTURE", trixie.into_os_string()),
            ("D2L_MINBASE_BULLSEYE_FIXTURE", bullseye.into_os_string()),
        ])
    });
    let compiled = (|| {
        step("cargo fmt --check", || {
            util::run(cargo().args(["fmt", "--all", "--", "--check"]))
        })?;
        step("cargo clippy", || {
            util::run(ci_cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        })?;
        step("build the tests", || test_binaries::build(ci_cargo()))
    })();
    // A failure to compile ends the run at once (a fixture being built is left unfinished
    // in a temporary directory, never under its key).
    let binaries = compiled?;
    let env = step("wait for the fixtures", || {
        fixtures
            .join()
            .map_err(|_| anyhow::anyhow!("the fixtures' thread panicked"))?
    })?;
    step("cargo test", || {
        test_binaries::run(binaries, ci_cargo(), &env, test_jobs())
    })?;
    step("cargo xtask fuzz", || {
        fuzz::run(&fuzz::Args {
            seconds: FUZZ_SECONDS,
            targets: fuzz::TARGETS.iter().map(|t| t.to_string()).collect(),
        })
    })?;
    println!("ci: all steps passed in {}", util::secs(start.elapsed()));
    Ok(())
}

/// Cargo as CI runs it: a clean clone builds everything once, so incremental state would only
/// cost disk (1.7 GB of it).
fn ci_cargo() -> Command {
    let mut cmd = cargo();
    cmd.env("CARGO_INCREMENTAL", "0");
    cmd
}

/// `$D2L_TEST_JOBS`, else [`DEFAULT_TEST_JOBS`].
fn test_jobs() -> usize {
    std::env::var("D2L_TEST_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_TEST_JOBS)
}

/// Adds rustfmt and clippy through rustup when cargo lacks them (a minimal rustup profile).
fn ensure_rust_components() -> Result<()> {
    let works = |sub: &str| {
        cargo()
            .args([sub, "--version"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if works("fmt") && works("clippy") {
        return Ok(());
    }
    util::run(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))
}
