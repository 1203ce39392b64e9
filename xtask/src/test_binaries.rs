//! The workspace's tests as CI runs them: every test binary built by one `cargo test
//! --no-run` (while the fixtures are still being built), then run `jobs` at a time, the
//! longest first, each with its output kept together and timed; the doc tests after.
//! `cargo test` cannot separate the build from the run, nor say how long each binary took.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util::{self, secs};

/// Test binaries started first, longest first: with more than one job the suite ends when
/// its longest binary does, so those must not start last.
const LONGEST_FIRST: &[&str] = &[
    "stock",
    "boot_disk",
    "bundles",
    "qemu_img",
    "dockerfile",
    "readers",
    "reach",
    "debian",
    "build",
    "boot",
    "registry",
    "formats",
    "export",
];

/// One test binary.
#[derive(Debug)]
struct TestBinary {
    /// `PACKAGE/TARGET` for messages.
    name: String,
    /// The target's name, for the order.
    target: String,
    executable: PathBuf,
    /// The package's directory: cargo runs a test binary there.
    package_dir: PathBuf,
}

/// The workspace's test binaries, built (`cargo test --no-run`), longest first.
pub struct TestBinaries(Vec<TestBinary>);

/// Builds every test of the workspace with `cargo`.
pub fn build(mut cargo: Command) -> Result<TestBinaries> {
    cargo.args([
        "test",
        "--workspace",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    let mut binaries = test_binaries(&util::output(&mut cargo)?)?;
    binaries.sort_by_key(|b| {
        let rank = LONGEST_FIRST.iter().position(|&n| n == b.target);
        (rank.unwrap_or(LONGEST_FIRST.len()), b.name.clone())
    });
    Ok(TestBinaries(binaries))
}

/// Runs the binaries `jobs` at a time with `env`, then the doc tests (`doc_cargo`). Fails
/// after all have run if any failed, naming them.
pub fn run(
    TestBinaries(binaries): TestBinaries,
    mut doc_cargo: Command,
    env: &[(&str, OsString)],
    jobs: usize,
) -> Result<()> {
    println!("    {} test binaries, {jobs} at a time", binaries.len());
    let queue = Mutex::new(binaries.into_iter().collect::<VecDeque<_>>());
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let Some(binary) = queue.lock().expect("not poisoned").pop_front() else {
                    return;
                };
                if let Err(e) = run_binary(&binary, env) {
                    eprintln!("{e:#}");
                    failed
                        .lock()
                        .expect("not poisoned")
                        .push(binary.name.clone());
                }
            });
        }
    });
    let failed = failed.into_inner().expect("not poisoned");
    if !failed.is_empty() {
        bail!("test binaries failed: {}", failed.join(", "));
    }
    doc_cargo.args(["test", "--workspace", "--doc"]);
    util::run(doc_cargo.envs(env.iter().map(|(k, v)| (k, v))))
}

/// Runs one binary in its package's directory, printing its output when it ends.
fn run_binary(binary: &TestBinary, env: &[(&str, OsString)]) -> Result<()> {
    let start = Instant::now();
    let out = Command::new(&binary.executable)
        .current_dir(&binary.package_dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .with_context(|| format!("cannot start {}", binary.executable.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("test result:"))
        .unwrap_or("no test result line");
    println!(
        "     Ran {} in {}: {summary}",
        binary.name,
        secs(start.elapsed())
    );
    if !out.status.success() {
        bail!(
            "---- {} failed ({}) ----\n{stdout}\n{stderr}",
            binary.name,
            out.status
        );
    }
    Ok(())
}

/// The test executables in cargo's JSON messages.
fn test_binaries(json: &str) -> Result<Vec<TestBinary>> {
    let mut binaries = Vec::new();
    for line in json.lines().filter(|l| l.starts_with('{')) {
        let message: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("cargo said {line:?}"))?;
        if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
            continue;
        }
        let Some(executable) = message["executable"].as_str() else {
            continue;
        };
        let target = message["target"]["name"].as_str().unwrap_or("?").to_owned();
        let manifest = message["manifest_path"]
            .as_str()
            .context("a cargo artifact without its manifest path")?;
        let package_dir = Path::new(manifest)
            .parent()
            .context("a manifest path without a directory")?
            .to_owned();
        let package = package_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        binaries.push(TestBinary {
            name: format!("{package}/{target}"),
            target,
            executable: PathBuf::from(executable),
            package_dir,
        });
    }
    if binaries.is_empty() {
        bail!("cargo test --no-run built no test binary");
    }
    Ok(binaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_test_executables_in_cargo_messages() {
        let json = r#"{"reason":"compiler-artifact","manifest_path":"/w/crates/fat/Cargo.toml","target":{"name":"writer","kind":["test"]},"profile":{"test":true},"executable":"/w/target/debug/deps/writer-1"}
{"reason":"compiler-artifact","manifest_path":"/w/crates/fat/Cargo.toml","target":{"name":"d2l_fat","kind":["lib"]},"profile":{"test":false},"executable":null}
{"reason":"build-finished","success":true}"#;
        let found = test_binaries(json).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "fat/writer");
        assert_eq!(found[0].package_dir, Path::new("/w/crates/fat"));
        assert!(test_binaries(r#"{"reason":"build-finished"}"#).is_err());
    }
}
