//! `bench formats`: for each disk image format, `d2l build -o X.fmt` of the fixture against
//! `d2l build -o X.img` (raw), and `d2l convert` of that raw disk against
//! `qemu-img convert -O fmt` of it, in the same run; and the size of each output. Reading
//! is timed too: qemu-img's output converted back to raw by `d2l convert` and by qemu-img.
//!
//! Targets: a build straight to an uncompressed format costs at most 10% more than the raw
//! build (each such build is timed alternately with a raw build, and compared with that
//! raw build's best, so drifting writeback or load hits both alike); `d2l convert` is no slower than qemu-img; d2l's output is no larger than qemu-img's
//! (file length; the space it takes on disk is printed too). For the compressed outputs
//! (qcow2 `--compress`, VMDK streamOptimized) the build is compared with what it replaces,
//! the raw build followed by `qemu-img convert`, and is timed once after the warm-up (each
//! run deflates the whole disk).
//!
//! A VDI's block map comes before its data, and a build without `--size` learns the disk's
//! size only at the end, so it reserves room for a 64 GiB disk's map (256 KiB,
//! crates/disk-format/src/vdi.rs); the `vdi, --size given` case builds with the size known.
//!
//! QEMU sizes a VHD from its CHS geometry, so `qemu-img convert -O vpc` rounds the disk up a
//! little (d2l keeps the exact size, see crates/disk-format/src/vhd.rs); the sizes compared
//! are still the files'.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{check, measure, measure_usage, ratio, remove_and_sync, remove_file, Ctx, Fixture};
use crate::rss::Usage;
use crate::util;

/// Target: a build straight to a format at most this many times the raw build.
const BUILD_OVER_RAW_MAX: f64 = 1.10;
/// Target: `d2l convert` at most this many times `qemu-img convert`.
const CONVERT_OVER_QEMU_MAX: f64 = 1.0;

/// One format as both tools spell it.
struct Case {
    /// What the tables call it.
    name: &'static str,
    /// Output file name (its extension picks the format).
    file: &'static str,
    /// More `d2l build`/`d2l convert` arguments.
    d2l_args: &'static [&'static str],
    /// `qemu-img convert` arguments.
    qemu_args: &'static [&'static str],
    /// Deflated: timed once after the warm-up.
    compressed: bool,
    /// d2l build is given `--size` of the raw disk, so the size is known before the first
    /// write (it matters to VDI, whose block map precedes the data).
    size_given: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "qcow2",
        file: "disk.qcow2",
        d2l_args: &[],
        qemu_args: &["-O", "qcow2"],
        compressed: false,
        size_given: false,
    },
    Case {
        name: "vdi",
        file: "disk.vdi",
        d2l_args: &[],
        qemu_args: &["-O", "vdi"],
        compressed: false,
        size_given: false,
    },
    Case {
        name: "vdi, --size given",
        file: "sized.vdi",
        d2l_args: &[],
        qemu_args: &["-O", "vdi"],
        compressed: false,
        size_given: true,
    },
    Case {
        name: "vmdk (monolithicSparse)",
        file: "disk.vmdk",
        d2l_args: &[],
        qemu_args: &["-O", "vmdk"],
        compressed: false,
        size_given: false,
    },
    Case {
        name: "vhd (dynamic)",
        file: "disk.vhd",
        d2l_args: &[],
        qemu_args: &["-O", "vpc"],
        compressed: false,
        size_given: false,
    },
    Case {
        name: "vhd (fixed)",
        file: "fixed.vhd",
        d2l_args: &["--vhd-subformat", "fixed"],
        qemu_args: &["-O", "vpc", "-o", "subformat=fixed"],
        compressed: false,
        size_given: false,
    },
    Case {
        name: "vhdx (dynamic)",
        file: "disk.vhdx",
        d2l_args: &[],
        qemu_args: &["-O", "vhdx"],
        compressed: false,
        size_given: false,
    },
    Case {
        name: "qcow2 (compressed)",
        file: "small.qcow2",
        d2l_args: &["--compress"],
        qemu_args: &["-O", "qcow2", "-c"],
        compressed: true,
        size_given: false,
    },
    Case {
        name: "vmdk (streamOptimized)",
        file: "stream.vmdk",
        d2l_args: &["--vmdk-subformat", "stream"],
        qemu_args: &["-O", "vmdk", "-o", "subformat=streamOptimized"],
        compressed: true,
        size_given: false,
    },
];

impl Case {
    /// QEMU's name of the format, for `qemu-img convert -f`.
    fn qemu_format(&self) -> &'static str {
        self.qemu_args[1]
    }
}

