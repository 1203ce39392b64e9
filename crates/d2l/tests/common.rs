//! Running the d2l binary in tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `d2l ARGS`, returning its output.
pub fn d2l(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d2l"))
        .args(args)
        .env_remove("D2L_LOG")
        .output()
        .expect("run d2l")
}

/// Runs `program ARGS`, panicking unless it succeeds (with both its outputs); returns its
/// standard output.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failed run: exit code 1, one error line that contains every `needles` string,
/// and nothing left in `dir` but the files that were there before (no output, no temporary).
pub fn assert_clean_failure(out: &Output, dir: &Path, before: &[String], needles: &[&str]) {
    assert_clean_failure_code(out, 1, dir, before, needles);
}

/// [`assert_clean_failure`] with another exit code (an image builder's own).
pub fn assert_clean_failure_code(
    out: &Output,
    code: i32,
    dir: &Path,
    before: &[String],
    needles: &[&str],
) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("d2l: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one error line in: {err}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{needle:?} not in error line {:?}",
            lines[0]
        );
    }
    assert_eq!(
        list_dir(dir),
        before,
        "files left behind in {}",
        dir.display()
    );
}

/// Names in a directory, sorted.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
