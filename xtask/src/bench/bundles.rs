//! `bench bundles`: the files other tools import, `d2l build -o X` of the fixture for an
//! OVA, a Compute Engine `image.tar.gz` and a Vagrant `.box`, against the raw build and
//! against what each replaces, the raw build then the documented way by hand:
//!
//! - OVA: `qemu-img convert -O vmdk -o subformat=streamOptimized`, `sha256sum` of the VMDK
//!   (the manifest), `tar -cf` (the descriptor, a few KiB, is left out of the by-hand side);
//! - Compute Engine: `tar --format=oldgnu -Sczf image.tar.gz disk.raw`, Google's command;
//! - Vagrant box: `qemu-img convert -O qcow2`, `tar -cf` with metadata.json and a
//!   Vagrantfile.
//!
//! Each compresses the whole disk, so each is timed once after the warm-up, as the
//! compressed formats are. Target: the build replaces both steps, so it takes at most
//! their sum. The output sizes are printed side by side.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::{check, measure, measure_runs, ratio, remove_and_sync, Ctx, Fixture};
use crate::util;

/// One archive.
struct Case {
    /// What the tables call it.
    name: &'static str,
    /// `d2l build -o` file name (its extension picks the archive).
    file: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "ova",
        file: "vm.ova",
    },
    Case {
        name: "tar.gz (GCE)",
        file: "image.tar.gz",
    },
    Case {
        name: "box (Vagrant)",
        file: "debian.box",
    },
];

/// The by-hand way for `case` from the raw disk `raw` in `dir`; returns the archive made.
fn by_hand(case: &Case, raw: &Path, dir: &Path) -> Result<PathBuf> {
    let run = |cmd: &mut Command| util::run_silent(cmd.current_dir(dir));
    match case.file {
        "vm.ova" => {
            run(Command::new("qemu-img")
                .args([
                    "convert",
                    "-f",
                    "raw",
                    "-O",
                    "vmdk",
                    "-o",
                    "subformat=streamOptimized",
                ])
                .arg(raw)
                .arg("vm-disk1.vmdk"))?;
            run(Command::new("sh").args(["-c", "sha256sum vm-disk1.vmdk > vm.mf"]))?;
            run(Command::new("tar").args(["-cf", "hand.ova", "vm.mf", "vm-disk1.vmdk"]))?;
            Ok(dir.join("hand.ova"))
        }
        "image.tar.gz" => {
            std::fs::hard_link(raw, dir.join("disk.raw")).context("linking disk.raw")?;
            run(Command::new("tar").args(["--format=oldgnu", "-Sczf", "hand.tar.gz", "disk.raw"]))?;
            Ok(dir.join("hand.tar.gz"))
        }
        _ => {
            run(Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "qcow2"])
                .arg(raw)
                .arg("box.img"))?;
            std::fs::write(
                dir.join("metadata.json"),
                "{\"provider\":\"libvirt\",\"format\":\"qcow2\",\"virtual_size\":2}\n",
            )?;
            std::fs::write(
                dir.join("Vagrantfile"),
                "Vagrant.configure(\"2\") do |c| end\n",
            )?;
            run(Command::new("tar").args([
                "-cf",
                "hand.box",
                "metadata.json",
                "Vagrantfile",
                "box.img",
            ]))?;
            Ok(dir.join("hand.box"))
        }
    }
}

/// Measures every archive and prints the tables.
pub(super) fn run(ctx: &Ctx, fixture: &Fixture) -> Result<()> {
    let tmp = &ctx.tmp;
    let source = format!("oci:{}", fixture.image);
    let raw = tmp.join("disk.img");
    let build = |out: &Path| {
        let mut cmd = Command::new(&ctx.d2l);
        cmd.args(["build", "--quiet", &source, "-o"]).arg(out);
        cmd
    };
    let raw_build = measure(
        "d2l build -o disk.img (raw)",
        || util::run_silent(&mut build(&raw)),
        || remove_and_sync(&raw),
    )?;
    let mut results = Vec::new();
    for case in CASES {
        let out = tmp.join(case.file);
        let d2l = measure_runs(
            &format!("{}: d2l build", case.name),
            1,
            &mut || util::run_silent(&mut build(&out)),
            &mut || remove_and_sync(&out),
        )?;
        let d2l_size = std::fs::metadata(&out)?.len();
        super::remove_file(&out)?;
        let hand_dir = tmp.join("by-hand");
        let mut made = None;
        let hand = measure_runs(
            &format!("{}: by hand from the raw disk", case.name),
            1,
            &mut || {
                made = Some(by_hand(case, &raw, &hand_dir)?);
                Ok(())
            },
            &mut || {
                util::remove_tree(&hand_dir)?;
                std::fs::create_dir_all(&hand_dir).context("by-hand directory")?;
                util::run_quiet(&mut Command::new("sync"))
            },
        )?;
        let hand_size = match &made {
            Some(path) => std::fs::metadata(path)?.len(),
            None => 0,
        };
        util::remove_tree(&hand_dir)?;
        results.push((case, d2l, hand, d2l_size, hand_size));
    }
    let raw_meta = std::fs::metadata(&raw)?;
    super::remove_file(&raw)?;

    println!();
    println!(
        "the raw disk: {} ({} on disk), its build {:.3}s (best of {})",
        util::mib(raw_meta.len()),
        util::mib(raw_meta.blocks() * 512),
        raw_build.as_secs_f64(),
        super::RUNS
    );
    println!(
        "{:<26} {:>9} {:>9} {:>12} {:>14} {:>14}",
        "", "build", "by hand", "raw + hand", "build size", "by-hand size"
    );
    for (case, d2l, hand, d2l_size, hand_size) in &results {
        println!(
            "{:<26} {:>8.3}s {:>8.3}s {:>11.3}s {:>14} {:>14}",
            case.name,
            d2l.as_secs_f64(),
            hand.as_secs_f64(),
            (raw_build + *hand).as_secs_f64(),
            util::mib(*d2l_size),
            util::mib(*hand_size),
        );
    }
    println!();
    for (case, d2l, hand, _, _) in &results {
        let over_raw = ratio(*d2l, raw_build);
        check(
            &format!("{}: build / raw build", case.name),
            &format!("{over_raw:.2}"),
            "reported",
            true,
        );
        let over = ratio(*d2l, raw_build + *hand);
        check(
            &format!("{}: build / (raw + by hand)", case.name),
            &format!("{over:.2}"),
            "target <= 1.0 (replaces both)",
            over <= 1.0,
        );
    }
    Ok(())
}
