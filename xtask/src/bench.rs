//! `cargo xtask bench [--only PART[,PART...]]`: how fast d2l is, in four parts.
//!
//! - `export` ([`export`]): `d2l export` of the Debian fixture against `umoci unpack` of
//!   the same image and against the floor.
//! - `build` ([`build`]): `d2l build --table none` of the fixture against the floor,
//!   against `mkfs.ext4 -d` on the already-extracted tree and against `tar -x` +
//!   `mkfs.ext4 -d`; and its peak RSS. Then ([`gunzip`]) against `igzip -dc` of its layers
//!   alone, with d2l's gzip decoder on every core and on one thread.
//! - `scale` ([`scale`]): `d2l build --table none` of synthetic images of 10k, 100k and 1M
//!   small files in 10 layers ([`crate::synthetic`]): time per file, peak RSS, linearity.
//! - `disk` ([`disk`]): `d2l build` of the fixture into a bootable MBR disk against the
//!   docker-to-linux way by hand as root (truncate, sfdisk, losetup, mkfs.ext4, tar -x,
//!   extlinux --install, dd mbr.bin); both images are then booted once in QEMU.
//! - `pull` ([`pull`]): `d2l pull` of the fixture from a local `docker-registry` against
//!   `skopeo copy docker://... oci:DIR`.
//! - `formats` ([`formats`]): `d2l build -o X.fmt` against the raw build, and `d2l convert`
//!   against `qemu-img convert`, for every disk image format; output sizes.
//! - `bundles` ([`bundles`]): `d2l build -o` an OVA, a Compute Engine `image.tar.gz` and a
//!   Vagrant `.box` against the raw build, and against the raw build plus the documented
//!   way by hand (qemu-img convert, tar, gzip); output sizes.
//! - `stock` ([`stock`]): `d2l build` of a kernel-less stock image, the first time (the
//!   kernel recipe through buildah) against the second (from d2l's cache).
//! - `appliance` ([`appliance`]): a kernel-less image with `--kernel-from`, booted: d2l's
//!   init from the kernel's handover to the image's command.
//!
//! The floor is the work no exporter can skip, done single-threaded and spread over the
//! cores: `openssl sha256` of the compressed layers (digest check), `pigz -dc -p 1` of them
//! (decompression) and `openssl sha256` of the decompressed bytes (diff_id check), summed
//! and divided by the number of cores. It is measured once per run and shared by `export`
//! and `build`. Every time is the best of 3 after one warm-up run, with the page cache
//! warm; outputs are removed (untimed) before each run, and in `build` and `scale` a
//! `sync` then flushes the previous run's dirty pages so its writeback is not timed in the
//! next. Peak RSS is the kernel's high-water mark for the process ([`crate::rss`]).
//! `d2l` is a copy of `target/release/d2l` taken after building it.
//!
//! A benchmark, not a test: misses are reported, only a failing command fails the task.

mod appliance;
mod build;
mod bundles;
mod decoders;
mod disk;
mod export;
mod formats;
mod pull;
mod scale;
mod stock;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::fixtures::{self, Layer};
use crate::rss::Usage;
use crate::util::{self, cargo, step, Tool};

/// Timed runs per measurement, after one untimed warm-up.
const RUNS: usize = 3;

/// Which parts of the benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// `d2l export` against umoci and the floor.
    pub export: bool,
    /// `d2l build` of the fixture against mkfs.ext4 and the floor.
    pub build: bool,
    /// `d2l build` of synthetic images of growing size.
    pub scale: bool,
    /// `d2l build` of a bootable disk against the docker-to-linux way, both booted.
    pub disk: bool,
    /// `d2l pull` from a local registry against `skopeo copy`.
    pub pull: bool,
    /// Disk image formats: build and convert against qemu-img.
    pub formats: bool,
    /// OVA, Compute Engine image, Vagrant box: build against raw and the way by hand.
    pub bundles: bool,
    /// A stock image's first build (kernel recipe) against its cached one.
    pub stock: bool,
    /// d2l's init booting an image's command: handover to command.
    pub appliance: bool,
}

impl Parts {
    /// Everything.
    pub const ALL: Parts = Parts {
        export: true,
        build: true,
        scale: true,
        disk: true,
        pull: true,
        formats: true,
        bundles: true,
        stock: true,
        appliance: true,
    };

