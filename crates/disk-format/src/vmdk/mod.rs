//! VMware virtual disks (VMDK), one file each ("Virtual Disk Format 5.0"; "VMDK"
//! specification 1.1): a sparse extent header in sector 0 and an embedded descriptor in
//! sectors 1..21, then 64 KiB grains.
//!
//! monolithicSparse (version 1): grains from 12 KiB on, in the order they were first
//! written; at `finish`, after them, the redundant grain directory and its grain tables, then
//! the grain directory and its grain tables (every table of the disk, entries 0 for grains
//! never written). The directory's size follows the disk's, so it is placed at the end,
//! which the header's offsets allow and QEMU and VirtualBox read.
//!
//! streamOptimized (version 3, deflated grains with markers): each stored grain is a marker
//! (its sector number and length) and a zlib stream, sector aligned, in disk order; each
//! grain table follows the grains it maps, then come the grain directory, a footer (the
//! header again, now with the directory's offset) and the end-of-stream marker. The header
//! at the front says "directory at the end".
//!
//! Reading ([`VmdkReader`], for `d2l convert`): monolithicSparse and streamOptimized, held
//! whole in one file; see `reader.rs`.

mod header;
mod reader;
mod writer;

pub use header::{
    VMDK_MAX_COMPRESSED_GRAIN_SECTORS, VMDK_MAX_DESCRIPTOR_BYTES, VMDK_MAX_GD_BYTES,
    VMDK_MAX_GRAIN_SECTORS, VMDK_MAX_GTES_PER_GT, VMDK_MIN_GRAIN_SECTORS,
};
pub(crate) use reader::VmdkReader;
pub(crate) use writer::{write_stream, Adapter, SparseWriter};