/// What one case measured.
struct Measured {
    /// The raw build timed alongside `build` (the first raw build for compressed cases).
    raw_build: Duration,
    build: Duration,
    convert: Duration,
    qemu: Duration,
    /// `d2l convert` of qemu-img's output back to raw.
    read_back: Duration,
    /// `qemu-img convert -O raw` of the same.
    qemu_read_back: Duration,
    /// (file length, bytes on disk) of d2l build's, d2l convert's and qemu-img's outputs.
    sizes: [(u64, u64); 3],
}

/// Measures every format and prints the tables.
pub(super) fn run(ctx: &Ctx, fixture: &Fixture) -> Result<()> {
    let tmp = &ctx.tmp;
    let source = format!("oci:{}", fixture.image);
    let raw = tmp.join("disk.img");
    let raw_build = measure(
        "d2l build -o disk.img (raw)",
        || util::run_silent(&mut d2l_build(&ctx.d2l, &source, &raw, &[])),
        || remove_and_sync(&raw),
    )?;
    let raw_size = sizes(&raw)?;
    println!(
        "the raw disk: {} ({} on disk)",
        util::mib(raw_size.0),
        util::mib(raw_size.1)
    );

    let mut results = Vec::new();
    let size_arg = raw_size.0.to_string();
    for case in CASES {
        let out = tmp.join(case.file);
        let mut build_args = case.d2l_args.to_vec();
        if case.size_given {
            build_args.extend(["--size", &size_arg]);
        }
        let back = tmp.join("read-back.img");
        // Times `cmd`, whose output `made` is removed (untimed) before each run.
        let time_to = |name: &str, made: &Path, cmd: &mut dyn FnMut() -> Command| {
            let runs = if case.compressed { 1 } else { super::RUNS };
            let usage = measure_usage(
                &format!("{}: {name}", case.name),
                runs,
                || {
                    let start = std::time::Instant::now();
                    util::run_silent(&mut cmd())?;
                    Ok(Usage {
                        time: start.elapsed(),
                        peak_rss: 0,
                    })
                },
                || remove_and_sync(made),
            )?;
            Ok::<_, anyhow::Error>(usage.time)
        };
        let time = |name: &str, cmd: &mut dyn FnMut() -> Command| time_to(name, &out, cmd);
        let (raw_build, build) = if case.compressed {
            let build = time("d2l build", &mut || {
                d2l_build(&ctx.d2l, &source, &out, &build_args)
            })?;
            (raw_build, build)
        } else {
            measure_alternately(
                &format!("{}: d2l build (and raw)", case.name),
                [
                    &mut || util::run_silent(&mut d2l_build(&ctx.d2l, &source, &raw, &[])),
                    &mut || util::run_silent(&mut d2l_build(&ctx.d2l, &source, &out, &build_args)),
                ],
                [&mut || remove_and_sync(&raw), &mut || remove_and_sync(&out)],
            )?
        };
        let built = sizes(&out)?;
        let convert = time("d2l convert", &mut || {
            let mut cmd = Command::new(&ctx.d2l);
            cmd.args(["convert", "--quiet"])
                .arg(&raw)
                .arg(&out)
                .args(case.d2l_args);
            cmd
        })?;
        let converted = sizes(&out)?;
        let qemu = time("qemu-img convert", &mut || {
            let mut cmd = Command::new("qemu-img");
            cmd.arg("convert").args(case.qemu_args).arg(&raw).arg(&out);
            cmd
        })?;
        let by_qemu = sizes(&out)?;
        // Reading the format: qemu-img's image back to raw.
        let read_back = time_to("d2l convert back to raw", &back, &mut || {
            let mut cmd = Command::new(&ctx.d2l);
            cmd.args(["convert", "--quiet"]).arg(&out).arg(&back);
            cmd
        })?;
        let qemu_read_back = time_to("qemu-img convert back to raw", &back, &mut || {
            let mut cmd = Command::new("qemu-img");
            cmd.args(["convert", "-f", case.qemu_format(), "-O", "raw"])
                .arg(&out)
                .arg(&back);
            cmd
        })?;
        remove_file(&back)?;
        remove_file(&out)?;
        results.push((
            case,
            Measured {
                raw_build,
                build,
                convert,
                qemu,
                read_back,
                qemu_read_back,
                sizes: [built, converted, by_qemu],
            },
        ));
    }
    remove_file(&raw)?;

    println!();
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "best time", "raw build", "build", "convert", "qemu-img", "to raw", "qemu-img",
    );
    for (case, m) in &results {
        println!(
            "{:<24} {:>8.3}s {:>8.3}s {:>8.3}s {:>8.3}s {:>8.3}s {:>8.3}s",
            case.name,
            m.raw_build.as_secs_f64(),
            m.build.as_secs_f64(),
            m.convert.as_secs_f64(),
            m.qemu.as_secs_f64(),
            m.read_back.as_secs_f64(),
            m.qemu_read_back.as_secs_f64(),
        );
    }
    println!();
    println!(
        "{:<24} {:>24} {:>24} {:>24}",
        "file length / on disk", "build", "convert", "qemu-img"
    );
    let both = |(len, disk): (u64, u64)| format!("{} / {}", util::mib(len), util::mib(disk));
    for (case, m) in &results {
        println!(
            "{:<24} {:>24} {:>24} {:>24}",
            case.name,
            both(m.sizes[0]),
            both(m.sizes[1]),
            both(m.sizes[2]),
        );
    }
    println!();
    for (case, m) in &results {
        if case.compressed {
            let before = m.raw_build + m.qemu;
            let over = ratio(m.build, before);
            check(
                &format!("{}: build / (raw + qemu-img)", case.name),
                &format!("{over:.2}"),
                "target <= 1.0 (replaces both)",
                over <= 1.0,
            );
        } else {
            let over = ratio(m.build, m.raw_build);
            check(
                &format!("{}: build / raw build", case.name),
                &format!("{over:.2}"),
                &format!("target <= {BUILD_OVER_RAW_MAX:.2}"),
                over <= BUILD_OVER_RAW_MAX,
            );
        }
        let over = ratio(m.convert, m.qemu);
        check(
            &format!("{}: convert / qemu-img", case.name),
            &format!("{over:.2}"),
            &format!("target <= {CONVERT_OVER_QEMU_MAX:.1}"),
            over <= CONVERT_OVER_QEMU_MAX,
        );
        let over = ratio(m.read_back, m.qemu_read_back);
        check(
            &format!("{}: convert to raw / qemu-img", case.name),
            &format!("{over:.2}"),
            &format!("target <= {CONVERT_OVER_QEMU_MAX:.1}"),
            over <= CONVERT_OVER_QEMU_MAX,
        );
        for (what, size) in [("build", m.sizes[0].0), ("convert", m.sizes[1].0)] {
            let over = size as f64 / m.sizes[2].0 as f64;
            check(
                &format!("{}: {what} size / qemu-img", case.name),
                &format!("{over:.4}"),
                "target <= 1 (file length)",
                size <= m.sizes[2].0,
            );
        }
    }
    Ok(())
}

