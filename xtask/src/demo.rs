//! `cargo xtask demo`: d2l on the built-in demo image (the Debian fixture).
//!
//! Today: `d2l inspect`, then `d2l build --table none` to `./demo-rootfs.ext4` (a bare ext4
//! filesystem, checked with `e2fsck -fn` and summarised by `dumpe2fs -h`). A later issue
//! turns the demo into a bootable disk.

use std::process::Command;

use anyhow::{Context, Result};

use crate::fixtures;
use crate::util::{self, cargo, step};

/// The filesystem image the demo writes, in the current directory.
const OUTPUT: &str = "demo-rootfs.ext4";
/// Lines of `dumpe2fs -h` worth showing.
const SUMMARY_FIELDS: &[&str] = &[
    "Filesystem UUID",
    "Filesystem features",
    "Inode count",
    "Block count",
    "Free blocks",
];

/// Builds d2l and runs it on the demo image.
pub fn run() -> Result<()> {
    let fix = step("fixtures", fixtures::ensure)?;
    step("cargo build --release -p d2l", || {
        util::run(cargo().args(["build", "--release", "-p", "d2l"]))
    })?;
    let d2l = util::target_dir()?.join("release/d2l");
    let source = format!(
        "oci:{}:{}",
        fix.join(fixtures::OCI_DIR).display(),
        fixtures::REFERENCE
    );
    step("d2l inspect", || {
        util::run(Command::new(&d2l).args(["inspect", &source]))
    })?;
    step("d2l build --table none", || {
        util::run(Command::new(&d2l).args(["build", &source, "-o", OUTPUT, "--table", "none"]))
    })?;
    step("e2fsck -fn", || {
        util::run(Command::new("e2fsck").args(["-fn", OUTPUT]))
    })?;
    let dump = Command::new("dumpe2fs")
        .args(["-h", OUTPUT])
        .output()
        .context("dumpe2fs (e2fsprogs)")?;
    let text = String::from_utf8_lossy(&dump.stdout);
    println!("\n{OUTPUT}:");
    for line in text.lines() {
        if SUMMARY_FIELDS.iter().any(|f| line.starts_with(f)) {
            println!("  {line}");
        }
    }
    println!(
        "\nBoot it as a root drive, e.g.: qemu-system-x86_64 -kernel vmlinuz -initrd initrd.img \\"
    );
    println!("  -append 'root=/dev/vda console=ttyS0' -drive file={OUTPUT},format=raw,if=virtio -nographic");
    Ok(())
}
