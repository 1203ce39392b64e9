//! d2l's task runner: everything beyond `cargo build` and `cargo test`.
//!
//! Run as `cargo xtask NAME` (an alias in `.cargo/config.toml`):
//!
//! - `fixtures`: build, once, a real Debian bookworm image in three forms and cache it
//!   (see [`fixtures`] for the layout); `target/fixtures` links to it.
//! - `ci`: the whole gate, as `.ci/run` runs it: packages, fmt, clippy, fixtures, tests.
//! - `bench`: `d2l export` against `umoci unpack` and the hash/decompression floor.
//! - `demo`: d2l on the built-in demo image.

mod bench;
mod ci;
mod demo;
mod fixtures;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask TASK

tasks:
  fixtures  build (once) and cache the Debian test image; link target/fixtures to it
  ci        packages, fmt, clippy, fixtures, tests: what .ci/run runs
  bench     time d2l export against umoci unpack and the sha256+gunzip floor
  demo      run d2l inspect and d2l export on the built-in demo image";

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [task] = args.as_slice() else {
        eprintln!("{USAGE}");
        return Ok(ExitCode::from(2));
    };
    match task.as_str() {
        "fixtures" => fixtures::ensure().map(|_| ())?,
        "ci" => ci::run()?,
        "bench" => bench::run()?,
        "demo" => demo::run()?,
        "help" | "-h" | "--help" => println!("{USAGE}"),
        other => {
            eprintln!("unknown task `{other}`\n\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}
