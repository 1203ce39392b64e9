//! FAT filesystems for d2l's UEFI disks: the EFI System Partition, written in userspace
//! onto a [`VirtualDisk`](d2l_disk::VirtualDisk) at a byte offset, and read back.
//!
//! - [`FatTree`]: the directories and small files (EFI loaders, configurations) to store,
//!   by path, with names checked as FAT requires.
//! - [`write_fat`]: the volume, FAT16 or FAT32 by its size ([`FatKind`]; thresholds and
//!   cluster sizes in the table below), deterministic: the same tree and [`FatOptions`] give
//!   the same bytes. Long names get VFAT long-name entries and a generated short name.
//! - [`FatVolume`]: a reader for such volumes (and others': mkfs.fat's), bounded against
//!   hostile input, to check what was written.
//!
//! The type and cluster size follow from the volume's size, as in Microsoft's tables
//! (fatgen103) that mkfs.fat also follows, except that d2l writes no FAT12 and prefers FAT32
//! from 64 MiB ([`FAT32_MIN_VOLUME_BYTES`]: the UEFI specification asks for FAT32 on a
//! system partition, and 64 MiB keeps twice the clusters FAT32 needs). FAT16 has 1 reserved
//! sector and 512 root entries; FAT32 has 32 (FSInfo at 1, backups at 6 and 7) and its root
//! at cluster 2. Two FATs, 512-byte sectors, media 0xF8.
//!
//! | volume            | type  | cluster |
//! |-------------------|-------|---------|
//! | 2.03 .. 4.1 MiB   | FAT16 | 512 B   |
//! | 4.1 .. 16 MiB     | FAT16 | 1 KiB   |
//! | 16 .. 64 MiB      | FAT16 | 2 KiB   |
//! | 64 .. 260 MiB     | FAT32 | 512 B   |
//! | 260 MiB .. 8 GiB  | FAT32 | 4 KiB   |
//! | 8 GiB .. 2 TiB    | FAT32 | 8 .. 32 KiB |
//!
//! (FAT16's steps are at 8400 and 32680 sectors, FAT32's at 532480 and 16777216: the
//! tables' own boundaries.)
//!
//! ```
//! use d2l_fat::{write_fat, FatOptions, FatTree, FatVolume};
//! # fn main() -> d2l_fat::Result<()> {
//! let mut tree = FatTree::new();
//! tree.add_file("EFI/BOOT/BOOTX64.EFI", b"MZ...".to_vec())?;
//! tree.add_file("EFI/BOOT/grub.cfg", b"set timeout=0\n".to_vec())?;
//! let options = FatOptions { volume_id: 0x1234_5678, label: "ESP".into(), modified: 0 };
//! let disk = tempfile::tempfile().unwrap();
//! let summary = write_fat(&disk, 1 << 20, 64 << 20, &tree, &options)?;
//! assert_eq!(summary.kind, d2l_fat::FatKind::Fat32);
//! let volume = FatVolume::open(&disk, 1 << 20)?;
//! assert_eq!(volume.read_file("EFI/BOOT/grub.cfg")?, b"set timeout=0\n");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::cast_possible_truncation))]

mod error;
mod layout;
mod name;
mod ondisk;
mod read;
mod time;
mod tree;
mod write;

pub use error::{Error, Result};
pub use layout::{FatKind, FAT32_MIN_VOLUME_BYTES, MAX_VOLUME_BYTES, MIN_VOLUME_BYTES};
pub use read::{FatEntry, FatVolume};
pub use tree::FatTree;
pub use write::{write_fat, FatOptions, FatSummary};
