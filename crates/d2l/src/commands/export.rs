//! `d2l export`: the flattened rootfs as a tar archive.

use std::time::Instant;

use anyhow::{Context, Result};
use d2l_layer_apply::{apply_image, write_tar, write_tar_to_file, SpillFile};

use crate::cli::ExportArgs;
use crate::output::{Destination, Output};

pub fn run(args: ExportArgs, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let image = super::open_image(&args.source)?;
    let output = Output::create(&args.output)?;
    // File data waits in a spill file next to the output (the user chose that filesystem for
    // a file of about this size), or in $TMPDIR when writing to standard output.
    let spill = match output.scratch_dir() {
        Some(dir) => SpillFile::new_in(dir),
        None => SpillFile::new(),
    }
    .context("creating a spill file for file data")?;
    let applied = apply_image(&image, spill, super::apply_options(&args.apply))
        .with_context(|| format!("{}", args.source.source))?;
    tracing::info!(
        "applied {} layers in {:.2}s",
        applied.layers.len(),
        started.elapsed().as_secs_f64()
    );
    let data = applied
        .store
        .into_reader()
        .context("finishing the spill file")?;
    let destination = args.output.display().to_string();
    let stats = output.write_with(|out| {
        match out {
            Destination::File(file) => write_tar_to_file(&applied.tree, &data, file),
            Destination::Stream(stream) => write_tar(&applied.tree, &data, stream),
        }
        .with_context(|| format!("writing {destination}"))
    })?;
    if !quiet {
        eprintln!(
            "exported {} entries from {} layers ({:.1} MB) to {} in {:.1}s",
            stats.entries,
            applied.layers.len(),
            stats.bytes as f64 / 1e6,
            destination,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
