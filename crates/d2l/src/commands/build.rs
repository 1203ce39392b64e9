//! `d2l build`: a filesystem image (and, in later issues, a bootable disk) from an image.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use d2l_fs_writer::{write_ext4, Ext4Options};
use d2l_layer_apply::Tree;

use crate::cli::{BuildArgs, Table};
use crate::output::{Destination, Output};
use crate::progress::Progress;

pub fn run(args: BuildArgs, quiet: bool) -> Result<()> {
    if args.table != Table::None {
        bail!(
            "bootable disks (--table mbr|gpt) are not built yet; use --table none for a bare \
             ext4 filesystem"
        );
    }
    if args.output.as_os_str() == "-" {
        bail!("a filesystem image cannot be written to standard output; give a file with -o");
    }
    let started = Instant::now();
    let progress = Progress::new(quiet);
    let image = super::open_image(&args.source)?;
    let output = Output::create(&args.output)?;
    let flat = super::flatten(
        &image,
        &args.source,
        &args.apply,
        output.scratch_dir(),
        &progress,
    )?;

    let mut options = Ext4Options::deterministic(&digest_bytes(&image.config_digest));
    options.size = args.size;
    if let Some(uuid) = args.fs_uuid {
        options.uuid = uuid;
    }
    options.timestamp = creation_time(&flat.tree);
    let destination = args.output.display().to_string();
    let step = progress.step("writing the ext4 filesystem".to_string());
    let report = output.write_with(|out| match out {
        Destination::File(file) => write_ext4(&flat.tree, &flat.data, file, &options)
            .with_context(|| format!("writing {destination}")),
        Destination::Stream(_) => unreachable!("rejected above"),
    })?;
    step.done();
    if !quiet {
        eprintln!(
            "built {destination}: ext4, {} MiB, {} of {} inodes used, {} MiB free, in {:.1}s",
            report.size_bytes >> 20,
            report.used_inodes,
            report.inodes_count,
            (report.free_blocks * 4096) >> 20,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The first 32 bytes of a digest (all of a sha256 one).
fn digest_bytes(digest: &d2l_registry::Digest) -> [u8; 32] {
    let hex = digest.hex().as_bytes();
    std::array::from_fn(|i| {
        let pair = std::str::from_utf8(&hex[2 * i..2 * i + 2]).expect("hex digits are ASCII");
        u8::from_str_radix(pair, 16).expect("a digest is hexadecimal")
    })
}

/// The filesystem's creation time: `$SOURCE_DATE_EPOCH` if set, else the newest modification
/// time in the tree (so the same image gives the same bytes), but never in the future, which
/// e2fsck reports as an error.
fn creation_time(tree: &Tree) -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let from_env = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    let chosen = from_env.unwrap_or_else(|| {
        tree.inodes()
            .map(|(_, inode)| inode.mtime.seconds)
            .max()
            .unwrap_or(0)
    });
    u32::try_from(chosen.clamp(0, now)).unwrap_or(u32::MAX)
}
