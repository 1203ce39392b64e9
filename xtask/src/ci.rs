//! `cargo xtask ci`: the whole gate, as `.ci/run` runs it. Stops at the first failure.

use std::process::Command;
use std::time::Instant;

use anyhow::Result;

use crate::util::{self, cargo, step};
use crate::{fixtures, fuzz, machine_fixture, minbase};

/// Seconds each fuzz target runs in CI: five targets, under four minutes with the build.
const FUZZ_SECONDS: u64 = 45;

/// Packages, `cargo fmt --check`, clippy with warnings denied, the fixtures, `cargo test`,
/// then every fuzz target for [`FUZZ_SECONDS`].
pub fn run() -> Result<()> {
    let start = Instant::now();
    step("packages", || {
        util::ensure_tools(util::FIXTURE_TOOLS)?;
        ensure_rust_components()
    })?;
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
    let fix = step("fixtures", fixtures::ensure)?;
    let minbase = step("minbase fixture", minbase::ensure)?;
    let machine = step("machine fixture", machine_fixture::ensure)?;
    let (trixie, bullseye) = step("stock image fixtures", minbase::ensure_stock)?;
    step("cargo test", || {
        util::run(
            ci_cargo()
                .args(["test", "--workspace"])
                .env("D2L_FIXTURES", &fix)
                .env("D2L_MINBASE_FIXTURE", &minbase)
                .env("D2L_MACHINE_FIXTURE", &machine)
                .env("D2L_MINBASE_TRIXIE_FIXTURE", &trixie)
                .env("D2L_MINBASE_BULLSEYE_FIXTURE", &bullseye),
        )
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
