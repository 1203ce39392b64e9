//! `bench stock`: `d2l build` of a stock image without a kernel (the kernel-less minbase
//! fixture, Debian bookworm): the first build, which runs the kernel recipe through buildah
//! (apt-get from Debian's mirror, so the network's speed is in it), against the second, which
//! takes the result from d2l's cache. buildah runs with vfs storage in the bench's directory
//! and chroot isolation, as in the tests. One run each: the first is minutes long, and a
//! second "first" build would need its cache emptied, which is just another first build.
//! Target: the cached build at least 10x faster.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{check, ratio, remove_file, Ctx};
use crate::util;

/// Target: the first build at least this many times the cached one.
const FIRST_OVER_CACHED_MIN: f64 = 10.0;

/// Measures and prints the stock-image table.
pub(super) fn run(ctx: &Ctx) -> Result<()> {
    let minbase = crate::minbase::ensure()?;
    let image = format!(
        "oci:{}:{}",
        minbase.join(crate::minbase::MINBASE.oci_dir).display(),
        crate::minbase::MINBASE.suite
    );
    let dir = ctx.tmp.join("stock");
    util::remove_tree(&dir)?;
    std::fs::create_dir_all(dir.join("storage")).with_context(|| dir.display().to_string())?;
    let storage_conf = dir.join("storage.conf");
    std::fs::write(
        &storage_conf,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/storage/graph\"\n\
             runroot = \"{0}/storage/run\"\n",
            dir.display()
        ),
    )?;
    let output = dir.join("linux.img");
    let build = || -> Result<Duration> {
        remove_file(&output)?;
        let started = Instant::now();
        util::run_silent(
            Command::new(&ctx.d2l)
                .args(["build", "--quiet", &image, "-o"])
                .arg(&output)
                .arg("--cache-dir")
                .arg(dir.join("cache"))
                .env("CONTAINERS_STORAGE_CONF", &storage_conf)
                .env("BUILDAH_ISOLATION", "chroot"),
        )?;
        Ok(started.elapsed())
    };
    let first = build()?;
    let cached = build()?;
    println!("{:<44} {:>9}", "one run each", "time");
    println!(
        "{:<44} {:>8.3}s",
        "d2l build, kernel recipe through buildah",
        first.as_secs_f64()
    );
    println!(
        "{:<44} {:>8.3}s",
        "d2l build again, from the cache",
        cached.as_secs_f64()
    );
    let speedup = ratio(first, cached);
    check(
        "first / cached",
        &format!("{speedup:.1}x"),
        &format!(">= {FIRST_OVER_CACHED_MIN}x"),
        speedup >= FIRST_OVER_CACHED_MIN,
    );
    util::remove_tree(&dir)
}
