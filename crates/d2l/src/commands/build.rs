//! `d2l build`: a bootable disk (partition table, ext4, extlinux) or a bare filesystem.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use d2l_bootloader::{extlinux_conf, find_kernel, prepare, MachineOptions, Syslinux};
use d2l_fs_writer::{
    write_ext4_placed, DiskStore, Ext4Options, Ext4Report, PlacedData, SizeSpec, VirtualDisk,
};
use d2l_layer_apply::{Metadata, Tree};
use d2l_partition::{write_partition_table, DiskIds, DiskLayout, TableKind};

use crate::cli::{Boot, BuildArgs, SourceArgs, Table};
use crate::output::{Destination, Output};
use crate::progress::Progress;

/// Where the boot loader lives in the image (extlinux's install directory).
const SYSLINUX_DIR: &str = "/boot/syslinux";
/// ldlinux.sys, the file boot code reads by sector number: placed contiguously.
const LDLINUX_SYS: &str = "boot/syslinux/ldlinux.sys";
/// ext4 block size, for turning the placement report into sectors.
const BLOCK_BYTES: u64 = 4096;
/// Sector size of the disk.
const SECTOR_BYTES: u64 = 512;

pub fn run(args: BuildArgs, quiet: bool) -> Result<()> {
    if args.output.as_os_str() == "-" {
        bail!("a disk image cannot be written to standard output; give a file with -o");
    }
    let table = match args.table {
        Table::Mbr => Some(TableKind::Mbr),
        Table::Gpt => Some(TableKind::Gpt),
        Table::None => None,
    };
    // A bare filesystem has nowhere to put boot code.
    let boot = if table.is_some() {
        args.boot
    } else {
        Boot::None
    };
    let started = Instant::now();
    let progress = Progress::new(quiet);
    let input = super::dockerfile::Input::from_args(&args.source, quiet)?;

    // What can fail quickly fails before the long steps.
    let syslinux = match boot {
        Boot::Extlinux => {
            let cache = d2l_bootloader::default_cache_dir()
                .context("no cache directory ($XDG_CACHE_HOME or $HOME) for syslinux's files")?;
            Some(Syslinux::load(args.syslinux_dir.as_deref(), &cache).context("syslinux")?)
        }
        Boot::None => None,
    };
    let root_password = read_root_password(&args)?;
    // With -f the builder runs now; its archive is needed until the layers are applied.
    let (source, built) = input.resolve(&args.output, quiet)?;
    let image = super::open_image(&source, &progress)?;
    let output = Output::create(&args.output)?;
    let destination = args.output.display().to_string();
    let scratch_dir = output.scratch_dir().map(Path::to_path_buf);
    let write_options = super::image::write_options(
        &args.format,
        &super::image::Target {
            path: &args.output,
            scratch_dir: scratch_dir.as_deref(),
            identity_seed: image.config_digest.to_string().as_bytes(),
            // Known before the tree is: the same image gives the same bytes.
            timestamp: d2l_layer_apply::source_date_epoch()
                .and_then(|t| u64::try_from(t).ok())
                .unwrap_or(0),
            max_virtual_size: match args.size {
                SizeSpec::Exact(bytes) => Some(bytes),
                _ => None,
            },
        },
    )?;
    let Built {
        report,
        layout,
        fs_uuid,
        summary,
    } = output.write_with(|out| {
        let Destination::File(file) = out else {
            unreachable!("standard output is refused above")
        };
        // Everything, file data first, goes through the format's writer, then its tables.
        let disk = super::image::create_writer(file, &write_options)
            .with_context(|| format!("writing {destination}"))?;
        let built = build_disk(
            &args,
            (&source, built),
            table,
            &syslinux,
            root_password,
            &image,
            disk.as_disk(),
            &progress,
        )?;
        disk.finish()
            .with_context(|| format!("writing {destination}"))?;
        Ok(built)
    })?;

    if !quiet {
        let what = match (&layout, table) {
            (Some(l), Some(kind)) => format!(
                "{} disk, {} MiB, ext4 partition at {} MiB",
                match kind {
                    TableKind::Mbr => "MBR",
                    TableKind::Gpt => "GPT",
                },
                l.disk_bytes >> 20,
                l.partition_start >> 20
            ),
            _ => format!("ext4, {} MiB", report.size_bytes >> 20),
        };
        let what = match write_options.format {
            d2l_disk_format::Format::Raw => what,
            _ => format!("{}, {what}", super::image::describe(&write_options)),
        };
        eprintln!(
            "built {destination}: {what}, UUID {fs_uuid}, {} of {} inodes used, {} MiB free, in {:.1}s",
            report.used_inodes,
            report.inodes_count,
            (report.free_blocks * BLOCK_BYTES) >> 20,
            started.elapsed().as_secs_f64()
        );
        for line in &summary {
            eprintln!("  {line}");
        }
    }
    Ok(())
}

