//! `qemu-img` (package qemu-utils) as the outside judge of disk images: what it says an
//! image is, whether its consistency check passes, whether two images hold the same disk.
//!
//! ```no_run
//! use d2l_testkit::qemu_img;
//! let info = qemu_img::info("linux.vdi".as_ref(), Some("vdi"));
//! assert_eq!(info.format, "vdi");
//! qemu_img::assert_check("linux.vdi".as_ref(), "vdi");
//! qemu_img::assert_identical("linux.img".as_ref(), "raw", "linux.vdi".as_ref(), "vdi");
//! ```

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// The tool this module runs.
pub const QEMU_IMG: &str = "qemu-img";
/// The Debian package that provides it.
pub const QEMU_IMG_PACKAGE: &str = "qemu-utils";

/// What `qemu-img info --output=json` says.
#[derive(Debug, Clone)]
pub struct Info {
    /// QEMU's format name (`raw`, `qcow2`, `vdi`, `vmdk`, `vpc`).
    pub format: String,
    /// The virtual disk's size in bytes.
    pub virtual_size: u64,
    /// The whole JSON, for format-specific fields.
    pub json: Value,
}

/// Runs `qemu-img ARGS`.
///
/// # Panics
///
/// If qemu-img cannot be started (not installed).
pub fn run(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(QEMU_IMG)
        .args(args)
        .args(paths)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {QEMU_IMG} (package {QEMU_IMG_PACKAGE}): {e}"))
}

/// `qemu-img info`, with `-f FORMAT` when given (else QEMU probes the format).
///
/// # Panics
///
/// If qemu-img fails or prints something that is not its JSON.
pub fn info(path: &Path, format: Option<&str>) -> Info {
    let mut args = vec!["info", "--output=json"];
    if let Some(format) = format {
        args.extend(["-f", format]);
    }
    let out = run(&args, &[path]);
    assert!(
        out.status.success(),
        "qemu-img info {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("qemu-img info JSON");
    Info {
        format: json["format"].as_str().unwrap_or_default().to_string(),
        virtual_size: json["virtual-size"].as_u64().unwrap_or_default(),
        json,
    }
}

/// `qemu-img check -f FORMAT`: its exit status and standard output.
pub fn check(path: &Path, format: &str) -> (Option<i32>, String) {
    let out = run(&["check", "-f", format], &[path]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Asserts that `qemu-img check` finds no errors, leaks or corruptions.
pub fn assert_check(path: &Path, format: &str) {
    let (code, text) = check(path, format);
    assert_eq!(code, Some(0), "qemu-img check {}: {text}", path.display());
    assert!(
        text.contains("No errors were found on the image."),
        "qemu-img check {}: {text}",
        path.display()
    );
}

/// `qemu-img compare`: whether the two images hold the same disk, and what it printed.
pub fn compare(a: &Path, a_format: &str, b: &Path, b_format: &str) -> (bool, String) {
    let out = run(&["compare", "-f", a_format, "-F", b_format], &[a, b]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code() == Some(0) && text.contains("Images are identical."),
        text,
    )
}

/// Asserts that two images hold the same disk.
pub fn assert_identical(a: &Path, a_format: &str, b: &Path, b_format: &str) {
    let (same, text) = compare(a, a_format, b, b_format);
    assert!(
        same,
        "qemu-img compare {} {}: {text}",
        a.display(),
        b.display()
    );
}

/// `qemu-img convert ARGS IN OUT`, asserting success.
pub fn convert(args: &[&str], input: &Path, output: &Path) {
    let mut all = vec!["convert"];
    all.extend_from_slice(args);
    let out = run(&all, &[input, output]);
    assert!(
        out.status.success(),
        "qemu-img convert {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
