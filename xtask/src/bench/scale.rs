//! `bench scale`: `d2l build --table none` of synthetic images of [`SIZES`] small files in
//! [`synthetic::LAYERS`] gzip layers, generated once and cached (see [`crate::synthetic`]).
//!
//! Targets: time grows linearly with the file count, checked as each tenfold step costing
//! at most [`STEP_RATIO_MAX`] times the previous one; the largest image in at most
//! [`LARGEST_TIME_MAX`]; peak RSS at 1M files under 1 GB. Peak RSS is also shown per inode of
//! the tree (files and directories).
//!
//! The page-cache floor, timed alternately with the largest build: writing as many fresh 4 KiB
//! pages as the image has files, in 1 MiB writes, to a new file. No ext4 writer can write
//! fewer (each file's data takes a block of its own), so `build / floor` says how much of the
//! time is d2l's.
//!
//! What grows faster than the file count is the kernel's part, not d2l's: every small file
//! takes a 4 KiB block, so 1M files write 4.1 GB to the output's page cache (100k: 0.4 GB).
//! On a VM that returns free memory to its host (virtio-balloon free page reporting), each
//! page cache page first touched costs a host fault: a plain `pwrite` of 500 bytes every
//! 4 KiB took 0.46 s for 100k writes and 30 s for 1M on the 2-core bench machine, while
//! d2l's own CPU time went from 0.37 s to 3.2 s.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{
    build::d2l_build, check, mb, measure_alternating, measure_usage, ratio, remove_and_sync,
    remove_file, remove_if_there, Contender, Ctx, RUNS,
};
use crate::{rss, synthetic, util};

/// File counts, each ten times the one before.
const SIZES: &[usize] = &[10_000, 100_000, 1_000_000];
/// Target: time(10 N) / time(N) at most this (10 is linear).
const STEP_RATIO_MAX: f64 = 12.0;
/// Target: the largest image's build time.
const LARGEST_TIME_MAX: Duration = Duration::from_secs(3);
/// Rounds of the largest build alternated with the page-cache floor.
const FLOOR_ROUNDS: usize = 3;
/// A page of the page cache, and the block each small file takes.
const PAGE: usize = 4096;
/// Target: peak RSS of the largest image, in bytes.
const RSS_MAX: u64 = 1_000_000_000;

/// One size's result.
struct Point {
    files: usize,
    time: Duration,
    peak_rss: u64,
    fs_size: u64,
}

/// Generates (or reuses) the images, measures and prints the scaling table.
pub(super) fn run(ctx: &Ctx) -> Result<()> {
    let mut layouts = Vec::new();
    for &files in SIZES {
        let layout = util::step(&format!("synthetic image, {files} files"), || {
            synthetic::ensure(files)
        })?;
        layouts.push((files, layout));
    }

    let out = ctx.tmp.join("scale.ext4");
    let mut points = Vec::new();
    for (files, layout) in &layouts {
        let source = format!("oci:{}:{}", layout.display(), synthetic::REFERENCE);
        let usage = measure_usage(
            &format!("d2l build --table none, {files} files"),
            RUNS,
            || rss::run(&d2l_build(&ctx.d2l, &source, &out)),
            || remove_and_sync(&out),
        )?;
        let fs_size = std::fs::metadata(&out)?.len();
        remove_file(&out)?;
        points.push(Point {
            files: *files,
            time: usage.time,
            peak_rss: usage.peak_rss,
            fs_size,
        });
    }

    let floor = match (points.last(), layouts.last()) {
        (Some(largest), Some((files, layout))) => {
            let source = format!("oci:{}:{}", layout.display(), synthetic::REFERENCE);
            let pages = ctx.tmp.join("pages");
            let mut contenders = [
                Contender {
                    name: "d2l build --table none, largest",
                    run: Box::new(|| util::run_silent(&mut d2l_build(&ctx.d2l, &source, &out))),
                    reset: Box::new(|| remove_if_there(&out)),
                },
                Contender {
                    name: "page-cache floor",
                    run: Box::new(|| write_pages(&pages, *files)),
                    reset: Box::new(|| remove_if_there(&pages)),
                },
            ];
            let times = measure_alternating(&mut contenders, FLOOR_ROUNDS)?;
            drop(contenders);
            remove_if_there(&out)?;
            remove_if_there(&pages)?;
            Some((largest.files, times[0], times[1]))
        }
        _ => None,
    };

    println!();
    println!(
        "best of {RUNS} after a warm-up; {} gzip layers, 100 files a directory",
        synthetic::LAYERS
    );
    println!(
        "{:>10} {:>10} {:>12} {:>12} {:>14} {:>12}",
        "files", "time", "per file", "peak RSS", "RSS per inode", "ext4 size"
    );
    for p in &points {
        println!(
            "{:>10} {:>9.3}s {:>9.2} µs {:>12} {:>12} B {:>12}",
            p.files,
            p.time.as_secs_f64(),
            p.time.as_secs_f64() * 1e6 / p.files as f64,
            mb(p.peak_rss),
            p.peak_rss / synthetic::inodes(p.files) as u64,
            util::mib(p.fs_size)
        );
    }
    println!();
    for pair in points.windows(2) {
        let [small, big] = pair else { unreachable!() };
        let step = ratio(big.time, small.time);
        let files = big.files as f64 / small.files as f64;
        check(
            &format!("time({}) / time({})", big.files, small.files),
            &format!("{step:.2}"),
            &format!("files x{files:.0}, target <= {STEP_RATIO_MAX:.0}"),
            step <= STEP_RATIO_MAX,
        );
    }
    if let Some(largest) = points.last() {
        check(
            &format!("time({})", largest.files),
            &format!("{:.3}s", largest.time.as_secs_f64()),
            &format!("target <= {}s", LARGEST_TIME_MAX.as_secs()),
            largest.time <= LARGEST_TIME_MAX,
        );
        check(
            &format!("peak RSS({})", largest.files),
            &mb(largest.peak_rss),
            &format!("target < {}", mb(RSS_MAX)),
            largest.peak_rss < RSS_MAX,
        );
    }
    if let Some((files, build, floor)) = floor {
        println!(
            "{:<30} {:>10}   (writing {files} fresh pages; alternated with the build, which took {:.3}s)",
            "page-cache floor",
            format!("{:.3}s", floor.as_secs_f64()),
            build.as_secs_f64()
        );
        println!(
            "{:<30} {:>10.2}   (for reference: the rest is d2l's)",
            format!("build({files}) / floor"),
            ratio(build, floor)
        );
    }
    Ok(())
}

/// Writes `pages` fresh 4 KiB pages of data to a new file at `path`, in 1 MiB writes.
fn write_pages(path: &Path, pages: usize) -> Result<()> {
    let buffer = vec![0x5au8; 256 * PAGE];
    let mut file = File::create(path).with_context(|| path.display().to_string())?;
    let mut left = pages * PAGE;
    while left > 0 {
        let n = left.min(buffer.len());
        file.write_all(&buffer[..n])
            .with_context(|| path.display().to_string())?;
        left -= n;
    }
    Ok(())
}
