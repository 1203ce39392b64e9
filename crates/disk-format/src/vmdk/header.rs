//! VMDK's on-disk structures (VMware's "Virtual Disk Format 1.1", hosted sparse extents),
//! defined once for the writer and the reader: the sparse extent header, the markers of a
//! streamOptimized extent, and the limits a reader holds an image to. Every field is
//! little-endian.

use crate::usize_from;
use d2l_disk::bytes::{le, FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Sector size.
pub(crate) const SECTOR: u64 = 512;
/// The sparse extent header's magic, "KDMV" (Virtual Disk Format 1.1, "Hosted Sparse
/// Extent Header", magicNumber 0x564d444b).
pub(crate) const MAGIC: [u8; 4] = crate::format::VMDK_MAGIC;
/// Header flag: the new-line detection characters are valid (Virtual Disk Format 1.1,
/// "Hosted Sparse Extent Header", flags bit 0).
pub(crate) const FLAG_NL_DETECT: u32 = 1 << 0;
/// The characters after the header's uncleanShutdown byte that detect a file whose line
/// endings a text-mode transfer changed (valid when [`FLAG_NL_DETECT`] is set).
pub(crate) const NL_CHECK: [u8; 4] = *b"\n \r\n";
/// Header flag: the redundant grain directory is in use (flags bit 1).
pub(crate) const FLAG_RGD: u32 = 1 << 1;
/// Header flag: grain table entries of 1 mean "a grain of zeros" (flags bit 2, version 2
/// on).
pub(crate) const FLAG_ZERO_GRAIN: u32 = 1 << 2;
/// Header flag: grains are compressed (flags bit 16; Virtual Disk Format 1.1, "Stream-
/// Optimized Compressed Sparse Extents").
pub(crate) const FLAG_COMPRESSED: u32 = 1 << 16;
/// Header flag: grains and metadata carry markers (flags bit 17).
pub(crate) const FLAG_MARKERS: u32 = 1 << 17;
/// compressAlgorithm 1: deflate (Virtual Disk Format 1.1, COMPRESSION_DEFLATE).
pub(crate) const COMPRESS_DEFLATE: u16 = 1;
/// gdOffset meaning "the grain directory is at the end, see the footer"
/// (Virtual Disk Format 1.1, GD_AT_END).
pub(crate) const GD_AT_END: u64 = u64::MAX;
/// Marker type: end of stream (Virtual Disk Format 1.1, MARKER_EOS).
pub(crate) const MARKER_EOS: u32 = 0;
/// Marker type: a grain table follows (MARKER_GT).
pub(crate) const MARKER_GT: u32 = 1;
/// Marker type: the grain directory follows (MARKER_GD).
pub(crate) const MARKER_GD: u32 = 2;
/// Marker type: the footer follows (MARKER_FOOTER).
pub(crate) const MARKER_FOOTER: u32 = 3;
/// The grain table entry for a grain of zeros, with [`FLAG_ZERO_GRAIN`].
pub(crate) const ZERO_GRAIN: u32 = 1;

/// The smallest grain read, in sectors: 4 KiB (Virtual Disk Format 1.1, grainSize: "a
/// power of 2 and greater than 8 (4KB)"; QEMU writes 8 and up).
pub const VMDK_MIN_GRAIN_SECTORS: u64 = 8;
/// The largest grain read, in sectors: 2^21, 1 GiB (QEMU's limit).
pub const VMDK_MAX_GRAIN_SECTORS: u64 = 1 << 21;
/// The largest compressed grain, which is inflated in memory, in sectors: 16 MiB.
pub const VMDK_MAX_COMPRESSED_GRAIN_SECTORS: u64 = 1 << 15;
/// The most entries a grain table has (QEMU's limit; VMware writes 512).
pub const VMDK_MAX_GTES_PER_GT: u32 = 512;
/// The largest grain directory read, in bytes: 32 MiB (QEMU's limit).
pub const VMDK_MAX_GD_BYTES: u64 = 32 << 20;
/// The largest embedded descriptor read, in bytes: 1 MiB.
pub const VMDK_MAX_DESCRIPTOR_BYTES: u64 = 1 << 20;

/// The hosted sparse extent header (Virtual Disk Format 1.1, "SparseExtentHeader"), in
/// sector 0, and again as a streamOptimized extent's footer.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 4],
    /// 1, 2 (zero grains) or 3 (streamOptimized).
    pub version: le::U32,
    /// `FLAG_*`.
    pub flags: le::U32,
    /// Capacity in sectors.
    pub capacity: le::U64,
    /// Sectors per grain.
    pub grain_size: le::U64,
    /// Sector of the embedded descriptor (0: none).
    pub descriptor_offset: le::U64,
    /// Sectors of the embedded descriptor.
    pub descriptor_size: le::U64,
    /// Entries per grain table.
    pub num_gtes_per_gt: le::U32,
    /// Sector of the redundant grain directory (0: none).
    pub rgd_offset: le::U64,
    /// Sector of the grain directory, or [`GD_AT_END`].
    pub gd_offset: le::U64,
    /// Sectors before the first grain.
    pub overhead: le::U64,
    /// 1 if the extent was not closed cleanly.
    pub unclean_shutdown: u8,
    /// [`NL_CHECK`].
    pub nl_check: [u8; 4],
    /// 0 or [`COMPRESS_DEFLATE`].
    pub compress_algorithm: le::U16,
    /// Zeros.
    pub pad: [u8; 433],
}
const _: () = assert!(size_of::<Header>() == usize_from(SECTOR));

/// The marker before a compressed grain of a streamOptimized extent: the grain's first
/// sector and the length of the deflated stream that follows (Virtual Disk Format 1.1,
/// "Grain Marker").
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct GrainMarker {
    /// The grain's first guest sector.
    pub lba: le::U64,
    /// Bytes of the deflated stream.
    pub size: le::U32,
}
const _: () = assert!(size_of::<GrainMarker>() == 12);

/// A metadata marker sector of a streamOptimized extent: `num_sectors` of metadata of
/// `kind` follow it (Virtual Disk Format 1.1, "Metadata Marker").
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct MetadataMarker {
    /// Sectors of metadata after the marker.
    pub num_sectors: le::U64,
    /// 0: a metadata marker, not a grain.
    pub size: le::U32,
    /// `MARKER_*`.
    pub kind: le::U32,
    /// Zeros.
    pub pad: [u8; 496],
}
const _: () = assert!(size_of::<MetadataMarker>() == usize_from(SECTOR));

/// A grain directory or grain table entry: a sector number.
pub(crate) type Entry = le::U32;

impl MetadataMarker {
    /// A marker for `num_sectors` of `kind`.
    pub fn new(num_sectors: u64, kind: u32) -> MetadataMarker {
        let mut marker = MetadataMarker::new_zeroed();
        marker.num_sectors = num_sectors.into();
        marker.kind = kind.into();
        marker
    }
}