    /// Reads the arguments after `bench`: nothing, or `--only PART[,PART...]`.
    pub fn parse(args: &[String]) -> std::result::Result<Parts, String> {
        match args {
            [] => Ok(Parts::ALL),
            [flag, list] if flag == "--only" => {
                let mut parts = Parts {
                    export: false,
                    build: false,
                    scale: false,
                    disk: false,
                    pull: false,
                    formats: false,
                    bundles: false,
                    stock: false,
                    appliance: false,
                };
                for name in list.split(',') {
                    match name {
                        "export" => parts.export = true,
                        "build" => parts.build = true,
                        "scale" => parts.scale = true,
                        "disk" => parts.disk = true,
                        "pull" => parts.pull = true,
                        "formats" => parts.formats = true,
                        "bundles" => parts.bundles = true,
                        "stock" => parts.stock = true,
                        "appliance" => parts.appliance = true,
                        other => {
                            return Err(format!(
                                "unknown bench part `{other}` (export, build, scale, disk, pull, formats, bundles, stock, appliance)"
                            ))
                        }
                    }
                }
                Ok(parts)
            }
            [flag] if flag.starts_with("--only=") => {
                Parts::parse(&["--only".into(), flag["--only=".len()..].into()])
            }
            _ => Err(format!(
                "bench takes `--only export|build|scale|disk|pull|formats|bundles|stock|appliance` (comma-separated), not `{}`",
                args.join(" ")
            )),
        }
    }
}

/// What the parts share: the d2l binary, a scratch directory and the fixture.
struct Ctx {
    /// A copy of `target/release/d2l`, made right after building it.
    d2l: PathBuf,
    /// `target/xtask-bench`, emptied at the start and the end.
    tmp: PathBuf,
}

/// The Debian fixture in its OCI layout form.
struct Fixture {
    /// `DIR:REF`, to prefix with `oci:` (d2l) or pass to `--image` (umoci).
    image: String,
    /// Its layers, bottom first.
    layers: Vec<Layer>,
}

/// Builds d2l, makes sure the fixtures exist, measures and prints the tables.
pub fn run(parts: Parts) -> Result<()> {
    step("packages", || {
        util::ensure_tools(util::FIXTURE_TOOLS)?;
        util::ensure_tools(decoders::TOOLS)?;
        util::ensure_tools(&[Tool {
            command: "openssl",
            package: "openssl",
        }])
    })?;
    step("cargo build --release -p d2l", || {
        util::run(cargo().args(["build", "--release", "-p", "d2l"]))
    })?;
    let target = util::target_dir()?;
    let tmp = target.join("xtask-bench");
    util::remove_tree(&tmp)?;
    std::fs::create_dir_all(&tmp).with_context(|| tmp.display().to_string())?;
    // A copy, so a `cargo build` running meanwhile cannot swap the binary mid-run.
    let built = target.join("release/d2l");
    let d2l = tmp.join("d2l");
    std::fs::copy(&built, &d2l)
        .with_context(|| format!("copy {} -> {}", built.display(), d2l.display()))?;
    let ctx = Ctx { d2l, tmp };

    // A part that fails is reported and the others still run; the task fails at the end.
    let mut failed = Vec::new();
    let mut report = |name: &'static str, result: Result<()>| {
        if let Err(err) = result {
            eprintln!("bench {name} failed: {err:#}");
            failed.push(name);
        }
    };
    if parts.export || parts.build || parts.disk || parts.pull || parts.formats || parts.bundles {
        let fix = step("fixtures", fixtures::ensure)?;
        let layout = fix.join(fixtures::OCI_DIR);
        let fixture = Fixture {
            image: format!("{}:{}", layout.display(), fixtures::REFERENCE),
            layers: fixtures::layers(&layout, fixtures::REFERENCE)?,
        };
        if parts.export || parts.build {
            let floor = step("bench: floor", || Floor::measure(&ctx, &fixture.layers))?;
            if parts.export {
                report(
                    "export",
                    step("bench: export", || export::run(&ctx, &fixture, &floor)),
                );
            }
            if parts.build {
                report(
                    "build",
                    step("bench: build", || build::run(&ctx, &fixture, &floor)),
                );
            }
        }
        if parts.disk {
            report("disk", step("bench: disk", || disk::run(&ctx, &fixture)));
        }
        if parts.pull {
            report("pull", step("bench: pull", || pull::run(&ctx, &fixture)));
        }
        if parts.formats {
            report(
                "formats",
                step("bench: formats", || formats::run(&ctx, &fixture)),
            );
        }
        if parts.bundles {
            report(
                "bundles",
                step("bench: bundles", || bundles::run(&ctx, &fixture)),
            );
        }
    }
    if parts.scale {
        report("scale", step("bench: scale", || scale::run(&ctx)));
    }
    if parts.stock {
        report("stock", step("bench: stock", || stock::run(&ctx)));
    }
    if parts.appliance {
        report(
            "appliance",
            step("bench: appliance", || appliance::run(&ctx)),
        );
    }
    util::remove_tree(&ctx.tmp)?;
    if !failed.is_empty() {
        bail!("bench parts failed: {}", failed.join(", "));
    }
    Ok(())
}

