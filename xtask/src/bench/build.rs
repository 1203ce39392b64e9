//! `bench build`: `d2l build --table none` of the fixture against the floor, against
//! `mkfs.ext4 -d` on the already-extracted tree and against `tar -x` + `mkfs.ext4 -d`
//! (extraction into a fresh directory timed too); and the peak RSS of `d2l build`.
//!
//! The tree mkfs reads is `d2l export` of the same image extracted once, untimed, with
//! `tar -x --xattrs --xattrs-include='*' --numeric-owner` (as root, so owners and modes
//! are kept). mkfs makes a filesystem of exactly the size d2l chose, with the layout
//! options d2l uses ([`MKFS_OPTIONS`]).
//!
//! Targets: build / floor <= 1.5; build faster than `mkfs.ext4 -d` alone; peak RSS under
//! 200 MB.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::{
    check, heading, mb, measure, measure_usage, ratio, remove_and_sync, remove_file, row, Ctx,
    Fixture, Floor, RUNS,
};
use crate::{rss, util};

/// Target: `d2l build` at most this many times the floor.
const BUILD_OVER_FLOOR_MAX: f64 = 1.5;
/// Target: `d2l build` peak RSS on the fixture, in bytes.
const BUILD_RSS_MAX: u64 = 200_000_000;
/// mkfs.ext4 options matching d2l's layout: 4 KiB blocks, 256-byte inodes, no 64bit.
const MKFS_OPTIONS: &[&str] = &["-q", "-F", "-b", "4096", "-I", "256", "-O", "^64bit"];
/// `tar -x` options that keep everything `d2l export` wrote.
const TAR_OPTIONS: &[&str] = &["--xattrs", "--xattrs-include=*", "--numeric-owner"];

/// Measures and prints the build table.
pub(super) fn run(ctx: &Ctx, fixture: &Fixture, floor: &Floor) -> Result<()> {
    let tmp = &ctx.tmp;
    let source = format!("oci:{}", fixture.image);
    let rootfs_tar = tmp.join("rootfs.tar");
    let rootfs = tmp.join("rootfs");
    println!("preparing the tree for mkfs.ext4 -d (untimed): d2l export, tar -x");
    if !util::is_root() {
        println!("    not root: tar -x cannot keep owners, mkfs.ext4 sees them as ours");
    }
    util::run(
        Command::new(&ctx.d2l)
            .args(["export", "--quiet", &source, "-o"])
            .arg(&rootfs_tar),
    )?;
    extract(&rootfs_tar, &rootfs)?;

    let fs = tmp.join("fs.ext4");
    let build = measure_usage(
        "d2l build --table none",
        RUNS,
        || rss::run(&d2l_build(&ctx.d2l, &source, &fs)),
        || remove_and_sync(&fs),
    )?;
    let size = std::fs::metadata(&fs)
        .with_context(|| fs.display().to_string())?
        .len();
    remove_file(&fs)?;
    println!(
        "d2l chose {} ({size} bytes); mkfs.ext4 makes the same size",
        util::mib(size)
    );

    let mk = tmp.join("mk.ext4");
    let mkfs_d = measure(
        "mkfs.ext4 -d (tree already extracted)",
        || util::run_silent(&mut mkfs(&rootfs, &mk, size)),
        || remove_and_sync(&mk),
    )?;
    remove_file(&mk)?;
    util::remove_tree(&rootfs)?;

    let fresh = tmp.join("extracted");
    let tar_mkfs = measure(
        "tar -x + mkfs.ext4 -d",
        || {
            extract(&rootfs_tar, &fresh)?;
            util::run_silent(&mut mkfs(&fresh, &mk, size))
        },
        || {
            util::remove_tree(&fresh)?;
            remove_and_sync(&mk)
        },
    )?;
    util::remove_tree(&fresh)?;
    remove_file(&mk)?;
    remove_file(&rootfs_tar)?;

    println!();
    heading();
    row("d2l build --table none", build.time);
    row("mkfs.ext4 -d (tree already extracted)", mkfs_d);
    row("tar -x + mkfs.ext4 -d", tar_mkfs);
    row("floor (above)", floor.total);
    println!();
    let over_floor = ratio(build.time, floor.total);
    let mkfs_over = ratio(mkfs_d, build.time);
    let tar_mkfs_over = ratio(tar_mkfs, build.time);
    check(
        "build / floor",
        &format!("{over_floor:.2}"),
        &format!("target <= {BUILD_OVER_FLOOR_MAX:.1}"),
        over_floor <= BUILD_OVER_FLOOR_MAX,
    );
    check(
        "mkfs -d / build",
        &format!("{mkfs_over:.2}"),
        "target > 1 (build faster)",
        build.time < mkfs_d,
    );
    println!(
        "{:<30} {tar_mkfs_over:>10.2}   (for reference)",
        "tar -x + mkfs -d / build"
    );
    check(
        "build peak RSS",
        &mb(build.peak_rss),
        &format!("target < {}", mb(BUILD_RSS_MAX)),
        build.peak_rss < BUILD_RSS_MAX,
    );
    println!();
    super::decoders::run(ctx, &source, &fixture.image, &fixture.layers)
}

/// `d2l build SOURCE -o OUT --table none --quiet`.
pub(super) fn d2l_build(d2l: &Path, source: &str, out: &Path) -> Command {
    let mut cmd = Command::new(d2l);
    cmd.args(["build", "--quiet", source, "-o"])
        .arg(out)
        .args(["--table", "none"]);
    cmd
}

/// `mkfs.ext4 OPTIONS -d DIR OUT SIZE`, SIZE in KiB.
fn mkfs(dir: &Path, out: &Path, size: u64) -> Command {
    let mut cmd = Command::new("mkfs.ext4");
    cmd.args(MKFS_OPTIONS)
        .arg("-d")
        .arg(dir)
        .arg(out)
        .arg(format!("{}k", size / 1024));
    cmd
}

/// Extracts the tar `archive` into `dir`, which is created.
fn extract(archive: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    util::run_silent(
        Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .args(TAR_OPTIONS)
            .arg("-C")
            .arg(dir),
    )
}
