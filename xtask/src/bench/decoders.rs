//! `bench build`, decoder part: `d2l build --table none` of the fixture against its layers'
//! decompression alone, the fastest single-threaded decoder with no hashing, no tar and
//! output to /dev/null: `igzip -dc` (ISA-L's inflate) for the gzip layers as published, and
//! `zstd -dc` for the same layers recompressed with zstd (a layout made here, with the same
//! config and diff_ids). d2l's gzip decoder runs on every core (its default) and limited to
//! one thread (`D2L_DECODER_THREADS=1`). The five commands alternate, round after round.
//!
//! Targets: gzip builds at most [`BUILD_OVER_DECODER_MAX`] times `igzip -dc`, that is,
//! decompression is the critical path and hashing, parsing and writing hide behind it. A zstd
//! build is shown against `zstd -dc` for reference: zstd decodes about twice as fast as
//! inflate, so hashing both digests (the floor above) becomes the critical path; its target
//! is to be no slower than the gzip build, that is, the pipeline keeps zstd's speed.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use super::{
    build::d2l_build, check, measure_alternating, pigz, ratio, remove_if_there, row, Contender, Ctx,
};
use crate::fixtures::{self, Layer};
use crate::oci;
use crate::util::{self, Tool};

/// Target: a gzip `d2l build` at most this many times `igzip -dc` of its layers.
const BUILD_OVER_DECODER_MAX: f64 = 1.1;
/// Rounds of the alternation (the best of each command is kept).
const ROUNDS: usize = 5;
/// zstd level of the recompressed layers (zstd's and containerd's default).
const ZSTD_LEVEL: &str = "-3";
/// What this part runs besides d2l (Debian's `isal` and `zstd` packages).
pub(super) const TOOLS: &[Tool] = &[
    Tool {
        command: "igzip",
        package: "isal",
    },
    Tool {
        command: "zstd",
        package: "zstd",
    },
];

/// Measures and prints the decoder table for the fixture `image` (`DIR:REF`, whose
/// `oci:` source is `source`) and its `layers`.
pub(super) fn run(ctx: &Ctx, source: &str, image: &str, layers: &[Layer]) -> Result<()> {
    let zstd_layers = util::step("recompressing the layers with zstd (untimed)", || {
        zstd_layout(ctx, image, layers)
    })?;
    let zstd_source = format!(
        "oci:{}:{}",
        ctx.tmp.join("zstd-oci").display(),
        fixtures::REFERENCE
    );
    let out = ctx.tmp.join("decoders.ext4");
    let build = |source: &str, one_thread: bool| -> Box<dyn FnMut() -> Result<()> + '_> {
        let source = source.to_string();
        let out = out.clone();
        Box::new(move || {
            let mut cmd = d2l_build(&ctx.d2l, &source, &out);
            if one_thread {
                cmd.env("D2L_DECODER_THREADS", "1");
            }
            util::run_silent(&mut cmd)
        })
    };
    let remove_out =
        || -> Box<dyn FnMut() -> Result<()> + '_> { Box::new(|| remove_if_there(&out)) };
    let gzip_paths: Vec<&Path> = layers.iter().map(|l| l.path.as_path()).collect();
    let mut contenders = [
        Contender {
            name: "igzip -dc (the layers alone)",
            run: Box::new(|| util::run_silent(Command::new("igzip").arg("-dc").args(&gzip_paths))),
            reset: Box::new(|| Ok(())),
        },
        Contender {
            name: "d2l build --table none",
            run: build(source, false),
            reset: remove_out(),
        },
        Contender {
            name: "d2l build, gzip on 1 thread",
            run: build(source, true),
            reset: remove_out(),
        },
        Contender {
            name: "zstd -dc (the same layers in zstd)",
            run: Box::new(|| {
                util::run_silent(Command::new("zstd").args(["-dcq"]).args(&zstd_layers))
            }),
            reset: Box::new(|| Ok(())),
        },
        Contender {
            name: "d2l build, zstd layers",
            run: build(&zstd_source, false),
            reset: remove_out(),
        },
    ];
    let times = measure_alternating(&mut contenders, ROUNDS)?;
    drop(contenders);
    remove_if_there(&out)?;
    let [igzip, build, one_thread, zstd, zstd_build] = times[..] else {
        unreachable!("five contenders")
    };

    println!();
    row("igzip -dc (the layers alone)", igzip);
    row("d2l build --table none", build);
    row("d2l build, gzip on 1 thread", one_thread);
    row("zstd -dc (the same layers in zstd)", zstd);
    row("d2l build, zstd layers", zstd_build);
    println!();
    for (name, time) in [
        ("build / igzip -dc", build),
        ("build 1 thread / igzip -dc", one_thread),
    ] {
        let over = ratio(time, igzip);
        check(
            name,
            &format!("{over:.2}"),
            &format!("target <= {BUILD_OVER_DECODER_MAX:.1}"),
            over <= BUILD_OVER_DECODER_MAX,
        );
    }
    let zstd_over_gzip = ratio(zstd_build, build);
    check(
        "zstd build / gzip build",
        &format!("{zstd_over_gzip:.2}"),
        "target <= 1 (zstd kept)",
        zstd_build <= build,
    );
    println!(
        "{:<30} {:>10.2}   (for reference: hashing is its critical path)",
        "zstd build / zstd -dc",
        ratio(zstd_build, zstd)
    );
    Ok(())
}

/// Writes `<tmp>/zstd-oci`: the fixture `image` with each gzip layer decompressed and
/// compressed again with zstd (same tar bytes, so the same config and diff_ids); returns
/// the zstd blobs' paths, bottom first.
fn zstd_layout(ctx: &Ctx, image: &str, layers: &[Layer]) -> Result<Vec<PathBuf>> {
    let (dir, reference) = image
        .rsplit_once(':')
        .context("fixture image without reference")?;
    let config = fixtures::config_of(Path::new(dir), reference)?;
    let layout = ctx.tmp.join("zstd-oci");
    let blobs = oci::blobs_dir(&layout);
    fs::create_dir_all(&blobs).with_context(|| blobs.display().to_string())?;
    let mut stored = Vec::new();
    let mut paths = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let temp = blobs.join(format!("layer-{index}.partial"));
        let mut pigz = pigz(std::slice::from_ref(layer))
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start pigz")?;
        let stdout = pigz.stdout.take().context("pigz stdout")?;
        util::run_quiet(
            Command::new("zstd")
                .args([ZSTD_LEVEL, "-T0", "-q", "-c"])
                .stdin(stdout)
                .stdout(File::create(&temp).with_context(|| temp.display().to_string())?),
        )?;
        anyhow::ensure!(
            pigz.wait()?.success(),
            "pigz -dc {} failed",
            layer.path.display()
        );
        let (digest, size) = util::sha256_file(&temp)?;
        let path = blobs.join(digest.hex());
        fs::rename(&temp, &path)?;
        stored.push(oci::Layer {
            digest: digest.to_string(),
            size,
            media_type: oci::ZSTD_LAYER,
        });
        paths.push(path);
    }
    oci::write_image(&layout, &config, &stored, None, fixtures::REFERENCE)?;
    Ok(paths)
}
