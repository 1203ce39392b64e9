//! `d2l build`: a bootable disk (partition table, ext4, extlinux) or a bare filesystem.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use d2l_bootdisk::{creation_time, prepare_rootfs, write_disk, DiskPlan, BLOCK_BYTES};
use d2l_bootloader::{EfiArch, GrubEfi, Syslinux};
use d2l_disk::VirtualDisk;
use d2l_disk_format::{Bundle, BundleOptions, Hardware};
use d2l_fs_writer::{DiskStore, Ext4Options, Ext4Report, SizeSpec};
use d2l_partition::{DiskIds, DiskLayout, RootArch, TableKind};
use serde_json::json;

use super::recipe::{NeedsRecipe, Recipes};
use super::Environment;
use crate::cli::{Boot, BuildArgs, Firmware, InitChoice, SourceArgs, Table};
use crate::output::{Destination, Output};
use crate::progress::Progress;

pub fn run(args: BuildArgs, (quiet, verbose): (bool, bool), env: &Environment) -> Result<()> {
    if args.output.as_os_str() == "-" {
        bail!("a disk image cannot be written to standard output; give a file with -o");
    }
    let table = match args.table {
        Table::Mbr => Some(TableKind::Mbr),
        Table::Gpt => Some(TableKind::Gpt),
        Table::None => None,
    };
    // A bare filesystem has nowhere to put boot code (cli.rs refuses --boot extlinux there).
    let boot = match (args.boot, table) {
        (Some(boot), Some(_)) => boot,
        (None, Some(_)) => Boot::Extlinux,
        (_, None) => Boot::None,
    };
    let started = Instant::now();
    let progress = Progress::new(quiet);
    let input = super::dockerfile::Input::from_args(&args.source, quiet)?;

    // What can fail quickly fails before the long steps. (extlinux is not wanted only when
    // UEFI alone is asked for; an arm64 image, known once opened, drops it below.)
    let syslinux = match boot {
        Boot::Extlinux if args.firmware != Some(Firmware::Uefi) => {
            let cache = d2l_bootloader::default_cache_dir()
                .context("no cache directory ($XDG_CACHE_HOME or $HOME) for syslinux's files")?;
            Some(Syslinux::load(args.syslinux_dir.as_deref(), &cache).context("syslinux")?)
        }
        _ => None,
    };
    let mut machine_inputs = super::machine::MachineInputs::read(&args)?;
    let bundle = bundle_plan(&args, &mut machine_inputs)?;
    // A disk without a boot loader needs no kernel; packages asked for are installed all the
    // same.
    // A kernel taken from elsewhere needs no recipe.
    let recipes = match args.init.kernel_from {
        Some(_) => None,
        None => Recipes::from_args(&args, boot != Boot::None, verbose, quiet)?,
    };
    // With -f the builder runs now; its archive is needed until the layers are applied.
    let (mut source, built) = input.resolve(&args.output, quiet)?;
    let mut image = super::open_image(&source, &progress)?;
    // An earlier build's result in the cache is the image itself: no recipe runs on it.
    let mut first_recipes = recipes.as_ref();
    if let Some(cached) = first_recipes
        .map(|r| r.cached(&image))
        .transpose()?
        .flatten()
    {
        source.source = cached;
        image = super::open_image(&source, &progress)?;
        first_recipes = None;
    }
    let attempt = Attempt {
        args: &args,
        boot,
        table,
        syslinux: syslinux.as_ref(),
        started,
        quiet,
        env,
        progress: &progress,
        bundle: bundle.as_ref(),
    };
    let result = build_image(
        &attempt,
        &source,
        built,
        &image,
        machine_inputs.clone(),
        first_recipes,
    );
    let needs = match result {
        Err(error) if error.is::<NeedsRecipe>() => error.downcast::<NeedsRecipe>()?,
        other => return other,
    };
    // NeedsRecipe comes only from a build given recipes.
    let Some(recipes) = first_recipes else {
        return Err(needs.into());
    };
    source.source = recipes.build(&image, &needs, &args.output)?;
    let image = super::open_image(&source, &progress)?;
    build_image(&attempt, &source, None, &image, machine_inputs, None)
}

