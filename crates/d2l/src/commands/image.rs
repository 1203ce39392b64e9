//! The output image's format: chosen from `--format` or the output's extension, checked
//! against the format options, and its writer created over the output file; or the archive
//! (OVA, Compute Engine image, Vagrant box) the extension asks for, around a disk in the
//! archive's own format.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};
use d2l_disk_format::{
    Bundle, BundleOptions, Format, ImageWriter, VhdSubformat, VmdkSubformat, WriteOptions,
};

use crate::cli::{self, FormatArgs};

/// Where the output goes and what the writer may know about it in advance.
pub struct Target<'a> {
    /// The output path as given (`-o`, OUT).
    pub path: &'a Path,
    /// The output's directory, for the compressed formats' scratch file.
    pub scratch_dir: Option<&'a Path>,
    /// What identifiers in the image's headers derive from.
    pub identity_seed: &'a [u8],
    /// Creation time (seconds since the Unix epoch).
    pub timestamp: u64,
    /// The disk's final virtual size, if known before the first write.
    pub max_virtual_size: Option<u64>,
}

/// The format `args` and the output path ask for, and the options for its writer.
pub fn write_options(args: &FormatArgs, target: &Target<'_>) -> Result<WriteOptions> {
    // An archive's disk is in its own format (cli.rs refuses --format with one).
    let format = match Bundle::from_path(target.path) {
        Some(bundle) => bundle.disk_format(),
        None => args
            .format
            .or_else(|| Format::from_path(target.path))
            .unwrap_or(Format::Raw),
    };
    if args.compress && format != Format::Qcow2 {
        bail!(
            "--compress is for qcow2 images, not {format}{}",
            if format == Format::Vmdk {
                " (--vmdk-subformat stream is compressed)"
            } else {
                ""
            }
        );
    }
    if args.vmdk_subformat.is_some() && format != Format::Vmdk {
        bail!("--vmdk-subformat is for vmdk images, not {format}");
    }
    if args.vhd_subformat.is_some() && format != Format::Vhd {
        bail!("--vhd-subformat is for vhd images, not {format}");
    }
    let file_name = target
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut options = WriteOptions::new(format, &file_name);
    options.compress = args.compress;
    options.vmdk_subformat = match args.vmdk_subformat {
        Some(cli::VmdkSubformat::Stream) => VmdkSubformat::Stream,
        Some(cli::VmdkSubformat::Sparse) | None => VmdkSubformat::Sparse,
    };
    options.vhd_subformat = match args.vhd_subformat {
        Some(cli::VhdSubformat::Fixed) => VhdSubformat::Fixed,
        Some(cli::VhdSubformat::Dynamic) | None => VhdSubformat::Dynamic,
    };
    options.identity = d2l_disk_format::identity(target.identity_seed);
    options.timestamp = target.timestamp;
    options.max_virtual_size = target.max_virtual_size;
    options.scratch_dir = target.scratch_dir.map(Path::to_path_buf);
    Ok(options)
}

/// The writer of `options.format` over the output file.
pub fn create_writer(file: &File, options: &WriteOptions) -> Result<Box<dyn ImageWriter>> {
    let file = file
        .try_clone()
        .context("duplicating the output's file descriptor")?;
    Ok(d2l_disk_format::create(file, options)?)
}

/// The writer of the archive `options` describe over the output file.
pub fn create_bundle_writer(file: &File, options: &BundleOptions) -> Result<Box<dyn ImageWriter>> {
    let file = file
        .try_clone()
        .context("duplicating the output's file descriptor")?;
    Ok(d2l_disk_format::create_bundle(file, options)?)
}

/// How the format is named in summaries: `qcow2`, `vmdk (streamOptimized)`...
pub fn describe(options: &WriteOptions) -> String {
    match options.format {
        Format::Qcow2 if options.compress => "qcow2 (compressed)".into(),
        Format::Vmdk => match options.vmdk_subformat {
            VmdkSubformat::Sparse => "vmdk (monolithicSparse)".into(),
            VmdkSubformat::Stream => "vmdk (streamOptimized)".into(),
        },
        Format::Vhd => match options.vhd_subformat {
            VhdSubformat::Dynamic => "vhd (dynamic)".into(),
            VhdSubformat::Fixed => "vhd (fixed)".into(),
        },
        Format::Vhdx => "vhdx (dynamic)".into(),
        other => other.to_string(),
    }
}
