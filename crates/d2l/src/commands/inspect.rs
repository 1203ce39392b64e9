//! `d2l inspect`: what an image is made of, without applying it.

use anyhow::Result;
use d2l_layer_apply::chain_ids;
use serde::Serialize;

use crate::cli::InspectArgs;

#[derive(Serialize)]
struct Report {
    source: String,
    manifest_digest: Option<String>,
    manifest_media_type: String,
    config_digest: String,
    platform: String,
    layers: Vec<LayerReport>,
}

#[derive(Serialize)]
struct LayerReport {
    index: usize,
    digest: String,
    size: u64,
    media_type: String,
    diff_id: String,
    chain_id: String,
}

pub fn run(args: InspectArgs, quiet: bool) -> Result<()> {
    let image = super::open_image(&args.source, &crate::progress::Progress::new(quiet))?;
    let chain = chain_ids(&image.diff_ids);
    let report = Report {
        source: image.source.clone(),
        manifest_digest: image.manifest_digest.as_ref().map(|d| d.to_string()),
        manifest_media_type: image.manifest_media_type.clone(),
        config_digest: image.config_digest.to_string(),
        platform: image.platform.to_string(),
        layers: image
            .layers
            .iter()
            .zip(&image.diff_ids)
            .zip(&chain)
            .enumerate()
            .map(|(index, ((layer, diff_id), chain_id))| LayerReport {
                index,
                digest: layer.digest.to_string(),
                size: layer.size,
                media_type: layer.media_type.clone(),
                diff_id: diff_id.to_string(),
                chain_id: chain_id.to_string(),
            })
            .collect(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!("Source:    {}", r.source);
    match &r.manifest_digest {
        Some(d) => println!("Manifest:  {d} ({})", r.manifest_media_type),
        None => println!("Manifest:  none stored ({})", r.manifest_media_type),
    }
    println!("Config:    {}", r.config_digest);
    println!("Platform:  {}", r.platform);
    println!("Layers:    {}", r.layers.len());
    let size_width = r
        .layers
        .iter()
        .map(|l| l.size.to_string().len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!();
    println!(
        "{:<3} {:>size_width$}  {:<71}  MEDIA TYPE",
        "#", "SIZE", "DIGEST"
    );
    for l in &r.layers {
        println!(
            "{:<3} {:>size_width$}  {:<71}  {}",
            l.index, l.size, l.digest, l.media_type
        );
        println!("{:<3} {:>size_width$}  diff_id  {}", "", "", l.diff_id);
        println!("{:<3} {:>size_width$}  chain_id {}", "", "", l.chain_id);
    }
}
