//! Partition tables for d2l's disks: the stage after the filesystem writer
//! (tree -> ext4 -> **disk** -> format).
//!
//! One root partition at 1 MiB, 1 MiB aligned, sized to the filesystem, in either table:
//! - [`TableKind::Mbr`] (default): one primary partition, type 0x83, active flag set.
//! - [`TableKind::Gpt`]: protective MBR, one partition of type Linux root (x86-64) with
//!   attribute bit 2 "legacy BIOS bootable", backup header at the end.
//!
//! Plan, then write: [`DiskLayout::plan`] is pure; [`write_partition_table`] writes only the
//! table sectors into a `&File`, leaving the rest sparse. Identifiers ([`DiskIds`]) are
//! derived from the image digest so the same image gives the same disk, byte for byte.
//! The 440 bytes of boot code (mbr.bin, gptmbr.bin) are the caller's to supply.
//!
//! ```no_run
//! use d2l_partition::{write_partition_table, DiskIds, DiskLayout, TableKind};
//! # fn main() -> d2l_partition::Result<()> {
//! let layout = DiskLayout::plan(TableKind::Gpt, 512 * 1024 * 1024)?;
//! let disk = std::fs::File::options().write(true).create(true).open("disk.raw").unwrap();
//! write_partition_table(&disk, &layout, &DiskIds::derive(&[0; 32]), None)?;
//! // then the filesystem at layout.partition_start
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod describe;
mod error;
mod gpt;
mod ids;
mod layout;
mod mbr;
mod write;

pub use describe::PartitionInfo;
pub use error::{Error, Result};
pub use gpt::{ATTR_LEGACY_BIOS_BOOTABLE, ESP_NAME, PARTITION_NAME};
pub use ids::DiskIds;
pub use layout::{
    DiskLayout, EspExtent, RootArch, TableKind, ALIGN_BYTES, GPT_TAIL_BYTES, MBR_LIMIT_BYTES,
    PARTITION_START_BYTES, SECTOR_BYTES,
};
pub use write::write_partition_table;
