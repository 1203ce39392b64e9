//! VHD's on-disk structures (Microsoft's "Virtual Hard Disk Image Format Specification"
//! 1.0), defined once for the writer and the reader: the footer, the dynamic disk header,
//! the block allocation table's entries, and the limits a reader holds an image to. Every
//! field is big-endian.

use crate::usize_from;
use d2l_disk::bytes::{be, FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the footer and of a sector.
pub(crate) const SECTOR: u64 = 512;
/// The footer's cookie, "conectix" (VHD spec, "Hard Disk Footer Format", Cookie).
pub(crate) const COOKIE: [u8; 8] = crate::format::VHD_COOKIE;
/// The dynamic disk header's cookie, "cxsparse" (VHD spec, "Dynamic Disk Header Format",
/// Cookie).
pub(crate) const DYNAMIC_COOKIE: [u8; 8] = *b"cxsparse";
/// Footer "features": bit 1, reserved, always set (VHD spec, "Hard Disk Footer Format",
/// Features).
pub(crate) const FEATURES: u32 = 2;
/// File format version 1.0 (VHD spec, "Hard Disk Footer Format", File Format Version).
pub(crate) const FORMAT_VERSION: u32 = 0x0001_0000;
/// Dynamic header version 1.0 (VHD spec, "Dynamic Disk Header Format", Header Version).
pub(crate) const HEADER_VERSION: u32 = 0x0001_0000;
/// Disk type 2: fixed (VHD spec, "Hard Disk Footer Format", Disk Type).
pub(crate) const TYPE_FIXED: u32 = 2;
/// Disk type 3: dynamic.
pub(crate) const TYPE_DYNAMIC: u32 = 3;
/// Disk type 4: differencing, changes to a parent disk.
pub(crate) const TYPE_DIFFERENCING: u32 = 4;
/// A BAT entry for a block never written (VHD spec, "Block Allocation Table").
pub(crate) const UNUSED: u32 = u32::MAX;
/// The footer's data offset for a fixed disk, which has no dynamic header.
pub(crate) const NO_DATA_OFFSET: u64 = u64::MAX;

/// The smallest block read: a sector.
pub const VHD_MIN_BLOCK_SIZE: u32 = 512;
/// The largest block read: 256 MiB (the specification's default is 2 MiB).
pub const VHD_MAX_BLOCK_SIZE: u32 = 256 << 20;
/// The largest block allocation table read: 16 Mi entries (64 MiB), 32 TiB in 2 MiB blocks.
pub const VHD_MAX_BAT_ENTRIES: u32 = 16 << 20;

/// The hard disk footer (VHD spec, "Hard Disk Footer Format"): the last 512 bytes of every
/// VHD, and a copy in the first 512 of a dynamic one.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Footer {
    /// [`COOKIE`].
    pub cookie: [u8; 8],
    /// [`FEATURES`].
    pub features: be::U32,
    /// [`FORMAT_VERSION`].
    pub version: be::U32,
    /// Offset of the dynamic disk header, or [`NO_DATA_OFFSET`].
    pub data_offset: be::U64,
    /// Creation time, seconds since 2000-01-01 UTC.
    pub timestamp: be::U32,
    /// The application that created the image.
    pub creator_app: [u8; 4],
    /// Its version.
    pub creator_version: be::U32,
    /// The host OS it ran on.
    pub creator_os: [u8; 4],
    /// Size at creation.
    pub original_size: be::U64,
    /// The disk's size.
    pub current_size: be::U64,
    /// CHS geometry: cylinders.
    pub cylinders: be::U16,
    /// Heads.
    pub heads: u8,
    /// Sectors per track.
    pub sectors: u8,
    /// Fixed, dynamic or differencing.
    pub disk_type: be::U32,
    /// One's complement of the sum of the footer's bytes, this field counted as zero.
    pub checksum: be::U32,
    /// The unique id.
    pub unique_id: [u8; 16],
    /// 1 when the disk is in a saved state.
    pub saved_state: u8,
    /// Zeros.
    pub reserved: [u8; 427],
}
const _: () = assert!(size_of::<Footer>() == usize_from(SECTOR));

/// The dynamic disk header (VHD spec, "Dynamic Disk Header Format").
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct DynamicHeader {
    /// [`DYNAMIC_COOKIE`].
    pub cookie: [u8; 8],
    /// Unused: all ones.
    pub data_offset: be::U64,
    /// Offset of the block allocation table.
    pub table_offset: be::U64,
    /// [`HEADER_VERSION`].
    pub header_version: be::U32,
    /// Entries of the block allocation table.
    pub max_table_entries: be::U32,
    /// Bytes per block.
    pub block_size: be::U32,
    /// One's complement of the sum of the header's bytes, this field counted as zero.
    pub checksum: be::U32,
    /// A differencing disk's parent: its unique id.
    pub parent_unique_id: [u8; 16],
    /// Its modification time.
    pub parent_timestamp: be::U32,
    /// Zeros.
    pub reserved1: be::U32,
    /// Its name, UTF-16BE.
    pub parent_unicode_name: [u8; 512],
    /// Where to find it: eight 24-byte locators.
    pub parent_locators: [u8; 192],
    /// Zeros.
    pub reserved2: [u8; 256],
}
const _: () = assert!(size_of::<DynamicHeader>() == 1024);

/// A block allocation table entry: the sector of a block's bitmap, or [`UNUSED`].
pub(crate) type BatEntry = be::U32;

/// The one's complement of the sum of all bytes (the checksum field counted as zero).
pub(crate) fn checksum(bytes: &[u8]) -> u32 {
    !bytes
        .iter()
        .fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)))
}

impl Footer {
    /// The checksum this footer should carry.
    pub fn computed_checksum(&self) -> u32 {
        let mut zeroed = *self;
        zeroed.checksum = 0.into();
        checksum(zeroed.as_bytes())
    }

    /// Sets the checksum field.
    pub fn seal(mut self) -> Footer {
        self.checksum = self.computed_checksum().into();
        self
    }
}

impl DynamicHeader {
    /// The checksum this header should carry.
    pub fn computed_checksum(&self) -> u32 {
        let mut zeroed = *self;
        zeroed.checksum = 0.into();
        checksum(zeroed.as_bytes())
    }

    /// The header of a dynamic disk with a BAT of `max_table_entries` at `table_offset` and
    /// blocks of `block_size`, no parent, checksum set.
    pub fn new(table_offset: u64, max_table_entries: u32, block_size: u32) -> DynamicHeader {
        let mut header = DynamicHeader::new_zeroed();
        header.cookie = DYNAMIC_COOKIE;
        header.data_offset = u64::MAX.into();
        header.table_offset = table_offset.into();
        header.header_version = HEADER_VERSION.into();
        header.max_table_entries = max_table_entries.into();
        header.block_size = block_size.into();
        header.checksum = header.computed_checksum().into();
        header
    }
}
