//! `cargo xtask demo`: d2l on the built-in demo image (the Debian fixture).
//!
//! `d2l inspect`, then `d2l build` to `./demo.img`: a bootable MBR disk (ext4 root, extlinux),
//! root password `demo`; its table is shown with `sfdisk -l`, and `d2l run demo.img` boots it.

use std::process::Command;

use anyhow::Result;

use crate::fixtures;
use crate::util::{self, cargo, step};

/// The disk image the demo writes, in the current directory.
const OUTPUT: &str = "demo.img";
/// Root password of the demo machine.
const PASSWORD: &str = "demo";

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
    step("d2l build", || {
        util::run(Command::new(&d2l).args([
            "build",
            &source,
            "-o",
            OUTPUT,
            "--root-password",
            PASSWORD,
        ]))
    })?;
    step("sfdisk -l", || {
        util::run(Command::new("sfdisk").args(["-l", OUTPUT]))
    })?;
    println!("\n{OUTPUT} is a bootable disk. Boot it (software emulation takes a minute or two):");
    println!(
        "  {} run {OUTPUT}      # log in as root, password {PASSWORD:?}",
        d2l.display()
    );
    println!("or: qemu-system-x86_64 -m 1024 -nographic -drive file={OUTPUT},format=raw,if=virtio");
    Ok(())
}
