//! `bench export`: `d2l export` of the fixture against `umoci unpack` and the floor.
//!
//! Targets: export / floor <= 1.3, umoci / export >= 2.0.

use std::process::Command;

use anyhow::Result;

use super::{check, heading, measure, ratio, remove_file, row, Ctx, Fixture, Floor};
use crate::util;

/// Target: `d2l export` at most this many times the floor.
const EXPORT_OVER_FLOOR_MAX: f64 = 1.3;
/// Target: `umoci unpack` at least this many times `d2l export`.
const UMOCI_OVER_EXPORT_MIN: f64 = 2.0;

/// Measures and prints the export table.
pub(super) fn run(ctx: &Ctx, fixture: &Fixture, floor: &Floor) -> Result<()> {
    let rootfs_tar = ctx.tmp.join("rootfs.tar");
    let export = measure(
        "d2l export",
        || {
            util::run_silent(
                Command::new(&ctx.d2l)
                    .arg("export")
                    .arg(format!("oci:{}", fixture.image))
                    .arg("-o")
                    .arg(&rootfs_tar),
            )
        },
        || remove_file(&rootfs_tar),
    );
    // Keep going without d2l so the rest of the table is there; fail at the end.
    if let Err(err) = &export {
        eprintln!("    d2l export failed: {err:#}");
    }
    remove_file(&rootfs_tar)?;

    let bundle = ctx.tmp.join("bundle");
    let umoci = measure(
        "umoci unpack",
        || {
            let mut cmd = Command::new("umoci");
            cmd.arg("unpack");
            if !util::is_root() {
                cmd.arg("--rootless");
            }
            util::run_silent(cmd.arg("--image").arg(&fixture.image).arg(&bundle))
        },
        || util::remove_tree(&bundle),
    )?;
    util::remove_tree(&bundle)?;

    println!();
    heading();
    match &export {
        Ok(d) => row("d2l export", *d),
        Err(_) => println!("{:<44} {:>9}", "d2l export", "FAILED"),
    }
    row("umoci unpack", umoci);
    floor.rows();
    println!();
    let export = export?;
    let over_floor = ratio(export, floor.total);
    let umoci_over = ratio(umoci, export);
    check(
        "export / floor",
        &format!("{over_floor:.2}"),
        &format!("target <= {EXPORT_OVER_FLOOR_MAX:.1}"),
        over_floor <= EXPORT_OVER_FLOOR_MAX,
    );
    check(
        "umoci / export",
        &format!("{umoci_over:.2}"),
        &format!("target >= {UMOCI_OVER_EXPORT_MIN:.1}"),
        umoci_over >= UMOCI_OVER_EXPORT_MIN,
    );
    Ok(())
}
