//! VDI's on-disk structures (VirtualBox's VDICore.h), defined once for the writer and the
//! reader: the pre-header, the version 1.1 header, and the limits a reader holds an image
//! to. Every field is little-endian.

use d2l_disk::bytes::{le, FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// "<<< Oracle VM VirtualBox Disk Image >>>\n", the pre-header's text (VDICore.h,
/// VDI_IMAGE_FILE_INFO).
pub(crate) const FILE_INFO: &[u8] = b"<<< Oracle VM VirtualBox Disk Image >>>\n";
/// The pre-header's signature (VDICore.h, VDI_IMAGE_SIGNATURE).
pub(crate) const SIGNATURE: u32 = crate::format::VDI_SIGNATURE;
/// Version 1.1 (VDICore.h, VDI_IMAGE_VERSION).
pub(crate) const VERSION: u32 = 0x0001_0001;
/// Version 1.x (VDICore.h, VDI_IMAGE_VERSION_MAJOR), in the version's high half.
pub(crate) const VERSION_MAJOR: u32 = 1;
/// Size of VDIHEADER1, the smallest version 1 header (the 1.1 header, VDIHEADER1PLUS, adds
/// the LCHS geometry after it, which reading does not need).
pub(crate) const HEADER1_SIZE: u32 = 0x180;
/// Size of VDIHEADER1PLUS, the version 1.1 header with LCHS geometry.
pub(crate) const HEADER_SIZE: u32 = 0x190;
/// Image type 1: normal, dynamically growing (VDICore.h, VDI_IMAGE_TYPE_NORMAL).
pub(crate) const TYPE_NORMAL: u32 = 1;
/// Image type 2: fixed, every block stored (VDI_IMAGE_TYPE_FIXED).
pub(crate) const TYPE_FIXED: u32 = 2;
/// Image type 3: undo, changes to a parent (VDI_IMAGE_TYPE_UNDO).
pub(crate) const TYPE_UNDO: u32 = 3;
/// Image type 4: differencing, changes to a parent (VDI_IMAGE_TYPE_DIFF).
pub(crate) const TYPE_DIFF: u32 = 4;
/// A map entry for a block never written (VDICore.h, VDI_IMAGE_BLOCK_FREE).
pub(crate) const BLOCK_FREE: u32 = u32::MAX;
/// A map entry for a block that reads as zeros (VDICore.h, VDI_IMAGE_BLOCK_ZERO).
pub(crate) const BLOCK_ZERO: u32 = 0xffff_fffe;
/// Sector size recorded in the geometries.
pub(crate) const SECTOR: u32 = 512;

/// The smallest block read: a sector.
pub const VDI_MIN_BLOCK_SIZE: u32 = 512;
/// The largest block read: 256 MiB (VirtualBox writes 1 MiB, its VDI_IMAGE_DEFAULT_BLOCK_SIZE).
pub const VDI_MAX_BLOCK_SIZE: u32 = 256 << 20;
/// The largest block map read: 16 Mi entries (64 MiB), 16 TiB in 1 MiB blocks.
pub const VDI_MAX_BLOCKS: u32 = 16 << 20;

/// The pre-header (VDICore.h, VDIPREHEADER): 72 bytes at 0.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct PreHeader {
    /// [`FILE_INFO`], zero padded.
    pub file_info: [u8; 64],
    /// [`SIGNATURE`].
    pub signature: le::U32,
    /// [`VERSION`].
    pub version: le::U32,
}
const _: () = assert!(size_of::<PreHeader>() == 72);

/// A disk geometry (VDICore.h, VDIDISKGEOMETRY).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Geometry {
    /// Cylinders (0: not calculated).
    pub cylinders: le::U32,
    /// Heads.
    pub heads: le::U32,
    /// Sectors per track.
    pub sectors: le::U32,
    /// Bytes per sector.
    pub sector_size: le::U32,
}
const _: () = assert!(size_of::<Geometry>() == 16);

/// The version 1.1 header (VDICore.h, VDIHEADER1PLUS), right after the pre-header. A
/// VDIHEADER1 is its first [`HEADER1_SIZE`] bytes.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Header {
    /// The header's size ([`HEADER_SIZE`]).
    pub header_size: le::U32,
    /// Normal, fixed, undo or differencing.
    pub image_type: le::U32,
    /// Image flags.
    pub flags: le::U32,
    /// A comment, NUL terminated.
    pub comment: [u8; 256],
    /// File offset of the block map.
    pub offset_blocks: le::U32,
    /// File offset of the data area.
    pub offset_data: le::U32,
    /// The legacy geometry.
    pub legacy_geometry: Geometry,
    /// Unused (was the BIOS translation mode).
    pub dummy: le::U32,
    /// The disk's size in bytes.
    pub disk_size: le::U64,
    /// Bytes per block.
    pub block_size: le::U32,
    /// Bytes of extra data before each block's data.
    pub block_extra: le::U32,
    /// Blocks in the disk (entries of the map).
    pub blocks: le::U32,
    /// Blocks stored in the data area.
    pub blocks_allocated: le::U32,
    /// The image's UUID.
    pub uuid_create: [u8; 16],
    /// The UUID of its last modification.
    pub uuid_modify: [u8; 16],
    /// The previous image's UUID in a chain of undo images.
    pub uuid_linkage: [u8; 16],
    /// The parent's modification UUID.
    pub uuid_parent_modify: [u8; 16],
    /// The LCHS geometry (version 1.1).
    pub lchs_geometry: Geometry,
}
const _: () = assert!(size_of::<Header>() == HEADER_SIZE as usize);
const _: () = assert!(std::mem::offset_of!(Header, lchs_geometry) == HEADER1_SIZE as usize);

