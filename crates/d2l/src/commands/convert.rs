//! `d2l convert IN OUT`: a disk image (raw, qcow2, VDI, VMDK, VHD or VHDX) rewritten in
//! another format.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use d2l_disk_format::DiskReader;

use crate::cli::ConvertArgs;
use crate::output::{Destination, Output};

/// Bytes of the input's start that, with its size, identify it (the partition table and
/// boot sector of a disk, the superblock of a filesystem).
const IDENTITY_BYTES: usize = 1 << 20;

pub fn run(args: ConvertArgs, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let input = &args.input;
    if args.output.as_os_str() == "-" {
        bail!("a disk image cannot be written to standard output; give a file as OUT");
    }
    let file = File::open(input).with_context(|| format!("{}: cannot open", input.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("{}: cannot stat", input.display()))?;
    if meta.is_dir() {
        bail!("{}: is a directory, not a disk image", input.display());
    }
    refuse_same_file(input, &meta, &args.output)?;
    let reader = d2l_disk_format::open(file).with_context(|| format!("{}", input.display()))?;
    let size = reader.virtual_size();
    let seed = identity_seed(reader.as_ref()).with_context(|| format!("{}", input.display()))?;
    let output = Output::create(&args.output)?;
    let scratch_dir = output.scratch_dir().map(Path::to_path_buf);
    let options = super::image::write_options(
        &args.format,
        &super::image::Target {
            path: &args.output,
            scratch_dir: scratch_dir.as_deref(),
            identity_seed: &seed,
            timestamp: meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
            max_virtual_size: Some(size),
        },
    )?;
    let destination = args.output.display().to_string();
    let report = output.write_with(|out| {
        let Destination::File(file) = out else {
            unreachable!("standard output is refused above")
        };
        let disk = super::image::create_writer(file, &options)
            .with_context(|| format!("writing {destination}"))?;
        let report = d2l_disk_format::convert(reader.as_ref(), disk.as_disk()).map_err(|e| {
            match e {
                // Reading errors name the input, writing errors the output.
                e if e.is_output() => anyhow::Error::new(e).context(destination.clone()),
                e => anyhow::Error::new(e).context(input.display().to_string()),
            }
        })?;
        disk.finish()
            .with_context(|| format!("writing {destination}"))?;
        Ok(report)
    })?;
    let on_disk = std::fs::metadata(&args.output)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.blocks() * 512
        })
        .unwrap_or(0);
    if args.json {
        let file_bytes = std::fs::metadata(&args.output)
            .with_context(|| destination.clone())?
            .len();
        let report = serde_json::json!({
            "input": input.display().to_string(),
            "input_format": reader.format().to_string(),
            "output": destination,
            "format": options.format.name(),
            "file_bytes": file_bytes,
            "allocated_bytes": on_disk,
            "virtual_bytes": report.virtual_size,
            "data_bytes": report.data_bytes,
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{report}");
    }
    if !quiet {
        eprintln!(
            "converted {} ({}, {} MiB) to {destination} ({}, {} MiB of data, {} MiB on disk) in {:.1}s",
            input.display(),
            reader.format(),
            report.virtual_size >> 20,
            super::image::describe(&options),
            report.data_bytes >> 20,
            on_disk >> 20,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Refuses an `output` that is the input: the same path, a hard link to it or a symlink to it
/// (the same device and inode once links are followed). The output is renamed into place at
/// the end, which would replace the input, or the link the user reads it through.
fn refuse_same_file(input: &Path, input_meta: &std::fs::Metadata, output: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(out) = std::fs::metadata(output) else {
        // No such file yet (or one a later step reports on): not the input.
        return Ok(());
    };
    if (out.dev(), out.ino()) == (input_meta.dev(), input_meta.ino()) {
        bail!(
            "{}: is the input {} (the same file, through a link or not); give OUT another name",
            output.display(),
            input.display()
        );
    }
    Ok(())
}

/// What identifiers in the output's headers derive from: the disk's size and first MiB, so
/// the same input converts to the same bytes.
fn identity_seed(reader: &dyn DiskReader) -> Result<Vec<u8>> {
    let size = reader.virtual_size();
    let mut seed = size.to_le_bytes().to_vec();
    let head = IDENTITY_BYTES.min(usize::try_from(size).unwrap_or(usize::MAX));
    let start = seed.len();
    seed.resize(start + head, 0);
    reader.read_at(&mut seed[start..], 0)?;
    Ok(seed)
}
