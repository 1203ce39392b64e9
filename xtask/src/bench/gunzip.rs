//! `bench build`, gzip part: `d2l build --table none` of the fixture against `igzip -dc` of
//! its layers alone (ISA-L's inflate, the fastest single-threaded gzip decoder: no hashing,
//! no tar, output to /dev/null), with d2l's gzip decoder on every core (its default) and
//! limited to one thread (`D2L_DECODER_THREADS=1`).
//!
//! Target: each at most [`BUILD_OVER_IGZIP_MAX`] times `igzip -dc`, that is, decompression
//! is the critical path and hashing, parsing and writing hide behind it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use super::{build::d2l_build, check, measure, ratio, remove_and_sync, remove_file, row, Ctx};
use crate::fixtures::Layer;
use crate::util::{self, Tool};

/// Target: `d2l build` at most this many times `igzip -dc` of its layers.
const BUILD_OVER_IGZIP_MAX: f64 = 1.1;
/// What this part runs besides d2l (Debian's `isal` package).
pub(super) const TOOLS: &[Tool] = &[Tool {
    command: "igzip",
    package: "isal",
}];

/// Measures and prints the gzip table; `build` is `d2l build --table none` measured before
/// in the same run, with the decoder's default threads.
pub(super) fn run(ctx: &Ctx, source: &str, layers: &[Layer], build: Duration) -> Result<()> {
    let igzip = measure(
        "igzip -dc (the layers alone)",
        || util::run_silent(&mut igzip_all(layers)),
        || Ok(()),
    )?;
    let fs = ctx.tmp.join("fs-one-thread.ext4");
    let one_thread = measure(
        "d2l build --table none, gzip on 1 thread",
        || util::run_silent(d2l_build(&ctx.d2l, source, &fs).env("D2L_DECODER_THREADS", "1")),
        || remove_and_sync(&fs),
    )?;
    remove_file(&fs)?;

    println!();
    row("igzip -dc (the layers alone)", igzip);
    row("d2l build --table none", build);
    row("d2l build, gzip on 1 thread", one_thread);
    println!();
    for (name, time) in [
        ("build / igzip -dc", build),
        ("build 1 thread / igzip -dc", one_thread),
    ] {
        let over = ratio(time, igzip);
        check(
            name,
            &format!("{over:.2}"),
            &format!("target <= {BUILD_OVER_IGZIP_MAX:.1}"),
            over <= BUILD_OVER_IGZIP_MAX,
        );
    }
    Ok(())
}

/// `igzip -dc` of the gzip layers, bottom first, to standard output.
fn igzip_all(layers: &[Layer]) -> Command {
    let mut cmd = Command::new("igzip");
    cmd.arg("-dc").args(
        layers
            .iter()
            .filter(|l| l.media_type.ends_with("gzip"))
            .map(|l| Path::new(&l.path)),
    );
    cmd
}
