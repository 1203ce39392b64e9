//! VirtualBox disk images (VDI), dynamic, with the header VirtualBox writes (VDICore.h,
//! VDI.cpp): a pre-header and a version 1.1 header in the first sector, the block map in the
//! next sector, data blocks of 1 MiB from the first sector after the map, in the order they
//! were first written. Block `n` of the data area holds the guest block whose map entry is `n`.
//!
//! VirtualBox itself aligns the map and the data area to 1 MiB (its `DataAlignment` setting),
//! which costs up to 2 MiB per image; sector alignment is the smallest layout both VirtualBox
//! (`vdiValidateHeader` asks only that the data follow the map) and QEMU (which asks for sector
//! alignment) open, and the one `qemu-img` writes.
//!
//! The map's size depends on the disk's size, which is not known before the first data
//! write. The data area starts where the map for the largest size known in advance
//! ([`WriteOptions::max_virtual_size`]) ends, else where a 64 GiB disk's map would end, a few
//! KiB later than needed for a smaller disk. If the disk ends up larger, `finish` moves the
//! first blocks to the end of the file to make room.
//!
//! Reading ([`VdiReader`], for `d2l convert`): dynamic or fixed, any power-of-two block size
//! within the limits of `header.rs`; see `reader.rs`.

mod header;
mod reader;
mod writer;

pub use header::{VDI_MAX_BLOCKS, VDI_MAX_BLOCK_SIZE, VDI_MIN_BLOCK_SIZE};
pub(crate) use reader::VdiReader;
pub(crate) use writer::VdiWriter;
