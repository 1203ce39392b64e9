//! What disk to make, and the constants of where its pieces go.

use d2l_bootloader::Syslinux;
use d2l_fs_writer::SizeSpec;
use d2l_machine::MachineOptions;
use d2l_partition::TableKind;
use d2l_rootfs::Tree;

/// Where the boot loader lives in the image (extlinux's install directory).
pub const SYSLINUX_DIR: &str = "/boot/syslinux";
/// ldlinux.sys, the file boot code reads by sector number: placed contiguously.
pub const LDLINUX_SYS: &str = "boot/syslinux/ldlinux.sys";
/// ext4 block size, for turning the placement report into sectors.
pub const BLOCK_BYTES: u64 = 4096;
/// Sector size of the disk.
pub const SECTOR_BYTES: u64 = 512;

/// The disk to make.
pub struct DiskPlan<'a> {
    /// The partition table, or `None` for a bare filesystem.
    pub table: Option<TableKind>,
    /// The boot loader to install, or `None` for a disk without boot code.
    pub syslinux: Option<&'a Syslinux>,
    /// How to make the tree a machine's, or `None` to leave the image's files as they are.
    pub machine: Option<MachineOptions>,
    /// The kernel to boot (a path in the image), or the newest found.
    pub kernel: Option<String>,
    /// The initrd to boot, or the kernel's.
    pub initrd: Option<String>,
    /// More kernel command line, after d2l's.
    pub cmdline: String,
    /// The disk's size (an exact size is the whole disk's when there is a table).
    pub size: SizeSpec,
}

/// The filesystem's creation time: `source_date_epoch` if given, else the newest modification
/// time in the tree (so the same image gives the same bytes), but never after `now`, which
/// e2fsck reports as an error.
pub fn creation_time(tree: &Tree, source_date_epoch: Option<i64>, now: i64) -> u32 {
    let chosen = source_date_epoch.unwrap_or_else(|| {
        tree.inodes()
            .map(|(_, inode)| inode.mtime.seconds)
            .max()
            .unwrap_or(0)
    });
    u32::try_from(chosen.clamp(0, now.max(0))).unwrap_or(u32::MAX)
}
