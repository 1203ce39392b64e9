//! `cargo xtask demo`: d2l on the built-in demo image (the Debian fixture).
//!
//! Today: `d2l inspect` and `d2l export` to `./demo-rootfs.tar`. A later issue turns the
//! demo into a bootable disk.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::fixtures;
use crate::util::{self, cargo, step};

/// The tar the demo writes, in the current directory.
const OUTPUT: &str = "demo-rootfs.tar";
/// How many entries of the tar to show.
const SHOW: usize = 10;

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
    step("d2l export", || {
        util::run(Command::new(&d2l).args(["export", &source, "-o", OUTPUT]))
    })?;

    let size = std::fs::metadata(OUTPUT)
        .with_context(|| OUTPUT.to_string())?
        .len();
    println!(
        "\n{OUTPUT}: {}\n$ tar -tvf {OUTPUT} | head",
        util::mib(size)
    );
    let mut tar = Command::new("tar")
        .args(["-tvf", OUTPUT])
        .stdout(Stdio::piped())
        .spawn()?;
    let lines = BufReader::new(tar.stdout.take().expect("piped")).lines();
    for line in lines.take(SHOW) {
        println!("{}", line?);
    }
    // Like `head`: stop tar rather than list the rest.
    let _ = tar.kill();
    let _ = tar.wait();
    Ok(())
}
