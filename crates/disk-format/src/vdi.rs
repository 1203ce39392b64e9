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

use std::fs::File;
use std::os::unix::fs::FileExt;

use d2l_disk::VirtualDisk;

use crate::cluster_map::{ClusterMap, SlotLayout};
use crate::{Error, ImageWriter, Result, WriteOptions, MIB};

/// "<<< Oracle VM VirtualBox Disk Image >>>\n", the pre-header's text (VDI_IMAGE_FILE_INFO).
const FILE_INFO: &[u8] = b"<<< Oracle VM VirtualBox Disk Image >>>\n";
/// Version 1.1 (VDI_IMAGE_VERSION).
const VERSION: u32 = 0x0001_0001;
/// Size of the pre-header: 64 bytes of text, signature, version.
pub(crate) const PREHEADER_SIZE: usize = 72;
/// Size of VDIHEADER1PLUS, the version 1.1 header with LCHS geometry.
const HEADER_SIZE: u32 = 0x190;
/// Image type 1: normal, dynamically growing (VDI_IMAGE_TYPE_NORMAL).
pub(crate) const TYPE_NORMAL: u32 = 1;
/// Block size (the only one QEMU reads).
const BLOCK: u64 = MIB;
/// Alignment of the block map and the data area: a sector (see the module documentation).
const DATA_ALIGN: u64 = SECTOR as u64;
/// Offset of the block map: the headers rounded up to [`DATA_ALIGN`].
const BLOCKS_OFFSET: u64 =
    (PREHEADER_SIZE as u64 + HEADER_SIZE as u64).next_multiple_of(DATA_ALIGN);
/// The disk size the map has room for when the size is not known in advance.
const UNKNOWN_SIZE_RESERVE: u64 = 64 << 30;
/// A map entry for a block never written (VDI_IMAGE_BLOCK_FREE).
pub(crate) const BLOCK_FREE: u32 = u32::MAX;
/// Sector size recorded in the geometries.
const SECTOR: u32 = 512;
/// The largest disk written (VirtualBox's limit for VDI is 2 TiB in older releases).
const MAX_SIZE: u64 = 2 << 40;

/// Writes a dynamic VDI.
#[derive(Debug)]
pub(crate) struct VdiWriter {
    map: ClusterMap,
    identity: [u8; 16],
}

impl VdiWriter {
    pub fn new(file: File, options: &WriteOptions) -> Result<Self> {
        let known = options
            .max_virtual_size
            .map(|size| size.next_multiple_of(MIB));
        let max = known.unwrap_or(MAX_SIZE);
        Error::check_size("VDI", max, MAX_SIZE)?;
        let layout = SlotLayout {
            unit: BLOCK,
            first: data_offset(known.unwrap_or(UNKNOWN_SIZE_RESERVE) / BLOCK),
            stride: BLOCK,
            data: 0,
        };
        Ok(VdiWriter {
            map: ClusterMap::new(file, layout, "VDI", max),
            identity: options.identity,
        })
    }
}

/// Where the data area starts for a map of `blocks` entries (as VirtualBox's vdiInitHeader
/// computes it, with [`DATA_ALIGN`]).
fn data_offset(blocks: u64) -> u64 {
    (BLOCKS_OFFSET + blocks * 4).next_multiple_of(DATA_ALIGN)
}

/// The header fields that vary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    /// Disk size in bytes.
    disk_size: u64,
    /// Blocks in the disk.
    blocks: u32,
    /// Blocks stored.
    allocated: u32,
    /// Offset of the data area.
    data_offset: u32,
    /// The image's UUID.
    uuid_create: [u8; 16],
    /// The UUID of its last modification.
    uuid_modify: [u8; 16],
}

