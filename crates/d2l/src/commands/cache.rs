//! `d2l cache ls` and `d2l cache prune`: what registry pulls and image builders (kernel
//! recipes) left in the cache.

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
    built: Vec<d2l_registry::remote::BuiltRecord>,
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
    let built = cache.built_images().with_context(|| dir.clone())?;
    let used = |d| images.iter().any(|i| i.blobs.contains(d));
    let listing = Listing {
        unused_blobs: blobs.iter().filter(|b| !used(&b.digest)).count(),
        total_bytes: blobs.iter().map(|b| b.size).sum::<u64>()
            + built.iter().map(|b| b.size).sum::<u64>(),
        cache_dir: dir,
        images,
        built,
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
    if !listing.built.is_empty() {
        let width = listing
            .built
            .iter()
            .map(|b| b.base.len())
            .max()
            .unwrap_or(0)
            .max(10);
        println!(
            "\n{:<width$}  {:<13}  {:>10}  RECIPE",
            "BUILT FROM", "PLATFORM", "SIZE"
        );
        for built in &listing.built {
            println!(
                "{:<width$}  {:<13}  {:>10}  {}",
                built.base,
                built.platform,
                mb(built.size),
                built.summary
            );
        }
        println!();
    }
    println!(
        "{} blobs ({} used by no image) and {} built images, {} in {}",
        listing.blobs.len(),
        listing.unused_blobs,
        listing.built.len(),
        mb(listing.total_bytes),
        listing.cache_dir
    );
    Ok(())
}

fn prune(args: CachePruneArgs) -> Result<()> {
    let cache = args.dir.open()?;
    // Its errors name the cache directory (in use by a pull: refused) or the file at fault.
    let report = cache.prune(args.all)?;
    println!(
        "removed {} blobs, {} unfinished downloads, {} image records and {} built images ({}) \
         from {}",
        report.blobs,
        report.downloads,
        report.images,
        report.built,
        mb(report.bytes),
        cache.root().display()
    );
    Ok(())
}
