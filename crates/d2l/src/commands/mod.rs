//! One module per command; each turns parsed arguments into calls on the library crates.

mod appliance;
mod build;
pub mod cache;
mod convert;
mod dockerfile;
mod docs;
mod export;
mod image;
mod inspect;
mod machine;
pub mod pull;
mod recipe;
mod run;

use std::io::Read;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use d2l_layer_apply::{
    apply_layers, ApplyOptions, BlobDescriptor, BlobError, BlobFile, BlobSource, Layers,
    XattrPolicy,
};
use d2l_registry::{Image, RegistryOptions};
use d2l_rootfs::{ContentStore, Rootfs, SpillFile, SpillReader, Tree};

use crate::cli::{ApplyArgs, Cli, Command, RegistryArgs, SourceArgs};
use crate::progress::Progress;

/// What d2l reads from its environment, read once here and passed down.
#[derive(Debug, Clone, Copy)]
pub struct Environment {
    /// `$SOURCE_DATE_EPOCH` (reproducible-builds.org), when it is set and valid: the mtime
    /// of directories created implicitly, and the time stamped into disk images.
    pub source_date_epoch: Option<i64>,
    /// `$D2L_DECODER_THREADS`, when it is set to a positive number: the most threads
    /// decoding one gzip layer (one per core by default); the benchmark compares with 1.
    pub decoder_threads: Option<NonZeroUsize>,
}

impl Environment {
    /// The process's environment.
    pub fn read() -> Environment {
        Environment {
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok()),
            decoder_threads: std::env::var("D2L_DECODER_THREADS")
                .ok()
                .and_then(|s| s.trim().parse::<NonZeroUsize>().ok()),
        }
    }
}

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    let env = Environment::read();
    match cli.command {
        Command::Build(args) => build::run(*args, (cli.quiet, cli.verbose > 0), &env),
        Command::Export(args) => export::run(args, cli.quiet, &env),
        Command::Inspect(args) => inspect::run(args, cli.quiet),
        Command::Run(args) => run::run(args),
        Command::Pull(args) => pull::run(args, cli.quiet),
        Command::Cache(command) => cache::run(command),
        Command::Convert(args) => convert::run(args, cli.quiet),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
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

/// The flattened image: a rootfs (tree and the store holding its file data) that can still
/// be changed.
struct Flattened<S> {
    rootfs: Rootfs<S>,
    layers: usize,
}

impl Flattened<SpillFile> {
    /// Ends changes: the tree and a reader of its file data.
    fn finish_spill(self) -> Result<(Tree, SpillReader)> {
        let (tree, spill) = self.rootfs.into_parts();
        let data = spill.into_reader().context("finishing the spill file")?;
        Ok((tree, data))
    }
}

/// A spill file for file data in `scratch_dir` (next to the output: the user chose that
/// filesystem for a file of about this size), or in $TMPDIR.
fn spill_file(scratch_dir: Option<&Path>) -> Result<SpillFile> {
    match scratch_dir {
        Some(dir) => SpillFile::new_in(dir),
        None => SpillFile::new(),
    }
    .context("creating a spill file for file data")
}

/// Applies the image's layers, file data going into `store`.
fn flatten<S: ContentStore>(
    image: &Image,
    source: &SourceArgs,
    apply: &ApplyArgs,
    env: &Environment,
    store: S,
    progress: &Progress,
) -> Result<Flattened<S>> {
    let started = Instant::now();
    let step = progress.step(format!("applying {} layers", image.layers.len()));
    let layers = Layers {
        blobs: image
            .layers
            .iter()
            .map(|l| BlobDescriptor {
                digest: l.digest.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
            })
            .collect(),
        diff_ids: image.diff_ids.clone(),
        source: &ImageBlobs(image),
    };
    let applied = apply_layers(&layers, store, apply_options(apply, env))
        .with_context(|| format!("{}", source.source))?;
    step.done();
    tracing::info!(
        "applied {} layers in {:.2}s",
        applied.layers.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(Flattened {
        rootfs: applied.rootfs,
        layers: applied.layers.len(),
    })
}

/// An image's layer blobs as layer application opens them: streams that it verifies, and
/// the host files they lie in, for the parallel gzip decoder.
struct ImageBlobs<'a>(&'a Image);

impl BlobSource for ImageBlobs<'_> {
    fn open_blob(&self, index: usize) -> std::result::Result<Box<dyn Read + Send>, BlobError> {
        Ok(self.0.open_unverified_layer(index)?)
    }

    fn blob_file(&self, index: usize) -> std::result::Result<Option<BlobFile>, BlobError> {
        let range = self.0.layer_range(index)?;
        Ok(Some(BlobFile {
            file: range.file,
            offset: range.offset,
            len: range.len,
        }))
    }
}

fn apply_options(args: &ApplyArgs, env: &Environment) -> ApplyOptions {
    let dated = ApplyOptions::dated(env.source_date_epoch);
    ApplyOptions {
        xattrs: XattrPolicy {
            keep_selinux: args.keep_selinux,
        },
        overlay_whiteouts: args.overlay_whiteouts,
        decoder_threads: env.decoder_threads.unwrap_or(dated.decoder_threads),
        ..dated
    }
}
