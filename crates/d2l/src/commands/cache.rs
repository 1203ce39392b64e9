//! `d2l cache ls` and `d2l cache prune`: what registry pulls left in the cache.

use anyhow::{Context, Result};
use d2l_registry::remote::{default_cache_dir, BlobCache};
use serde::Serialize;

use crate::cli::{CacheCommand, CacheDirArg, CacheLsArgs, CachePruneArgs};
use crate::progress::human_bytes as mb;

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
