//! What disk to make, and the constants of where its pieces go.

use d2l_bootloader::{GrubEfi, Syslinux};
use d2l_fs_writer::SizeSpec;
use d2l_machine::MachineOptions;
use d2l_partition::{RootArch, TableKind, PARTITION_START_BYTES};
use d2l_rootfs::Tree;

/// Where the boot loader lives in the image (extlinux's install directory).
pub const SYSLINUX_DIR: &str = "/boot/syslinux";
/// ldlinux.sys, the file boot code reads by sector number: placed contiguously.
pub const LDLINUX_SYS: &str = "boot/syslinux/ldlinux.sys";
/// ext4 block size, for turning the placement report into sectors.
pub const BLOCK_BYTES: u64 = 4096;
/// Sector size of the disk.
pub const SECTOR_BYTES: u64 = 512;
/// Size of the EFI System Partition of a disk that boots through UEFI: the smallest FAT32
/// volume of 512-byte clusters (the UEFI spec asks for FAT32 on a fixed disk's ESP), room
/// for GRUB (under 1 MiB) many times over. Unwritten, it costs nothing in a sparse file.
pub const ESP_BYTES: u64 = 64 << 20;
/// The ESP's FAT volume label.
pub const ESP_LABEL: &str = "ESP";

/// The disk to make.
pub struct DiskPlan<'a> {
    /// The partition table, or `None` for a bare filesystem.
    pub table: Option<TableKind>,
    /// The machine the disk is for (the GPT type of its root partition).
    pub root_arch: RootArch,
    /// The BIOS boot loader (extlinux, in the root filesystem), or `None` for a disk the
    /// BIOS does not boot.
    pub syslinux: Option<&'a Syslinux>,
    /// The UEFI boot loader (GRUB, on an ESP before the root partition), or `None` for a
    /// disk UEFI does not boot.
    pub grub: Option<&'a GrubEfi>,
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

impl DiskPlan<'_> {
    /// The size of the disk's EFI System Partition, when it has one: with a table and a UEFI
    /// boot loader.
    pub fn esp_bytes(&self) -> Option<u64> {
        (self.table.is_some() && self.grub.is_some()).then_some(ESP_BYTES)
    }

    /// Where the root filesystem starts on the disk: at 0 without a table, else in the
    /// partition after the ESP, if any. File data is placed knowing it.
    pub fn filesystem_offset(&self) -> u64 {
        match self.table {
            None => 0,
            Some(_) => PARTITION_START_BYTES + self.esp_bytes().unwrap_or(0),
        }
    }

    /// Whether the disk gets any boot loader.
    pub fn boots(&self) -> bool {
        self.table.is_some() && (self.syslinux.is_some() || self.grub.is_some())
    }
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
