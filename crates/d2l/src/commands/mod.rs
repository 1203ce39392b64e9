//! One module per command; each turns parsed arguments into calls on the library crates.

mod build;
pub mod cache;
mod export;
mod inspect;
pub mod pull;
mod run;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use d2l_layer_apply::{
    apply_image, ApplyOptions, Rootfs, SpillFile, SpillReader, Tree, XattrPolicy,
};
use d2l_registry::{Image, RegistryOptions};

use crate::cli::{ApplyArgs, Cli, Command, RegistryArgs, SourceArgs};
use crate::progress::Progress;

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => build::run(args, cli.quiet),
        Command::Export(args) => export::run(args, cli.quiet),
        Command::Inspect(args) => inspect::run(args, cli.quiet),
        Command::Run(args) => run::run(args),
        Command::Pull(args) => pull::run(args, cli.quiet),
        Command::Cache(command) => cache::run(command),
    }
}

/// Opens the image a command names (a registry image shows download bars on `progress`).
fn open_image(args: &SourceArgs, progress: &Progress) -> Result<Image> {
    d2l_registry::open_image_with(
        &args.source,
        &args.platform,
        &registry_options(&args.registry, progress),
    )
    .with_context(|| format!("{}", args.source))
}

/// The registry options the command line gives.
fn registry_options(args: &RegistryArgs, progress: &Progress) -> RegistryOptions {
    RegistryOptions {
        credentials: args.creds.clone(),
        cert_dirs: args.cert_dir.clone(),
        insecure_registries: args.insecure_registry.clone(),
        cache_dir: args.cache_dir.clone(),
        concurrent_downloads: args.max_concurrent_downloads.max(1),
        progress: progress.downloads(),
        ..RegistryOptions::from_env()
    }
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
