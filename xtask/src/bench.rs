//! `cargo xtask bench`: how fast `d2l export` flattens the Debian fixture, against
//! `umoci unpack` of the same image and against a floor.
//!
//! The floor is the work no exporter can skip, done single-threaded and spread over the
//! cores: `openssl sha256` of the compressed layers (digest check), `pigz -dc -p 1` of them
//! (decompression) and `openssl sha256` of the decompressed bytes (diff_id check), summed
//! and divided by the number of cores. Every time is the best of 3 after one warm-up run,
//! with the page cache warm.
//!
//! Targets: export / floor <= 1.3, umoci / export >= 2.0. A benchmark, not a test: misses
//! are reported, only a failing command fails the task.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::fixtures::{self, Layer};
use crate::util::{self, cargo, step, Tool};

/// Timed runs per measurement, after one untimed warm-up.
const RUNS: usize = 3;
/// Target: `d2l export` at most this many times the floor.
const EXPORT_OVER_FLOOR_MAX: f64 = 1.3;
/// Target: `umoci unpack` at least this many times `d2l export`.
const UMOCI_OVER_EXPORT_MIN: f64 = 2.0;

/// Builds d2l, makes sure the fixtures exist, measures and prints the table.
pub fn run() -> Result<()> {
    step("packages", || {
        util::ensure_tools(util::FIXTURE_TOOLS)?;
        util::ensure_tools(&[Tool {
            command: "openssl",
            package: "openssl",
        }])
    })?;
    step("cargo build --release -p d2l", || {
        util::run(cargo().args(["build", "--release", "-p", "d2l"]))
    })?;
    let fix = step("fixtures", fixtures::ensure)?;
    let layout = fix.join(fixtures::OCI_DIR);
    let image = format!("{}:{}", layout.display(), fixtures::REFERENCE);
    let layers = fixtures::layers(&layout, fixtures::REFERENCE)?;
    let target = util::target_dir()?;
    let d2l = target.join("release/d2l");
    let tmp = target.join("xtask-bench");
    util::remove_tree(&tmp)?;
    std::fs::create_dir_all(&tmp).with_context(|| tmp.display().to_string())?;

    let rootfs_tar = tmp.join("rootfs.tar");
    let export = measure(
        "d2l export",
        || {
            util::run_silent(
                Command::new(&d2l)
                    .arg("export")
                    .arg(format!("oci:{image}"))
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

    let bundle = tmp.join("bundle");
    let umoci = measure(
        "umoci unpack",
        || {
            let mut cmd = Command::new("umoci");
            cmd.arg("unpack");
            if !util::is_root() {
                cmd.arg("--rootless");
            }
            util::run_silent(cmd.arg("--image").arg(&image).arg(&bundle))
        },
        || util::remove_tree(&bundle),
    )?;
    util::remove_tree(&bundle)?;

    let blobs = || layers.iter().map(|l| &l.path);
    let sha_compressed = measure(
        "openssl sha256 (compressed)",
        || util::run_silent(Command::new("openssl").arg("sha256").args(blobs())),
        || Ok(()),
    )?;
    let gunzip = measure(
        "pigz -dc -p 1",
        || util::run_silent(&mut pigz(&layers)),
        || Ok(()),
    )?;
    let raw = tmp.join("layers.tar");
    util::run_quiet(pigz(&layers).stdout(File::create(&raw)?))?;
    let raw_size = std::fs::metadata(&raw)?.len();
    let sha_raw = measure(
        "openssl sha256 (uncompressed)",
        || util::run_silent(Command::new("openssl").arg("sha256").arg(&raw)),
        || Ok(()),
    )?;
    util::remove_tree(&tmp)?;

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let floor = (sha_compressed + gunzip + sha_raw) / cores as u32;
    let compressed: u64 = layers.iter().map(|l| l.size).sum();
    println!();
    println!(
        "image: {} layers, {} compressed, {} uncompressed; {cores} cores",
        layers.len(),
        util::mib(compressed),
        util::mib(raw_size)
    );
    println!(
        "{:<40} {:>9}",
        format!("best of {RUNS}, after a warm-up"),
        "time"
    );
    let row = |name: &str, d: Duration| println!("{name:<40} {:>8.3}s", d.as_secs_f64());
    match &export {
        Ok(d) => row("d2l export", *d),
        Err(_) => println!("{:<40} {:>9}", "d2l export", "FAILED"),
    }
    row("umoci unpack", umoci);
    row("floor: openssl sha256, compressed", sha_compressed);
    row("floor: pigz -dc -p 1", gunzip);
    row("floor: openssl sha256, uncompressed", sha_raw);
    row(&format!("floor: sum / {cores} cores"), floor);
    println!();
    let export = export?;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    let over_floor = ratio(export, floor);
    let umoci_over = ratio(umoci, export);
    println!(
        "export / floor  {over_floor:>6.2}   target <= {EXPORT_OVER_FLOOR_MAX:.1}   {}",
        verdict(over_floor <= EXPORT_OVER_FLOOR_MAX)
    );
    println!(
        "umoci / export  {umoci_over:>6.2}   target >= {UMOCI_OVER_EXPORT_MIN:.1}   {}",
        verdict(umoci_over >= UMOCI_OVER_EXPORT_MIN)
    );
    Ok(())
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
    mut f: impl FnMut() -> Result<()>,
    mut reset: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    print!("{name}: warm-up");
    flush();
    reset()?;
    f()?;
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        reset()?;
        let start = Instant::now();
        f()?;
        let took = start.elapsed();
        print!(", {}", util::secs(took));
        flush();
        best = best.min(took);
    }
    println!();
    Ok(best)
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
