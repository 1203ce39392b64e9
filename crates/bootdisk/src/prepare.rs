//! Step 1: the rootfs becomes a machine's, with its boot loader files.

use d2l_bootloader::{extlinux_conf, find_kernel, grub_cfg, Syslinux, GRUB_CFG_PATH};
use d2l_fat::FatTree;
use d2l_fs_writer::Ext4Options;
use d2l_machine::prepare;
use d2l_rootfs::{ContentStore, Metadata, Rootfs};

use crate::error::{Error, Result};
use crate::plan::{DiskPlan, LDLINUX_SYS, SYSLINUX_DIR};

/// extlinux's files besides ldlinux.sys.
const LDLINUX_C32: &str = "boot/syslinux/ldlinux.c32";
const EXTLINUX_CONF: &str = "boot/syslinux/extlinux.conf";

/// What [`prepare_rootfs`] did and what [`write_disk`](crate::write_disk) still writes.
#[derive(Debug, Default)]
pub struct Prepared {
    /// What changed in the tree, a line each, for the build's summary.
    pub summary: Vec<String>,
    /// What the user should know.
    pub warnings: Vec<String>,
    /// The files of the EFI System Partition (GRUB and its configuration), when the disk
    /// boots through UEFI.
    pub esp: Option<FatTree>,
    /// The kernel and initrd the boot loaders start, as paths in the image (the files,
    /// not the links they go through), when the disk boots.
    pub kernel: Option<String>,
    /// See [`Prepared::kernel`].
    pub initrd: Option<String>,
}

/// Makes `rootfs` the machine `plan` describes and adds its boot loaders: extlinux in the
/// tree (its config naming the filesystem `ext4.uuid`; `ldlinux.sys` marked in `ext4` to be
/// placed contiguously) and GRUB's files for the ESP. Both boot the same kernel, initrd and
/// command line.
pub fn prepare_rootfs<S: ContentStore>(
    rootfs: &mut Rootfs<S>,
    plan: &DiskPlan<'_>,
    ext4: &mut Ext4Options,
) -> Result<Prepared> {
    let mut prepared = Prepared::default();
    // Kernel arguments the machine needs (net.ifnames=0 for ifupdown), after the user's.
    let mut cmdline = plan.cmdline.clone();
    if let (Some(_), Some(machine)) = (plan.table, &plan.machine) {
        let machine = prepare(rootfs, machine)?;
        prepared
            .summary
            .extend(machine.changes.into_iter().map(|c| c.0));
        prepared.warnings = machine.warnings;
        for arg in machine.kernel_args {
            cmdline = format!("{cmdline} {arg}").trim_start().to_owned();
        }
    }
    if !plan.boots() {
        return Ok(prepared);
    }
    let boot_files = find_kernel(rootfs, plan.kernel.as_deref(), plan.initrd.as_deref())?;
    let (kernel, initrd) = boot_files.loader_paths();
    let fs_uuid = d2l_fs_writer::format_uuid(&ext4.uuid);
    if let Some(syslinux) = plan.syslinux {
        install_extlinux(
            rootfs,
            syslinux,
            extlinux_conf(kernel, initrd, &fs_uuid, &cmdline),
        )?;
        ext4.contiguous = vec![LDLINUX_SYS.as_bytes().to_vec()];
        prepared
            .summary
            .push(format!("extlinux in {SYSLINUX_DIR} (BIOS)"));
    }
    if let Some(grub) = plan.grub {
        let mut esp = FatTree::new();
        let removable = grub.arch().removable_path();
        esp.add_file(removable, grub.image().to_vec())?;
        esp.add_file(
            GRUB_CFG_PATH,
            grub_cfg(grub.arch(), kernel, initrd, &fs_uuid, &cmdline).into_bytes(),
        )?;
        prepared.esp = Some(esp);
        prepared.summary.push(format!(
            "GRUB on the EFI System Partition, /{removable} (UEFI)"
        ));
    }
    prepared.kernel = Some(boot_files.kernel.clone());
    prepared.initrd = boot_files.initrd.clone();
    let files = match &boot_files.initrd {
        Some(initrd) => format!("{} with {initrd}", boot_files.kernel),
        None => boot_files.kernel.clone(),
    };
    prepared.summary.push(match &boot_files.links {
        Some((link, _)) => format!("booting {files}, through {link} (kept by kernel upgrades)"),
        None => format!("booting {files}"),
    });
    Ok(prepared)
}

/// Puts extlinux's files in `/boot/syslinux`. `ldlinux.sys` goes in as shipped: its final
/// bytes depend on where it lands, so it is patched once the filesystem is placed.
fn install_extlinux<S: ContentStore>(
    rootfs: &mut Rootfs<S>,
    syslinux: &Syslinux,
    conf: String,
) -> Result<()> {
    let file = |mode| Metadata {
        mode,
        ..Metadata::default()
    };
    let add = |path: &'static str| move |source| Error::Tree { path, source };
    rootfs
        .create_dir_all(SYSLINUX_DIR.as_bytes(), file(0o755))
        .map_err(add(SYSLINUX_DIR))?;
    rootfs
        .write_file(LDLINUX_SYS.as_bytes(), file(0o444), syslinux.ldlinux_sys())
        .map_err(add(LDLINUX_SYS))?;
    rootfs
        .write_file(LDLINUX_C32.as_bytes(), file(0o444), syslinux.ldlinux_c32())
        .map_err(add(LDLINUX_C32))?;
    rootfs
        .write_file(EXTLINUX_CONF.as_bytes(), file(0o644), conf.as_bytes())
        .map_err(add(EXTLINUX_CONF))?;
    Ok(())
}