impl Header {
    /// Pre-header and header, little-endian (VDICore.h: VDIPREHEADER, VDIHEADER1PLUS).
    fn encode(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, FILE_INFO);
        put(0x40, &crate::format::VDI_SIGNATURE.to_le_bytes());
        put(0x44, &VERSION.to_le_bytes());
        let h = PREHEADER_SIZE;
        put(h, &HEADER_SIZE.to_le_bytes());
        put(h + 4, &TYPE_NORMAL.to_le_bytes());
        // h + 8: flags 0; h + 12: 256 bytes of comment, empty.
        put(h + 268, &(BLOCKS_OFFSET as u32).to_le_bytes());
        put(h + 272, &self.data_offset.to_le_bytes());
        // h + 276: legacy geometry, "not calculated" but for the sector size.
        put(h + 288, &SECTOR.to_le_bytes());
        // h + 292: unused (was the BIOS translation mode).
        put(h + 296, &self.disk_size.to_le_bytes());
        put(h + 304, &(BLOCK as u32).to_le_bytes());
        // h + 308: no extra data per block.
        put(h + 312, &self.blocks.to_le_bytes());
        put(h + 316, &self.allocated.to_le_bytes());
        put(h + 320, &uuid_le(&self.uuid_create));
        put(h + 336, &uuid_le(&self.uuid_modify));
        // h + 352: linkage and parent UUIDs, none (a base image).
        // h + 384: LCHS geometry, "not calculated" but for the sector size.
        put(h + 396, &SECTOR.to_le_bytes());
        b
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

impl ImageWriter for VdiWriter {
    fn as_disk(&self) -> &dyn VirtualDisk {
        &self.map
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let mut alloc = self.map.into_allocation()?;
        let size = alloc.size.next_multiple_of(MIB);
        let blocks = size / BLOCK;
        let data_offset = data_offset(blocks);
        if data_offset > alloc.layout.first {
            // Whole blocks move, so the data area starts up to a block later than needed.
            let blocks = (data_offset - alloc.layout.first).div_ceil(BLOCK);
            alloc.shift_start(blocks as u32)?;
        }
        let map: Vec<u8> = (0..blocks)
            .flat_map(|block| alloc.slot(block).unwrap_or(BLOCK_FREE).to_le_bytes())
            .collect();
        alloc
            .file
            .write_all_at(&map, BLOCKS_OFFSET)
            .map_err(Error::io("writing the VDI block map", BLOCKS_OFFSET))?;
        let mut uuid_modify = crate::identity(&self.identity);
        uuid_modify[15] ^= 1;
        let header = Header {
            disk_size: size,
            blocks: blocks as u32,
            allocated: alloc.slots,
            data_offset: alloc.layout.first as u32,
            uuid_create: self.identity,
            uuid_modify,
        };
        alloc
            .file
            .write_all_at(&header.encode(), 0)
            .map_err(Error::io("writing the VDI header", 0))?;
        let end = alloc.layout.first + u64::from(alloc.slots) * BLOCK;
        alloc
            .file
            .set_len(end)
            .map_err(Error::io("sizing the image", end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_field_by_field() {
        let h = Header {
            disk_size: 3 * MIB,
            blocks: 3,
            allocated: 2,
            data_offset: 0x1800,
            uuid_create: [
                0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 9, 10, 11, 12, 13, 14, 15, 16,
            ],
            uuid_modify: [1; 16],
        };
        let b = h.encode();
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

    #[test]
    fn data_area_follows_the_map_on_a_sector_boundary() {
        assert_eq!(BLOCKS_OFFSET, 512);
        assert_eq!(
            data_offset(1357),
            0x1800,
            "what qemu-img writes for 1357 MiB"
        );
        assert_eq!(data_offset(128), 1024, "one sector of map");
        assert_eq!(data_offset(129), 1536);
        assert_eq!(
            data_offset(UNKNOWN_SIZE_RESERVE / BLOCK),
            512 + 256 * 1024,
            "an unknown size starts with room for 64 GiB"
        );
        assert_eq!(data_offset(MAX_SIZE / BLOCK), 512 + 8 * MIB, "2 TiB");
    }
}
