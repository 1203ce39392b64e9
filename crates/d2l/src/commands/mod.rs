//! One module per command; each turns parsed arguments into calls on the library crates.

mod build;
mod convert;
mod export;
mod image;
mod inspect;
mod run;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use d2l_layer_apply::{
    apply_image, ApplyOptions, Rootfs, SpillFile, SpillReader, Tree, XattrPolicy,
};
use d2l_registry::Image;

use crate::cli::{ApplyArgs, Cli, Command, SourceArgs};
use crate::progress::Progress;

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => build::run(*args, cli.quiet),
        Command::Export(args) => export::run(args, cli.quiet),
        Command::Inspect(args) => inspect::run(args),
        Command::Run(args) => run::run(args),
        Command::Convert(args) => convert::run(args, cli.quiet),
    }
}

/// Opens the image a command names.
fn open_image(args: &SourceArgs) -> Result<Image> {
    d2l_registry::open_image(&args.source, &args.platform)
        .with_context(|| format!("{}", args.source))
}

/// The flattened image: a rootfs (tree and the spill file holding its file data) that can
/// still be changed.
struct Flattened {
    rootfs: Rootfs<SpillFile>,
    layers: usize,
}

impl Flattened {
    /// Ends changes: the tree and a reader of its file data.
    fn finish(self) -> Result<(Tree, SpillReader)> {
        let (tree, spill) = self.rootfs.finish().context("finishing the rootfs")?;
        let data = spill.into_reader().context("finishing the spill file")?;
        Ok((tree, data))
    }
}

/// Applies the image's layers. File data waits in a spill file in `scratch_dir` (next to the
/// output: the user chose that filesystem for a file of about this size), or in $TMPDIR.
fn flatten(
    image: &Image,
    source: &SourceArgs,
    apply: &ApplyArgs,
    scratch_dir: Option<&Path>,
    progress: &Progress,
) -> Result<Flattened> {
    let started = Instant::now();
    let spill = match scratch_dir {
        Some(dir) => SpillFile::new_in(dir),
        None => SpillFile::new(),
    }
    .context("creating a spill file for file data")?;
    let step = progress.step(format!("applying {} layers", image.layers.len()));
    let applied = apply_image(image, spill, apply_options(apply))
        .with_context(|| format!("{}", source.source))?;
    step.done();
    tracing::info!(
        "applied {} layers in {:.2}s",
        applied.layers.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(Flattened {
        rootfs: Rootfs::from_parts(applied.tree, applied.store, apply_options(apply)),
        layers: applied.layers.len(),
    })
}

fn apply_options(args: &ApplyArgs) -> ApplyOptions {
    ApplyOptions {
        xattrs: XattrPolicy {
            keep_selinux: args.keep_selinux,
        },
        overlay_whiteouts: args.overlay_whiteouts,
        ..ApplyOptions::from_env()
    }
}
