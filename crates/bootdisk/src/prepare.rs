//! Step 1: the rootfs becomes a machine's, with its boot loader files.

use d2l_bootloader::{extlinux_conf, find_kernel};
use d2l_fs_writer::Ext4Options;
use d2l_machine::prepare;
use d2l_rootfs::{ContentStore, Metadata, Rootfs};

use crate::error::{Error, Result};
use crate::plan::{DiskPlan, LDLINUX_SYS, SYSLINUX_DIR};

/// extlinux's files besides ldlinux.sys.
const LDLINUX_C32: &str = "boot/syslinux/ldlinux.c32";
const EXTLINUX_CONF: &str = "boot/syslinux/extlinux.conf";

/// Makes `rootfs` the machine `plan` describes and adds its boot loader, whose config names
/// the filesystem `ext4.uuid`; marks in `ext4` the files to place contiguously. Returns what
/// changed, a line each, and the warnings to show.
pub fn prepare_rootfs<S: ContentStore>(
    rootfs: &mut Rootfs<S>,
    plan: &DiskPlan<'_>,
    ext4: &mut Ext4Options,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut summary = Vec::new();
    let mut warnings = Vec::new();
    // Kernel arguments the machine needs (net.ifnames=0 for ifupdown), after the user's.
    let mut cmdline = plan.cmdline.clone();
    if let (Some(_), Some(machine)) = (plan.table, &plan.machine) {
        let prepared = prepare(rootfs, machine)?;
        summary.extend(prepared.changes.into_iter().map(|c| c.0));
        warnings = prepared.warnings;
        for arg in prepared.kernel_args {
            cmdline = format!("{cmdline} {arg}").trim_start().to_owned();
        }
    }
    let (Some(_), Some(syslinux)) = (plan.table, plan.syslinux) else {
        return Ok((summary, warnings));
    };
    let boot_files = find_kernel(rootfs, plan.kernel.as_deref(), plan.initrd.as_deref())?;
    let fs_uuid = d2l_fs_writer::format_uuid(&ext4.uuid);
    let conf = extlinux_conf(
        &boot_files.kernel,
        boot_files.initrd.as_deref(),
        &fs_uuid,
        &cmdline,
    );
    let file = |mode| Metadata {
        mode,
        ..Metadata::default()
    };
    let add = |path: &'static str| move |source| Error::Tree { path, source };
    rootfs
        .create_dir_all(SYSLINUX_DIR.as_bytes(), file(0o755))
        .map_err(add(SYSLINUX_DIR))?;
    // Its final bytes depend on where it lands; patched once the filesystem is placed.
    rootfs
        .write_file(LDLINUX_SYS.as_bytes(), file(0o444), syslinux.ldlinux_sys())
        .map_err(add(LDLINUX_SYS))?;
    rootfs
        .write_file(LDLINUX_C32.as_bytes(), file(0o444), syslinux.ldlinux_c32())
        .map_err(add(LDLINUX_C32))?;
    rootfs
        .write_file(EXTLINUX_CONF.as_bytes(), file(0o644), conf.as_bytes())
        .map_err(add(EXTLINUX_CONF))?;
    ext4.contiguous = vec![LDLINUX_SYS.as_bytes().to_vec()];
    summary.push(format!(
        "extlinux in {SYSLINUX_DIR}, booting {}{}",
        boot_files.kernel,
        boot_files
            .initrd
            .map(|i| format!(" with {i}"))
            .unwrap_or_default()
    ));
    Ok((summary, warnings))
}