/// The floor and its terms.
struct Floor {
    sha_compressed: Duration,
    gunzip: Duration,
    sha_raw: Duration,
    cores: usize,
    /// The terms summed and divided by `cores`.
    total: Duration,
}

impl Floor {
    /// Measures the floor for `layers` and prints what the image is made of.
    fn measure(ctx: &Ctx, layers: &[Layer]) -> Result<Floor> {
        let blobs = || layers.iter().map(|l| &l.path);
        let sha_compressed = measure(
            "openssl sha256 (compressed)",
            || util::run_silent(Command::new("openssl").arg("sha256").args(blobs())),
            || Ok(()),
        )?;
        let gunzip = measure(
            "pigz -dc -p 1",
            || util::run_silent(&mut pigz(layers)),
            || Ok(()),
        )?;
        let raw = ctx.tmp.join("layers.tar");
        util::run_quiet(pigz(layers).stdout(File::create(&raw)?))?;
        let raw_size = std::fs::metadata(&raw)?.len();
        let sha_raw = measure(
            "openssl sha256 (uncompressed)",
            || util::run_silent(Command::new("openssl").arg("sha256").arg(&raw)),
            || Ok(()),
        )?;
        remove_file(&raw)?;

        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let floor = Floor {
            sha_compressed,
            gunzip,
            sha_raw,
            cores,
            total: (sha_compressed + gunzip + sha_raw) / cores as u32,
        };
        let compressed: u64 = layers.iter().map(|l| l.size).sum();
        println!(
            "\nimage: {} layers, {} compressed, {} uncompressed; {cores} cores",
            layers.len(),
            util::mib(compressed),
            util::mib(raw_size)
        );
        heading();
        floor.rows();
        Ok(floor)
    }

    /// Prints the terms and the total as table rows.
    fn rows(&self) {
        row("floor: openssl sha256, compressed", self.sha_compressed);
        row("floor: pigz -dc -p 1", self.gunzip);
        row("floor: openssl sha256, uncompressed", self.sha_raw);
        row(&format!("floor: sum / {} cores", self.cores), self.total);
    }
}

/// `pigz -dc -p 1` of all layer blobs, bottom first.
fn pigz(layers: &[Layer]) -> Command {
    let mut cmd = Command::new("pigz");
    cmd.args(["-dc", "-p", "1"])
        .args(layers.iter().map(|l| &l.path));
    cmd
}

/// Best of [`RUNS`] runs of `f` after a warm-up, calling `reset` (untimed) before each.
fn measure(
    name: &str,
    f: impl FnMut() -> Result<()>,
    reset: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    measure_runs(name, RUNS, f, reset)
}

/// Best of `runs` runs of `f` after a warm-up, calling `reset` (untimed) before each.
fn measure_runs(
    name: &str,
    runs: usize,
    mut f: impl FnMut() -> Result<()>,
    reset: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    let usage = measure_usage(
        name,
        runs,
        || {
            let start = Instant::now();
            f()?;
            Ok(Usage {
                time: start.elapsed(),
                peak_rss: 0,
            })
        },
        reset,
    )?;
    Ok(usage.time)
}

/// A command [`measure_alternating`] times: `run` it, after an untimed `reset`.
struct Contender<'a> {
    name: &'a str,
    run: Box<dyn FnMut() -> Result<()> + 'a>,
    reset: Box<dyn FnMut() -> Result<()> + 'a>,
}

