//! `d2l cache ls` and `d2l cache prune`: what registry pulls left in the cache.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use d2l_registry::remote::{default_cache_dir, BlobCache};
use serde::Serialize;

use crate::progress::human_bytes as mb;

/// `d2l cache`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the images pulled and the blobs cached.
    Ls(CacheLsArgs),
    /// Remove unfinished downloads and blobs no pulled image needs (--all: everything);
    /// refused while another d2l pulls into the cache.
    Prune(CachePruneArgs),
}

/// Which cache.
#[derive(Debug, Args)]
pub struct CacheDirArg {
    /// The cache directory (default $XDG_CACHE_HOME/d2l).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// `d2l cache ls`.
#[derive(Debug, Args)]
pub struct CacheLsArgs {
    #[command(flatten)]
    pub dir: CacheDirArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `d2l cache prune`.
#[derive(Debug, Args)]
pub struct CachePruneArgs {
    #[command(flatten)]
    pub dir: CacheDirArg,
    /// Remove every pulled image and blob, not only what no image needs.
    #[arg(long)]
    pub all: bool,
}

impl CacheDirArg {
    fn open(&self) -> Result<BlobCache> {
        let dir = match &self.cache_dir {
            Some(dir) => dir.clone(),
            None => default_cache_dir()
                .context("no cache directory: set $XDG_CACHE_HOME or $HOME, or give --cache-dir")?,
        };
        Ok(BlobCache::new(dir))
    }
}

#[derive(Serialize)]
struct Listing {
    cache_dir: String,
    images: Vec<d2l_registry::remote::ImageRecord>,
    blobs: Vec<d2l_registry::remote::CachedBlob>,
    unused_blobs: usize,
    total_bytes: u64,
}

pub fn run(command: CacheCommand) -> Result<()> {
    match command {
        CacheCommand::Ls(args) => ls(args),
        CacheCommand::Prune(args) => prune(args),
    }
}

fn ls(args: CacheLsArgs) -> Result<()> {
    let cache = args.dir.open()?;
    let dir = cache.root().display().to_string();
    let images = cache.images().with_context(|| dir.clone())?;
    let blobs = cache.blobs().with_context(|| dir.clone())?;
    let used = |d| images.iter().any(|i| i.blobs.contains(d));
    let listing = Listing {
        unused_blobs: blobs.iter().filter(|b| !used(&b.digest)).count(),
        total_bytes: blobs.iter().map(|b| b.size).sum(),
        cache_dir: dir,
        images,
        blobs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(());
    }
    let width = listing
        .images
        .iter()
        .map(|i| i.reference.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<width$}  {:<13}  {:>10}  MANIFEST",
        "IMAGE", "PLATFORM", "SIZE"
    );
    for image in &listing.images {
        println!(
            "{:<width$}  {:<13}  {:>10}  {}",
            image.reference,
            image.platform,
            mb(image.size),
            image.manifest
        );
    }
    println!(
        "{} blobs, {} in {} ({} used by no image)",
        listing.blobs.len(),
        mb(listing.total_bytes),
        listing.cache_dir,
        listing.unused_blobs
    );
    Ok(())
}

fn prune(args: CachePruneArgs) -> Result<()> {
    let cache = args.dir.open()?;
    // Its errors name the cache directory (in use by a pull: refused) or the file at fault.
    let report = cache.prune(args.all)?;
    println!(
        "removed {} blobs, {} unfinished downloads and {} image records ({}) from {}",
        report.blobs,
        report.downloads,
        report.images,
        mb(report.bytes),
        cache.root().display()
    );
    Ok(())
}
