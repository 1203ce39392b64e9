//! `d2l export`: the flattened rootfs as a tar archive.

use std::time::Instant;

use anyhow::{Context, Result};
use d2l_layer_apply::{write_tar, write_tar_to_file};

use crate::cli::ExportArgs;
use crate::output::{Destination, Output};
use crate::progress::Progress;

pub fn run(args: ExportArgs, quiet: bool, env: &super::Environment) -> Result<()> {
    let started = Instant::now();
    let progress = Progress::new(quiet);
    let image = super::open_image(&args.source, &progress)?;
    let output = Output::create(&args.output)?;
    let flat = super::flatten(
        &image,
        &args.source,
        &args.apply,
        env,
        super::spill_file(output.scratch_dir())?,
        &progress,
    )?;
    let layers = flat.layers;
    let (tree, data) = flat.finish_spill()?;
    let destination = args.output.display().to_string();
    let stats = output.write_with(|out| {
        match out {
            Destination::File(file) => write_tar_to_file(&tree, &data, file),
            Destination::Stream(stream) => write_tar(&tree, &data, stream),
        }
        .with_context(|| format!("writing {destination}"))
    })?;
    if !quiet {
        eprintln!(
            "exported {} entries from {} layers ({:.1} MB) to {} in {:.1}s",
            stats.entries,
            layers,
            stats.bytes as f64 / 1e6,
            destination,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