/// Best time of each contender over `rounds` rounds after a warm-up round, each round
/// running them all in turn: on a shared machine a slow spell then falls on all of them,
/// not on one, and the ratios between them (what the targets are) hold.
fn measure_alternating(contenders: &mut [Contender<'_>], rounds: usize) -> Result<Vec<Duration>> {
    println!(
        "alternating {} commands, a warm-up round and {rounds} timed",
        contenders.len()
    );
    let mut times = vec![Vec::with_capacity(rounds); contenders.len()];
    for round in 0..=rounds {
        for (contender, times) in contenders.iter_mut().zip(&mut times) {
            (contender.reset)()?;
            let start = Instant::now();
            (contender.run)().with_context(|| contender.name.to_string())?;
            if round > 0 {
                times.push(start.elapsed());
            }
        }
    }
    let mut best = Vec::with_capacity(contenders.len());
    for (contender, times) in contenders.iter().zip(&times) {
        let list: Vec<String> = times.iter().map(|&t| secs3(t)).collect();
        println!("{}: {}", contender.name, list.join(", "));
        best.push(times.iter().copied().min().unwrap_or(Duration::MAX));
    }
    Ok(best)
}

/// Best time of `runs` runs of `f` after a warm-up, with the largest peak RSS of them all
/// (the warm-up included); calls `reset` (untimed) before each.
fn measure_usage(
    name: &str,
    runs: usize,
    mut f: impl FnMut() -> Result<Usage>,
    mut reset: impl FnMut() -> Result<()>,
) -> Result<Usage> {
    print!("{name}: warm-up");
    flush();
    reset()?;
    let warm_up = f()?;
    let mut best = Usage {
        time: Duration::MAX,
        peak_rss: warm_up.peak_rss,
    };
    for _ in 0..runs {
        reset()?;
        let usage = f()?;
        print!(", {}", secs3(usage.time));
        flush();
        best.time = best.time.min(usage.time);
        best.peak_rss = best.peak_rss.max(usage.peak_rss);
    }
    println!();
    Ok(best)
}

/// The header of a time table.
fn heading() {
    println!(
        "{:<44} {:>9}",
        format!("best of {RUNS}, after a warm-up"),
        "time"
    );
}

/// A row of a time table.
fn row(name: &str, d: Duration) {
    println!("{name:<44} {:>8.3}s", d.as_secs_f64());
}

/// `1.234s`: what the run lines print (one decimal hides the differences that matter).
fn secs3(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// `a / b` of two durations.
fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// Prints a line of the verdict table: what, its value, the target, PASS or MISS.
fn check(name: &str, value: &str, target: &str, ok: bool) {
    let verdict = if ok { "PASS" } else { "MISS" };
    println!("{name:<30} {value:>10}   {target:<28} {verdict}");
}

/// Removes the file `path` and flushes dirty pages (untimed, before a run), so writeback
/// left over from the previous run does not land in the next one's time.
fn remove_and_sync(path: &Path) -> Result<()> {
    remove_file(path)?;
    util::run_quiet(&mut Command::new("sync"))
}

/// [`remove_and_sync`] when `path` exists (before a run that may not have written it).
fn remove_if_there(path: &Path) -> Result<()> {
    if path.exists() {
        remove_and_sync(path)?;
    }
    Ok(())
}

/// `123.4 MB`: RSS targets are stated in decimal megabytes.
fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn flush() {
    let _ = std::io::stdout().flush();
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| path.display().to_string())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> std::result::Result<Parts, String> {
        Parts::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parts_default_to_all_and_only_picks() {
        assert_eq!(parse(&[]), Ok(Parts::ALL));
        let build = Parts {
            export: false,
            build: true,
            scale: false,
            disk: false,
            pull: false,
            formats: false,
            bundles: false,
            stock: false,
            appliance: false,
        };
        assert_eq!(parse(&["--only", "build"]), Ok(build));
        assert_eq!(parse(&["--only=build"]), Ok(build));
        assert_eq!(
            parse(&["--only", "scale,export"]),
            Ok(Parts {
                export: true,
                build: false,
                scale: true,
                disk: false,
                pull: false,
                formats: false,
                bundles: false,
                stock: false,
                appliance: false,
            })
        );
        assert_eq!(
            parse(&["--only", "disk"]),
            Ok(Parts {
                export: false,
                build: false,
                scale: false,
                disk: true,
                pull: false,
                formats: false,
                bundles: false,
                stock: false,
                appliance: false,
            })
        );
        assert_eq!(
            parse(&["--only", "formats"]),
            Ok(Parts {
                export: false,
                build: false,
                scale: false,
                disk: false,
                pull: false,
                formats: true,
                bundles: false,
                stock: false,
                appliance: false,
            })
        );
        assert!(parse(&["--only", "pull"]).is_ok_and(|p| p.pull && !p.export));
        assert!(parse(&["--only", "bundles"]).is_ok_and(|p| p.bundles && !p.formats));
        assert!(parse(&["--only", "appliance"]).is_ok_and(|p| p.appliance && !p.stock));
        assert!(parse(&["--only", "boot"]).is_err());
        assert!(parse(&["--only"]).is_err());
        assert!(parse(&["build"]).is_err());
    }
}