/// What every attempt at one build shares.
struct Attempt<'a> {
    args: &'a BuildArgs,
    boot: Boot,
    table: Option<TableKind>,
    syslinux: Option<&'a Syslinux>,
    started: Instant,
    quiet: bool,
    env: &'a Environment,
    progress: &'a Progress,
    /// The archive the output is (`.ova`, `.tar.gz`, `.box`), its disk options still to
    /// be filled.
    bundle: Option<&'a BundleOptions>,
}

/// The archive `args.output` names, if any, with its hardware (OVA) and SSH user (Vagrant
/// box, whose machine `inputs` are made Vagrant's).
fn bundle_plan(
    args: &BuildArgs,
    inputs: &mut super::machine::MachineInputs,
) -> Result<Option<BundleOptions>> {
    let Some(bundle) = Bundle::from_path(&args.output) else {
        return Ok(None);
    };
    let file_name = args
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut options = BundleOptions::new(bundle, &file_name);
    let defaults = Hardware::default();
    options.hardware = Hardware {
        cpus: args.hardware.cpus.unwrap_or(defaults.cpus),
        memory_mib: match args.hardware.memory {
            Some(memory) => crate::cli::memory_mib(memory).map_err(anyhow::Error::msg)?,
            None => defaults.memory_mib,
        },
    };
    if bundle == Bundle::VagrantBox {
        if args.no_prepare {
            tracing::warn!(
                "--no-prepare: the box logs in as user vagrant with Vagrant's insecure key, which \
                 the image must have set up itself"
            );
        } else {
            options.vagrant = inputs.for_vagrant();
        }
    }
    Ok(Some(options))
}

