//! VHDX images (Hyper-V's format since Windows Server 2012; [MS-VHDX] 1.0), dynamic.
//!
//! Written: the header section (file type identifier, two headers with CRC-32C checksums,
//! two copies of the region table), an empty 1 MiB log at 1 MiB (LogGuid zero: nothing to
//! replay), the metadata region at 2 MiB (block size, virtual size, disk ID, 512-byte
//! logical and 4 KiB physical sectors), then payload blocks of 1 MiB in the order they were
//! first written, each marked fully present; blocks never written are marked zero. The
//! block allocation table (BAT, a sector bitmap entry after each chunk of 4096 blocks) sits
//! at 3 MiB before the blocks when the caller knows the disk's size before the first write
//! ([`WriteOptions::max_virtual_size`](crate::WriteOptions)), as QEMU lays it out; otherwise
//! `finish` writes it after the last block, where the region table points. The identifiers
//! (FileWriteGuid, DataWriteGuid, the virtual disk ID) derive from the image's identity:
//! same input, same file.
//!
//! Reading (`open`, for `d2l convert`): dynamic or fixed, any block size; see `reader.rs`.

mod header;
mod reader;
mod writer;

pub use header::{
    VHDX_MAX_BAT_ENTRIES, VHDX_MAX_BLOCK_SIZE, VHDX_MAX_VIRTUAL_SIZE, VHDX_MIN_BLOCK_SIZE,
};
pub(crate) use reader::open;
pub(crate) use writer::DynamicWriter;