/// What a build made, for its summary.
struct Built {
    report: Ext4Report,
    layout: Option<DiskLayout>,
    fs_uuid: String,
    /// Changes made to the tree, one line each.
    summary: Vec<String>,
}

/// Applies the layers with their file data going straight into `disk` (where the filesystem
/// will keep it), makes the tree a machine's, then writes the filesystem, boot code and
/// partition table around that data. `built` (a Dockerfile build's archive) is removed once
/// the layers are applied.
#[allow(clippy::too_many_arguments)]
fn build_disk(
    args: &BuildArgs,
    (source, built): (&SourceArgs, Option<super::dockerfile::Built>),
    table: Option<TableKind>,
    syslinux: &Option<Syslinux>,
    root_password: Option<String>,
    image: &d2l_registry::Image,
    disk: &dyn VirtualDisk,
    progress: &Progress,
) -> Result<Built> {
    let destination = args.output.display().to_string();
    let base = match table {
        Some(_) => d2l_partition::PARTITION_START_BYTES,
        None => 0,
    };
    let mut flat = super::flatten(
        image,
        source,
        &args.apply,
        DiskStore::new(disk, base),
        progress,
    )?;
    drop(built);

    let digest = digest_bytes(&image.config_digest);
    let mut options = Ext4Options::deterministic(&digest);
    if let Some(uuid) = args.fs_uuid {
        options.uuid = uuid;
    }
    let fs_uuid = d2l_fs_writer::format_uuid(&options.uuid);
    let rootfs = &mut flat.rootfs;

    // Make the container's filesystem a machine's, then put the boot loader in.
    let mut summary = Vec::new();
    if table.is_some() && !args.no_prepare {
        let machine = MachineOptions {
            hostname: args.hostname.clone(),
            root_password: root_password.clone(),
            fs_uuid: fs_uuid.clone(),
            salt: Some(d2l_bootloader::salt_from(&digest)),
        };
        let (changes, warnings) = prepare(rootfs, &machine).context("preparing the machine")?;
        summary.extend(changes.into_iter().map(|c| c.0));
        for warning in warnings {
            tracing::warn!("{warning}");
        }
    }
    if let Some(syslinux) = syslinux {
        let boot_files = find_kernel(rootfs, args.kernel.as_deref(), args.initrd.as_deref())?;
        let conf = extlinux_conf(
            &boot_files.kernel,
            boot_files.initrd.as_deref(),
            &fs_uuid,
            &args.cmdline,
        );
        let file = |mode| Metadata {
            mode,
            ..Metadata::default()
        };
        rootfs.create_dir_all(SYSLINUX_DIR.as_bytes(), file(0o755))?;
        // Its final bytes depend on where it lands; patched once the filesystem is placed.
        rootfs.write_file(LDLINUX_SYS.as_bytes(), file(0o444), syslinux.ldlinux_sys())?;
        rootfs.write_file(
            b"boot/syslinux/ldlinux.c32",
            file(0o444),
            syslinux.ldlinux_c32(),
        )?;
        rootfs.write_file(b"boot/syslinux/extlinux.conf", file(0o644), conf.as_bytes())?;
        options.contiguous = vec![LDLINUX_SYS.as_bytes().to_vec()];
        summary.push(format!(
            "extlinux in {SYSLINUX_DIR}, booting {}{}",
            boot_files.kernel,
            boot_files
                .initrd
                .map(|i| format!(" with {i}"))
                .unwrap_or_default()
        ));
    }
    let (tree, store) = flat.finish()?;
    let data = store
        .finish()
        .with_context(|| format!("writing {destination}"))?;
    options.timestamp = creation_time(&tree);
    options.offset = base;
    if let Some(kind) = table {
        options.size = match args.size {
            // An exact size is the disk's: the filesystem gets what the table leaves.
            SizeSpec::Exact(bytes) => {
                let overhead = DiskLayout::plan(kind, 1 << 20)?.disk_bytes - (1 << 20);
                SizeSpec::Exact(bytes.checked_sub(overhead).with_context(|| {
                    format!("--size {bytes} is smaller than the partition table needs")
                })?)
            }
            other => other,
        };
    } else {
        options.size = args.size;
    }

    let step = progress.step(format!("writing {destination}"));
    let (report, layout) = write_disk(
        args,
        table,
        syslinux,
        (&tree, &data),
        disk,
        &options,
        &digest,
    )?;
    step.done();
    Ok(Built {
        report,
        layout,
        fs_uuid,
        summary,
    })
}