/// Builds the disk from `image`; with `recipes`, stops with [`NeedsRecipe`] (leaving no
/// output) when the flattened image needs one.
fn build_image(
    attempt: &Attempt<'_>,
    source: &SourceArgs,
    built: Option<super::dockerfile::Built>,
    image: &d2l_registry::Image,
    machine_inputs: super::machine::MachineInputs,
    recipes: Option<&Recipes>,
) -> Result<()> {
    let Attempt {
        args,
        boot,
        table,
        syslinux,
        started,
        quiet,
        env,
        progress,
        bundle,
    } = *attempt;
    if args.init.init == InitChoice::D2l {
        super::appliance::check_architecture(image)?;
    }
    let (firmware, grub) = match boot {
        Boot::Extlinux => {
            let (firmware, efi) = firmware_for(&image.platform.architecture, args.firmware)?;
            let grub = match efi {
                Some(arch) if firmware.uefi() => {
                    Some(GrubEfi::from_host(arch).context("GRUB for the UEFI boot")?)
                }
                _ => None,
            };
            (Some(firmware), grub)
        }
        Boot::None => (None, None),
    };
    let syslinux = syslinux.filter(|_| firmware.is_some_and(Firmware::bios));
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
            timestamp: env
                .source_date_epoch
                .and_then(|t| u64::try_from(t).ok())
                .unwrap_or(0),
            max_virtual_size: match args.size {
                SizeSpec::Exact(bytes) => Some(bytes),
                _ => None,
            },
        },
    )?;
    let bundle = bundle.cloned().map(|mut options| {
        options.disk = write_options.clone();
        options.uefi_only = firmware == Some(Firmware::Uefi);
        options
    });
    let Built {
        report,
        layout,
        ids,
        fs_uuid,
        summary,
        kernel,
        initrd,
    } = output.write_with(|out| {
        let Destination::File(file) = out else {
            unreachable!("standard output is refused above")
        };
        // Everything, file data first, goes through the format's writer, then its tables.
        let disk = match &bundle {
            Some(options) => super::image::create_bundle_writer(file, options),
            None => super::image::create_writer(file, &write_options),
        }
        .with_context(|| format!("writing {destination}"))?;
        let plan = DiskPlan {
            table,
            root_arch: match image.platform.architecture.as_str() {
                "arm64" => RootArch::Aarch64,
                _ => RootArch::X86_64,
            },
            syslinux,
            grub: grub.as_ref(),
            machine: None,
            kernel: args.kernel.clone(),
            initrd: args.initrd.clone(),
            cmdline: args.cmdline.clone(),
            size: args.size,
        };
        let built = build_disk(
            args,
            (source, built),
            plan,
            machine_inputs,
            image,
            disk.as_disk(),
            (env, progress, recipes),
        )?;
        disk.finish()
            .with_context(|| format!("writing {destination}"))?;
        Ok(built)
    })?;

    if args.json {
        let file_bytes = std::fs::metadata(&args.output)
            .with_context(|| args.output.display().to_string())?
            .len();
        let virtual_bytes = layout.map_or(report.size_bytes, |l| l.disk_bytes);
        let report = json!({
            "output": args.output.display().to_string(),
            "format": write_options.format.name(),
            "bundle": bundle.as_ref().map(|b| json!({
                "type": b.bundle.name(),
                "disk": b.bundle.disk_member(&write_options.file_name),
                "disk_bytes": b.bundle.disk_size(virtual_bytes),
            })),
            "file_bytes": file_bytes,
            "virtual_bytes": virtual_bytes,
            "table": table.map(|t| match t {
                TableKind::Mbr => "mbr",
                TableKind::Gpt => "gpt",
            }),
            "firmware": firmware.map(|f| f.to_string()),
            "partitions": match (layout, ids) {
                (Some(layout), Some(ids)) => layout
                    .partitions(&ids)
                    .into_iter()
                    .map(|p| json!({
                        "number": p.number,
                        "role": p.role,
                        "start": p.start,
                        "size": p.size,
                        "type": p.type_id,
                        "uuid": p.uuid,
                    }))
                    .collect(),
                _ => Vec::new(),
            },
            "filesystem": {
                "type": "ext4",
                "uuid": fs_uuid,
                "offset": layout.map_or(0, |l| l.partition_start),
                "bytes": report.size_bytes,
                "inodes": report.inodes_count,
                "used_inodes": report.used_inodes,
                "free_bytes": report.free_blocks * BLOCK_BYTES,
            },
            "kernel": kernel,
            "initrd": initrd,
            "image": {
                "source": image.source,
                "platform": image.platform.to_string(),
                "manifest_digest": image.manifest_digest.as_ref().map(|d| d.to_string()),
                "config_digest": image.config_digest.to_string(),
            },
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{report}");
    }
    if !quiet {
        let what = match (&layout, table) {
            (Some(l), Some(kind)) => format!(
                "{} disk{}, {} MiB, {}ext4 partition at {} MiB",
                match kind {
                    TableKind::Mbr => "MBR",
                    TableKind::Gpt => "GPT",
                },
                match firmware {
                    Some(Firmware::Bios) => " for BIOS",
                    Some(Firmware::Uefi) => " for UEFI",
                    Some(Firmware::Hybrid) => " for BIOS and UEFI",
                    None => " without boot loader",
                },
                l.disk_bytes >> 20,
                l.esp
                    .map(|esp| format!("EFI System Partition at {} MiB, ", esp.start >> 20))
                    .unwrap_or_default(),
                l.partition_start >> 20
            ),
            _ => format!("ext4, {} MiB", report.size_bytes >> 20),
        };
        let what = match (&bundle, write_options.format) {
            (Some(b), _) => format!("{}, {what}", b.bundle),
            (None, d2l_disk_format::Format::Raw) => what,
            (None, _) => format!("{}, {what}", super::image::describe(&write_options)),
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
    ids: Option<DiskIds>,
    fs_uuid: String,
    /// Changes made to the tree, one line each.
    summary: Vec<String>,
    kernel: Option<String>,
    initrd: Option<String>,
}

/// Applies the layers with their file data going straight into `disk` (where the filesystem
/// will keep it), makes the tree a machine's, then writes the filesystem, boot code and
/// partition table around that data. `built` (a Dockerfile build's archive) is removed once
/// the layers are applied.
fn build_disk(
    args: &BuildArgs,
    (source, built): (&SourceArgs, Option<super::dockerfile::Built>),
    mut plan: DiskPlan<'_>,
    machine_inputs: super::machine::MachineInputs,
    image: &d2l_registry::Image,
    disk: &dyn VirtualDisk,
    (env, progress, recipes): (&Environment, &Progress, Option<&Recipes>),
) -> Result<Built> {
    let destination = args.output.display().to_string();
    let base = plan.filesystem_offset();
    let mut flat = super::flatten(
        image,
        source,
        &args.apply,
        env,
        DiskStore::new(disk, base),
        progress,
    )?;
    drop(built);

    let digest = digest_bytes(&image.config_digest);
    let mut ext4 = Ext4Options::deterministic(&digest);
    if let Some(uuid) = args.fs_uuid {
        ext4.uuid = uuid;
    }
    let fs_uuid = d2l_fs_writer::format_uuid(&ext4.uuid);
    // A kernel from elsewhere and d2l's init, when asked for or when the image has no init
    // (on a bare filesystem too: a VMM boots its kernel and initramfs from outside).
    let boots =
        super::appliance::prepare(args, image, &mut flat.rootfs, &fs_uuid, (env, progress))?;
    if let Some(needs) = recipes.and_then(|r| r.needed(&mut flat.rootfs)) {
        return Err(needs.into());
    }
    let mut appliance_summary = Vec::new();
    let d2l_init = boots.as_ref().is_some_and(|b| b.d2l_init);
    if let Some(boots) = boots {
        plan.kernel = Some(boots.kernel);
        plan.initrd = boots.initrd;
        for arg in boots.kernel_args {
            plan.cmdline = format!("{} {arg}", plan.cmdline).trim_start().to_owned();
        }
        appliance_summary = boots.summary;
    }
    // d2l's init runs the image's command: no distribution's machine to make.
    if !args.no_prepare && !d2l_init {
        let gpt = plan.table == Some(TableKind::Gpt);
        plan.machine = Some(machine_inputs.options(args, &fs_uuid, &digest, gpt));
    }
    // Make the container's filesystem a machine's, then put the boot loader in.
    let mut prepared =
        prepare_rootfs(&mut flat.rootfs, &plan, &mut ext4).context("preparing the machine")?;
    prepared.summary.splice(0..0, appliance_summary);
    for warning in &prepared.warnings {
        tracing::warn!("{warning}");
    }
    let (tree, store) = flat.rootfs.into_parts();
    let data = store
        .finish()
        .with_context(|| format!("writing {destination}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    ext4.timestamp = creation_time(&tree, env.source_date_epoch, now);
    ext4.offset = base;

    let step = progress.step(format!("writing {destination}"));
    let esp = prepared.esp.as_ref();
    let written =
        write_disk(&tree, &data, disk, &plan, esp, ext4, &digest).map_err(|e| match e {
            d2l_bootdisk::Error::TooSmall { .. }
            | d2l_bootdisk::Error::Filesystem(d2l_fs_writer::Error::TooSmall { .. }) => {
                anyhow::anyhow!("{destination}: {e}")
            }
            e => anyhow::Error::new(e).context(format!("writing {destination}")),
        })?;
    step.done();
    Ok(Built {
        report: written.report,
        layout: written.layout,
        ids: written.ids,
        fs_uuid,
        summary: prepared.summary,
        kernel: prepared.kernel,
        initrd: prepared.initrd,
    })
}

/// The firmware a disk for an image of `architecture` boots with (`asked`, or the default),
/// and the architecture of its UEFI boot loader.
fn firmware_for(
    architecture: &str,
    asked: Option<Firmware>,
) -> Result<(Firmware, Option<EfiArch>)> {
    match architecture {
        "amd64" => Ok((asked.unwrap_or(Firmware::Hybrid), Some(EfiArch::X86_64))),
        "arm64" => match asked {
            None | Some(Firmware::Uefi) => Ok((Firmware::Uefi, Some(EfiArch::Aarch64))),
            Some(other) => bail!(
                "--firmware {other}: arm64 machines have no PC BIOS and boot only through \
                 UEFI (use --firmware uefi, the default for arm64 images)"
            ),
        },
        other => bail!(
            "no boot loader for {other} images: d2l boots amd64 disks through a BIOS or UEFI \
             and arm64 disks through UEFI (build with --boot none for a disk without one)"
        ),
    }
}

/// The first 32 bytes of a digest (all of a sha256 one).
fn digest_bytes(digest: &d2l_registry::Digest) -> [u8; 32] {
    digest.bytes()[..32]
        .try_into()
        .expect("a sha256 or sha512 digest has 32 bytes or more")
}
