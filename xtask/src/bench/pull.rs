//! `bench pull`: `d2l pull` of the fixture from a local registry against `skopeo copy
//! docker://... oci:DIR`, in the same run.
//!
//! Debian's `docker-registry` serves the fixture (pushed with skopeo) over plain HTTP on
//! 127.0.0.1; both tools download every blob into an empty directory each run (d2l into an
//! empty `--cache-dir`), verifying digests. Target: d2l no slower than skopeo.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{check, heading, measure, ratio, row, Ctx, Fixture};
use crate::util;

/// Target: skopeo at least as slow as d2l.
const SKOPEO_OVER_D2L_MIN: f64 = 1.0;
/// The repository the fixture is pushed to.
const REPO: &str = "d2l/debian:bookworm";

/// A registry process, killed on drop.
struct Registry {
    child: Child,
    host: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(dir: &Path) -> Result<Registry> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage)?;
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting docker-registry")?;
    let registry = Registry {
        child,
        host: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("docker-registry did not listen on {}", registry.host);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(registry)
}

/// Measures and prints the pull table.
pub(super) fn run(ctx: &Ctx, fixture: &Fixture) -> Result<()> {
    let registry = start_registry(&ctx.tmp.join("registry"))?;
    let reference = format!("{}/{REPO}", registry.host);
    util::run_silent(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}", fixture.image))
            .arg(format!("docker://{reference}")),
    )?;

    let cache = ctx.tmp.join("pull-cache");
    let d2l = measure(
        "d2l pull",
        || {
            util::run_silent(
                Command::new(&ctx.d2l)
                    .args(["pull", "--quiet", &reference, "--cache-dir"])
                    .arg(&cache),
            )
        },
        || util::remove_tree(&cache),
    )?;
    util::remove_tree(&cache)?;

    let layout = ctx.tmp.join("skopeo-oci");
    let skopeo = measure(
        "skopeo copy docker:// oci:",
        || {
            util::run_silent(
                Command::new("skopeo")
                    .args(["copy", "--quiet", "--src-tls-verify=false"])
                    .arg(format!("docker://{reference}"))
                    .arg(format!("oci:{}", layout.display())),
            )
        },
        || util::remove_tree(&layout),
    )?;
    util::remove_tree(&layout)?;

    let bytes: u64 = fixture.layers.iter().map(|l| l.size).sum();
    println!();
    println!(
        "pull of {} MB in {} layers from docker-registry on 127.0.0.1 (HTTP)",
        bytes / 1_000_000,
        fixture.layers.len()
    );
    heading();
    row("d2l pull", d2l);
    row("skopeo copy docker:// oci:", skopeo);
    let r = ratio(skopeo, d2l);
    check(
        "skopeo / d2l pull",
        &format!("{r:.2}"),
        &format!(">= {SKOPEO_OVER_D2L_MIN}"),
        r >= SKOPEO_OVER_D2L_MIN,
    );
    Ok(())
}