/// Runs `runs[0]` and `runs[1]` in turn, after a warm-up of each, [`super::RUNS`] times;
/// returns the best time of each. `resets[i]` (untimed) comes before each run of `runs[i]`.
fn measure_alternately(
    name: &str,
    runs: [&mut dyn FnMut() -> Result<()>; 2],
    resets: [&mut dyn FnMut() -> Result<()>; 2],
) -> Result<(Duration, Duration)> {
    let [a, b] = runs;
    let [reset_a, reset_b] = resets;
    let timed = |f: &mut dyn FnMut() -> Result<()>, reset: &mut dyn FnMut() -> Result<()>| {
        reset()?;
        let start = std::time::Instant::now();
        f()?;
        Ok::<_, anyhow::Error>(start.elapsed())
    };
    print!("{name}: warm-up");
    super::flush();
    timed(a, reset_a)?;
    timed(b, reset_b)?;
    let mut best = (Duration::MAX, Duration::MAX);
    for _ in 0..super::RUNS {
        let (ta, tb) = (timed(a, reset_a)?, timed(b, reset_b)?);
        print!(", {} / {}", super::secs3(ta), super::secs3(tb));
        super::flush();
        best = (best.0.min(ta), best.1.min(tb));
    }
    println!();
    Ok(best)
}

/// `d2l build --quiet SOURCE -o OUT ARGS` (an MBR disk with extlinux).
fn d2l_build(d2l: &Path, source: &str, out: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(d2l);
    cmd.args(["build", "--quiet", source, "-o"])
        .arg(out)
        .args(args);
    cmd
}

/// A file's length and the bytes it takes on disk.
fn sizes(path: &Path) -> Result<(u64, u64)> {
    let meta = std::fs::metadata(path).with_context(|| path.display().to_string())?;
    Ok((meta.len(), meta.blocks() * 512))
}