/// Block size written: 1 MiB (the only one QEMU reads).
pub(crate) const BLOCK_SIZE: u32 = 1 << 20;
/// [`BLOCK_SIZE`] as a byte count.
pub(crate) const BLOCK: u64 = BLOCK_SIZE as u64;

/// A geometry "not calculated" but for the sector size.
const NO_GEOMETRY: Geometry = Geometry {
    cylinders: le::U32::ZERO,
    heads: le::U32::ZERO,
    sectors: le::U32::ZERO,
    sector_size: le::U32::new(SECTOR),
};

impl PreHeader {
    /// The pre-header of a version 1.1 image.
    pub fn new() -> PreHeader {
        let mut file_info = [0u8; 64];
        file_info[..FILE_INFO.len()].copy_from_slice(FILE_INFO);
        PreHeader {
            file_info,
            signature: SIGNATURE.into(),
            version: VERSION.into(),
        }
    }
}

impl Header {
    /// The header d2l writes: a normal (dynamic) image of 1 MiB blocks, no comment, no
    /// geometry, no parent.
    pub fn new(
        offset_blocks: u32,
        offset_data: u32,
        disk_size: u64,
        blocks: u32,
        blocks_allocated: u32,
        uuid_create: [u8; 16],
        uuid_modify: [u8; 16],
    ) -> Header {
        Header {
            header_size: HEADER_SIZE.into(),
            image_type: TYPE_NORMAL.into(),
            flags: 0.into(),
            comment: [0; 256],
            offset_blocks: offset_blocks.into(),
            offset_data: offset_data.into(),
            legacy_geometry: NO_GEOMETRY,
            dummy: 0.into(),
            disk_size: disk_size.into(),
            block_size: BLOCK_SIZE.into(),
            block_extra: 0.into(),
            blocks: blocks.into(),
            blocks_allocated: blocks_allocated.into(),
            uuid_create: uuid_le(&uuid_create),
            uuid_modify: uuid_le(&uuid_modify),
            uuid_linkage: [0; 16],
            uuid_parent_modify: [0; 16],
            lchs_geometry: NO_GEOMETRY,
        }
    }
}

/// A UUID in RTUUID's memory order: the first three fields little-endian, as Windows GUIDs.
fn uuid_le(uuid: &[u8; 16]) -> [u8; 16] {
    let mut out = *uuid;
    out[0..4].reverse();
    out[4..6].reverse();
    out[6..8].reverse();
    out
}

/// The first sector of an image: pre-header and header, zero padded.
pub(crate) fn encode(header: &Header) -> [u8; 512] {
    let mut b = [0u8; 512];
    let pre = size_of::<PreHeader>();
    b[..pre].copy_from_slice(PreHeader::new().as_bytes());
    b[pre..pre + size_of::<Header>()].copy_from_slice(header.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MIB;

    #[test]
    fn header_bytes_field_by_field() {
        let h = Header::new(
            512,
            0x1800,
            3 * MIB,
            3,
            2,
            [
                0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 9, 10, 11, 12, 13, 14, 15, 16,
            ],
            [1; 16],
        );
        let b = encode(&h);
        assert!(b.starts_with(b"<<< Oracle VM VirtualBox Disk Image >>>\n\0"));
        assert_eq!(
            &b[0x40..0x48],
            &[0x7f, 0x10, 0xda, 0xbe, 1, 0, 1, 0],
            "signature, v1.1"
        );
        assert_eq!(
            &b[0x48..0x50],
            &[0x90, 1, 0, 0, 1, 0, 0, 0],
            "header size, type normal"
        );
        assert_eq!(
            &b[0x154..0x15c],
            &[0, 2, 0, 0, 0, 0x18, 0, 0],
            "blocks in sector 1, data at 6 KiB"
        );
        assert_eq!(
            &b[0x168..0x16c],
            &[0, 2, 0, 0],
            "legacy geometry sector size"
        );
        assert_eq!(&b[0x170..0x178], &[0, 0, 0x30, 0, 0, 0, 0, 0], "disk size");
        assert_eq!(&b[0x178..0x17c], &[0, 0, 0x10, 0], "block size");
        assert_eq!(
            &b[0x180..0x188],
            &[3, 0, 0, 0, 2, 0, 0, 0],
            "blocks, allocated"
        );
        assert_eq!(
            &b[0x188..0x190],
            &[0x44, 0x33, 0x22, 0x11, 0x66, 0x55, 0x88, 0x77],
            "uuid"
        );
        assert!(
            b[0x1a8..0x1c8].iter().all(|&x| x == 0),
            "no linkage, no parent"
        );
        assert_eq!(&b[0x1d4..0x1d8], &[0, 2, 0, 0], "LCHS sector size");
        assert!(b[0x1d8..].iter().all(|&x| x == 0));
    }
}
