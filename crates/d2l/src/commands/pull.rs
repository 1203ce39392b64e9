//! `d2l pull`: an image from a registry into the cache, verified, without applying it.

use anyhow::{bail, Context, Result};
use d2l_registry::{pull_image, SourceSpec};
use serde::Serialize;

use crate::cli::PullArgs;
use crate::progress::{human_bytes as mb, Progress};

#[derive(Serialize)]
struct Report<'a> {
    reference: &'a str,
    platform: &'a str,
    manifest_digest: String,
    config_digest: String,
    layers: Vec<LayerReport>,
    downloaded_bytes: u64,
    cache_dir: String,
}

#[derive(Serialize)]
struct LayerReport {
    digest: String,
    size: u64,
    downloaded: u64,
    cached: bool,
}

pub fn run(args: PullArgs, quiet: bool) -> Result<()> {
    let SourceSpec::Registry(reference) = &args.source.source else {
        bail!(
            "{}: d2l pull takes a registry reference (NAME[:TAG|@DIGEST], docker://...); \
             local sources need no pulling",
            args.source.source
        );
    };
    let progress = Progress::new(quiet || args.json);
    let options = super::registry_options(&args.source.registry, &progress);
    let pulled = pull_image(reference, &args.source.platform, &options)
        .with_context(|| format!("{}", args.source.source))?;
    let image = &pulled.image;
    let report = Report {
        reference: &pulled.record.reference,
        platform: &pulled.record.platform,
        manifest_digest: pulled.record.manifest.to_string(),
        config_digest: image.config_digest.to_string(),
        layers: image
            .layers
            .iter()
            .zip(&pulled.downloaded)
            .map(|(layer, &downloaded)| LayerReport {
                digest: layer.digest.to_string(),
                size: layer.size,
                downloaded,
                cached: downloaded == 0,
            })
            .collect(),
        downloaded_bytes: pulled.downloaded.iter().sum(),
        cache_dir: pulled.cache_dir.display().to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("pulled {} ({})", report.reference, report.platform);
    println!("  manifest {}", report.manifest_digest);
    println!("  config   {}", report.config_digest);
    for (index, layer) in report.layers.iter().enumerate() {
        let how = if layer.cached {
            "cached".to_owned()
        } else {
            format!("downloaded {}", mb(layer.downloaded))
        };
        println!(
            "  layer {index}  {}  {:>10}  {how}",
            layer.digest,
            mb(layer.size)
        );
    }
    println!(
        "  {} downloaded, in {}",
        mb(report.downloaded_bytes),
        report.cache_dir
    );
    Ok(())
}
