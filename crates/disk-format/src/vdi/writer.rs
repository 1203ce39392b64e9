//! Writing dynamic VDIs.

use std::fs::File;
use std::os::unix::fs::FileExt;

use d2l_disk::VirtualDisk;

use d2l_disk::bytes::{le, IntoBytes};

use super::header::{encode, Header, PreHeader, BLOCK, BLOCK_FREE, SECTOR};
use crate::cluster_map::{ClusterMap, SlotLayout};
use crate::{Error, ImageWriter, Result, WriteOptions, MIB};

/// Alignment of the block map and the data area: a sector (see the module documentation).
const DATA_ALIGN: u64 = SECTOR as u64;
/// Offset of the block map: the headers rounded up to [`DATA_ALIGN`].
const BLOCKS_OFFSET: u64 =
    ((size_of::<PreHeader>() + size_of::<Header>()) as u64).next_multiple_of(DATA_ALIGN);
/// The disk size the map has room for when the size is not known in advance.
const UNKNOWN_SIZE_RESERVE: u64 = 64 << 30;
/// The largest disk written (VirtualBox's limit for VDI is 2 TiB in older releases).
const MAX_SIZE: u64 = 2 << 40;

/// The error for a disk whose map or data offset a VDI header cannot hold.
fn too_large(size: u64) -> Error {
    Error::TooLarge {
        format: "VDI",
        size,
        max: MAX_SIZE,
    }
}

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
            alloc.shift_start(u32::try_from(blocks).map_err(|_| too_large(size))?)?;
        }
        let map: Vec<le::U32> = (0..blocks)
            .map(|block| alloc.slot(block).unwrap_or(BLOCK_FREE).into())
            .collect();
        alloc
            .file
            .write_all_at(map.as_bytes(), BLOCKS_OFFSET)
            .map_err(Error::output("writing the VDI block map", BLOCKS_OFFSET))?;
        let mut uuid_modify = crate::identity(&self.identity);
        uuid_modify[15] ^= 1;
        let header = Header::new(
            u32::try_from(BLOCKS_OFFSET).expect("512"),
            u32::try_from(alloc.layout.first).map_err(|_| too_large(size))?,
            size,
            u32::try_from(blocks).map_err(|_| too_large(size))?,
            alloc.slots,
            self.identity,
            uuid_modify,
        );
        alloc
            .file
            .write_all_at(&encode(&header), 0)
            .map_err(Error::output("writing the VDI header", 0))?;
        let end = alloc.layout.first + u64::from(alloc.slots) * BLOCK;
        alloc
            .file
            .set_len(end)
            .map_err(Error::output("sizing the image", end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
