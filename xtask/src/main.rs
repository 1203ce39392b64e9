//! d2l's task runner: everything beyond `cargo build` and `cargo test`.
//!
//! Run as `cargo xtask NAME` (an alias in `.cargo/config.toml`):
//!
//! - `fixtures`: build, once, a real Debian bookworm image in three forms and cache it
//!   (see [`fixtures`] for the layout); `target/fixtures` links to it. Also a kernel-less
//!   minbase image, the base of the Dockerfile tests ([`minbase`]), and a machine image
//!   with sshd, sudo and cloud-init for the first-boot tests ([`machine_fixture`]).
//! - `ci`: the whole gate, as `.ci/run` runs it: packages, fmt, clippy, fixtures, tests.
//! - `bench`: `d2l export` against `umoci unpack` and the hash/decompression floor;
//!   `d2l build` against `mkfs.ext4 -d` and the floor; `d2l build` of synthetic images of
//!   10k to 1M files; a bootable `d2l build` disk against the docker-to-linux way by hand,
//!   both booted in QEMU; `d2l pull` against `skopeo copy` from a local registry (see
//!   [`bench`]).
//! - `demo`: d2l on the built-in demo image.
//! - `golden [--record]`: sha256 of d2l's outputs for a fixed set of builds of the fixture,
//!   recorded in `xtask/golden/digests.txt` or checked against it (see [`golden`]).
//! - `fuzz [--seconds N] [TARGET...]`: the libFuzzer targets of `fuzz/`, N seconds each, on
//!   a stable toolchain (see [`fuzz`]).

mod bench;
mod ci;
mod demo;
mod fixtures;
mod fixtures_arm64;
mod fuzz;
mod golden;
mod machine_fixture;
mod minbase;
mod oci;
mod one_layer_fixture;
mod rss;
mod synthetic;
mod test_binaries;
mod util;

use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask TASK

tasks:
  fixtures  build (once) and cache the Debian test images; link target/fixtures (and
            target/fixtures-minbase, the kernel-less base of the Dockerfile tests,
            target/fixtures-minbase-trixie and -bullseye, the same of other releases, and
            target/fixtures-machine, a machine with sshd, sudo and cloud-init) to them
  ci        packages, fmt, clippy, fixtures, tests: what .ci/run runs
  bench [--only export|build|scale|disk|pull|formats|bundles|stock[,...]]
            time d2l export against umoci unpack and the sha256+gunzip floor (export),
            d2l build against mkfs.ext4 -d and the floor (build), d2l build of synthetic
            images of 10k, 100k and 1M files (scale), a bootable disk against the
            docker-to-linux way (disk), d2l pull against skopeo copy from a local
            registry (pull), d2l build -o X.fmt and d2l convert against qemu-img convert
            for each disk format, with output sizes (formats), the first build of a
            kernel-less stock image (kernel recipe through buildah) against the cached
            second (stock); default: all
  demo      build d2l (release), d2l inspect the Debian fixture, d2l build it into
            ./demo.img (a bootable MBR disk, root password demo) and show its partition
            table; then `d2l run demo.img` boots it
  man       build d2l and write its manual pages (d2l.1, d2l-build.1, ...) from the clap
            definitions into target/man; `man -l target/man/d2l-build.1` reads one
  golden [--record]
            build the fixture with a fixed set of d2l export/build options and compare the
            outputs' sha256 with xtask/golden/digests.txt (--record: write it, each output
            built twice to check it is deterministic); a guard for refactors, not in ci
  fuzz [--seconds N] [TARGET...]
            run the fuzz targets (tar_layer, image_documents, references, disk_readers,
            ext4_tree; default: all) for N seconds each (default 60) from a scratch copy of
            fuzz/corpus; fails on a crash, naming the input and how to reproduce it";

/// `cargo xtask man`: the pages `d2l man` renders from its own clap definitions.
fn man() -> anyhow::Result<()> {
    util::step("cargo build -p d2l", || {
        util::run(util::cargo().args(["build", "-p", "d2l"]))
    })?;
    let target = util::target_dir()?;
    let dir = target.join("man");
    util::run(
        std::process::Command::new(target.join("debug/d2l"))
            .args(["man", "--dir"])
            .arg(&dir),
    )?;
    println!("manual pages in {}", dir.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // Internal: the measuring process `rss::run` starts; its arguments need not be UTF-8.
    if args.first().is_some_and(|a| a == rss::TASK) {
        return rss::child_main(&args[1..]);
    }
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
        .map_err(|a| anyhow::anyhow!("argument {a:?} is not UTF-8"))?;
    let Some((task, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return Ok(ExitCode::from(2));
    };
    if task == "bench" {
        return match bench::Parts::parse(rest) {
            Ok(parts) => bench::run(parts).map(|()| ExitCode::SUCCESS),
            Err(msg) => {
                eprintln!("{msg}\n\n{USAGE}");
                Ok(ExitCode::from(2))
            }
        };
    }
    if task == "golden" {
        return match rest {
            [] => golden::run(false).map(|()| ExitCode::SUCCESS),
            [flag] if flag == "--record" => golden::run(true).map(|()| ExitCode::SUCCESS),
            _ => {
                eprintln!("`golden` takes only --record\n\n{USAGE}");
                Ok(ExitCode::from(2))
            }
        };
    }
    if task == "fuzz" {
        return match fuzz::Args::parse(rest) {
            Ok(args) => fuzz::run(&args).map(|()| ExitCode::SUCCESS),
            Err(msg) => {
                eprintln!("{msg}\n\n{USAGE}");
                Ok(ExitCode::from(2))
            }
        };
    }
    if !rest.is_empty() {
        eprintln!("`{task}` takes no arguments\n\n{USAGE}");
        return Ok(ExitCode::from(2));
    }
    match task.as_str() {
        "fixtures" => {
            fixtures::ensure()?;
            minbase::ensure()?;
            minbase::ensure_stock()?;
            machine_fixture::ensure()?;
        }
        "ci" => ci::run()?,
        "demo" => demo::run()?,
        "man" => man()?,
        "help" | "-h" | "--help" => println!("{USAGE}"),
        other => {
            eprintln!("unknown task `{other}`\n\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}