/// Writes the filesystem around the placed file data, then the boot code and the partition
/// table.
fn write_disk(
    args: &BuildArgs,
    table: Option<TableKind>,
    syslinux: &Option<Syslinux>,
    (tree, data): (&Tree, &PlacedData),
    disk: &dyn VirtualDisk,
    options: &Ext4Options,
    digest: &[u8; 32],
) -> Result<(Ext4Report, Option<DiskLayout>)> {
    let destination = args.output.display().to_string();
    let report = write_ext4_placed(tree, data, disk, options).map_err(|e| match (e, table) {
        // An exact size is the disk's: say what the disk needs.
        (d2l_fs_writer::Error::TooSmall { needed, .. }, Some(kind)) => {
            let disk = DiskLayout::plan(kind, needed).map_or(needed, |l| l.disk_bytes);
            anyhow::anyhow!(
                "{destination}: the disk needs at least {} MiB ({disk} bytes), more than \
                     --size gives ({} MiB)",
                disk.div_ceil(1 << 20),
                match args.size {
                    SizeSpec::Exact(bytes) => bytes >> 20,
                    _ => 0,
                }
            )
        }
        (e, _) => anyhow::Error::new(e).context(format!("writing {destination}")),
    })?;
    let Some(kind) = table else {
        return Ok((report, None));
    };
    let layout = DiskLayout::plan(kind, report.size_bytes)?;
    let mut boot_code = None;
    if let Some(syslinux) = syslinux {
        let placed = report
            .contiguous_files
            .first()
            .context("ldlinux.sys was not placed")?;
        let sectors = (syslinux.ldlinux_sys().len() as u64).div_ceil(SECTOR_BYTES);
        let first = u64::from(placed.first_block) * (BLOCK_BYTES / SECTOR_BYTES);
        let list: Vec<u64> = (first..first + sectors).collect();
        let patched = syslinux.patched_ldlinux(&list, SYSLINUX_DIR)?;
        let base = layout.partition_start;
        disk.write_at(&patched, base + u64::from(placed.first_block) * BLOCK_BYTES)
            .with_context(|| format!("writing {destination}"))?;
        let sector = syslinux.boot_sector(
            first,
            layout.partition_first_lba(),
            layout.partition_sectors(),
        )?;
        disk.write_at(&sector, base)
            .with_context(|| format!("writing {destination}"))?;
        boot_code = Some(match kind {
            TableKind::Mbr => syslinux.mbr_bin(),
            TableKind::Gpt => syslinux.gptmbr_bin(),
        });
    }
    write_partition_table(disk, &layout, &DiskIds::derive(digest), boot_code)
        .with_context(|| format!("writing the partition table of {destination}"))?;
    Ok((report, Some(layout)))
}

fn read_root_password(args: &BuildArgs) -> Result<Option<String>> {
    if let Some(pw) = &args.root_password {
        return Ok(Some(pw.clone()));
    }
    let Some(path): Option<&PathBuf> = args.root_password_file.as_ref() else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        bail!("{}: the first line (the password) is empty", path.display());
    }
    Ok(Some(line.to_string()))
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
    let chosen = d2l_layer_apply::source_date_epoch().unwrap_or_else(|| {
        tree.inodes()
            .map(|(_, inode)| inode.mtime.seconds)
            .max()
            .unwrap_or(0)
    });
    u32::try_from(chosen.clamp(0, now)).unwrap_or(u32::MAX)
}
