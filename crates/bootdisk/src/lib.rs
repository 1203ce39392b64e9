//! A bootable disk from a flattened rootfs, in two steps around the moment the tree is
//! final:
//!
//! 1. [`prepare_rootfs`] makes the container's tree a machine's (fstab, accounts, network,
//!    SSH, identity, growing: [`d2l_machine::prepare`]), puts the BIOS boot loader in
//!    (`/boot/syslinux`, with `ldlinux.sys` marked to be placed contiguously) and gathers the
//!    UEFI one's files for the ESP (GRUB and its `grub.cfg`);
//! 2. [`write_disk`] writes the ext4 filesystem around the file data already placed, the
//!    ESP's FAT filesystem (d2l-fat), patches `ldlinux.sys` for where it landed, and writes
//!    the partition boot sector, the partition table and the MBR boot code, all through one
//!    [`VirtualDisk`](d2l_disk::VirtualDisk).
//!
//! The layout with both loaders (`--firmware hybrid`): partition 1 is the ESP (64 MiB at
//! 1 MiB), partition 2 the root, active (MBR) or legacy-BIOS-bootable (GPT), so SeaBIOS
//! runs mbr.bin/gptmbr.bin into extlinux and OVMF runs `EFI/BOOT/BOOTX64.EFI` (GRUB); both
//! read the same kernel and initrd from the root filesystem.
//!
//! A [`DiskPlan`] says what disk to make; it is the same for both steps.
#![deny(missing_docs)]

mod error;
mod plan;
mod prepare;
mod write;

pub use error::{Error, Result};
pub use plan::{
    creation_time, DiskPlan, BLOCK_BYTES, ESP_BYTES, ESP_LABEL, LDLINUX_SYS, SECTOR_BYTES,
    SYSLINUX_DIR,
};
pub use prepare::{prepare_rootfs, Prepared};
pub use write::{write_disk, WrittenDisk};
