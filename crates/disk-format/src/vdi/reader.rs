//! Reading VirtualBox disk images (VDI 1.1, VDICore.h), dynamic or fixed, for `d2l convert`.
//!
//! The header gives the disk's size, the block size (any power of two), where the block
//! map and the data area are, and how many blocks the data area holds. The map has one
//! little-endian entry per guest block: the index of its block in the data area, or "free"
//! or "zero" (both read as zeros). A fixed image is the same with every block stored. Every
//! entry and every block is checked against the header and the file when the image is
//! opened. Differencing and undo images, whose data depends on a parent, are refused.

use std::fs::File;

use d2l_disk::bytes::{le, FromBytes};

use super::header::{
    Header, PreHeader, BLOCK_FREE, BLOCK_ZERO, HEADER1_SIZE, SIGNATURE, TYPE_DIFF, TYPE_FIXED,
    TYPE_NORMAL, TYPE_UNDO, VDI_MAX_BLOCKS, VDI_MAX_BLOCK_SIZE, VDI_MIN_BLOCK_SIZE, VERSION_MAJOR,
};
use crate::image_file::{corrupt, ImageFile};
use crate::unit_map::{Unit, UnitMap};
use crate::{Error, Format, Result};

/// A VDI opened for reading.
#[derive(Debug)]
pub(crate) struct VdiReader {
    file: ImageFile,
    /// The virtual size.
    size: u64,
    /// Bytes per block.
    block: u64,
    /// File offset of data block 0's bytes (after its extra data).
    first_block: u64,
    /// Bytes from one data block to the next: the block and its extra data.
    stride: u64,
    /// The block map, checked: entries below the blocks allocated, or free or zero.
    map: Vec<u32>,
}

impl VdiReader {
    /// Opens and checks the header, the block map and where every block lies.
    pub fn open(file: File) -> Result<Self> {
        let file = ImageFile::new(file)?;
        // The pre-header and a version 1 header, without the 1.1 header's LCHS geometry.
        let needed = size_of::<PreHeader>() + HEADER1_SIZE as usize;
        if file.len() < needed as u64 {
            return Err(corrupt(format!(
                "VDI header truncated: the file is {} bytes, a header needs {needed}",
                file.len(),
            )));
        }
        let mut raw = [0u8; size_of::<PreHeader>() + size_of::<Header>()];
        file.read("the VDI header", &mut raw[..needed], 0)?;
        let (pre, rest) = PreHeader::read_from_prefix(&raw).expect("a pre-header's bytes");
        let (h, _) = Header::read_from_prefix(rest).expect("a header's bytes");
        debug_assert_eq!(pre.signature.get(), SIGNATURE);
        let version = pre.version.get();
        if version >> 16 != VERSION_MAJOR {
            return Err(Error::Unsupported(format!(
                "VDI version {}.{} (d2l reads version 1.1)",
                version >> 16,
                version & 0xffff
            )));
        }
        let header_size = h.header_size.get();
        if header_size < HEADER1_SIZE {
            return Err(corrupt(format!(
                "VDI header: its size is {header_size} bytes, a version 1 header has at least {HEADER1_SIZE}"
            )));
        }
        match h.image_type.get() {
            TYPE_NORMAL | TYPE_FIXED => {}
            kind @ (TYPE_UNDO | TYPE_DIFF) => {
                return Err(Error::Unsupported(format!(
                    "a {} VDI (image type {kind}): its data depends on a parent image; convert the whole chain with VirtualBox or qemu-img first",
                    if kind == TYPE_DIFF { "differencing" } else { "undo" }
                )))
            }
            other => {
                return Err(corrupt(format!(
                    "VDI header: image type {other} is not normal (1), fixed (2), undo (3) or differencing (4)"
                )))
            }
        }
        if h.uuid_linkage != [0; 16] || h.uuid_parent_modify != [0; 16] {
            return Err(Error::Unsupported(
                "the VDI names a parent image (a differencing disk); convert the whole chain with VirtualBox or qemu-img first"
                    .into(),
            ));
        }
        let size = h.disk_size.get();
        let block = h.block_size.get();
        let extra = h.block_extra.get();
        let blocks = h.blocks.get();
        let allocated = h.blocks_allocated.get();
        let map_offset = u64::from(h.offset_blocks.get());
        let data_offset = u64::from(h.offset_data.get());
        if !block.is_power_of_two() || !(VDI_MIN_BLOCK_SIZE..=VDI_MAX_BLOCK_SIZE).contains(&block) {
            return Err(corrupt(format!(
                "VDI header: block size {block} is not a power of two from {VDI_MIN_BLOCK_SIZE} to {VDI_MAX_BLOCK_SIZE} bytes"
            )));
        }
        let block = u64::from(block);
        if u64::from(blocks) * block < size {
            return Err(corrupt(format!(
                "VDI header: {blocks} blocks of {block} bytes are less than the disk's {size} bytes"
            )));
        }
        let needed_blocks = size.div_ceil(block);
        if u64::from(blocks) > needed_blocks {
            return Err(corrupt(format!(
                "VDI header: {blocks} blocks of {block} bytes, a disk of {size} bytes has {needed_blocks}"
            )));
        }
        if blocks > VDI_MAX_BLOCKS {
            return Err(Error::Unsupported(format!(
                "a VDI block map of {blocks} entries (d2l reads up to {VDI_MAX_BLOCKS})"
            )));
        }
        if extra > VDI_MAX_BLOCK_SIZE {
            return Err(corrupt(format!(
                "VDI header: {extra} bytes of extra data per block, more than {VDI_MAX_BLOCK_SIZE}"
            )));
        }
        if allocated > blocks {
            return Err(corrupt(format!(
                "VDI header: {allocated} blocks allocated, more than the disk's {blocks}"
            )));
        }
        let header_end = size_of::<PreHeader>() as u64 + u64::from(header_size);
        let map_end = map_offset + 4 * u64::from(blocks);
        if map_offset < header_end || map_end > data_offset {
            return Err(corrupt(format!(
                "VDI block map ({blocks} entries at {map_offset:#x}) overlaps the header (ending at {header_end:#x}) or the data area (at {data_offset:#x})"
            )));
        }
        let stride = block + u64::from(extra);
        let data_end = data_offset + u64::from(allocated) * stride;
        file.check(
            format_args!("the VDI data area of {allocated} blocks"),
            data_offset,
            data_end - data_offset,
        )?;
        let map = file.read_u32s::<le::U32>("the VDI block map", map_offset, u64::from(blocks))?;
        // Entries past the disk's size are never used.
        for (index, &entry) in map.iter().enumerate() {
            if entry != BLOCK_FREE && entry != BLOCK_ZERO && entry >= allocated {
                return Err(corrupt(format!(
                    "VDI block map entry {index} is {entry}, but the image stores {allocated} blocks"
                )));
            }
        }
        Ok(VdiReader {
            file,
            size,
            block,
            first_block: data_offset + u64::from(extra),
            stride,
            map,
        })
    }
}

impl UnitMap for VdiReader {
    fn image_format(&self) -> Format {
        Format::Vdi
    }

    fn file(&self) -> &ImageFile {
        &self.file
    }

    fn unit_size(&self) -> u64 {
        self.block
    }

    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn unit(&self, index: u64) -> Result<Unit> {
        let entry = usize::try_from(index).ok().and_then(|i| self.map.get(i));
        Ok(match *entry.expect("a unit inside the disk") {
            BLOCK_FREE | BLOCK_ZERO => Unit::Zero,
            // Below the blocks allocated, so inside the data area, checked at open.
            entry => Unit::Stored(self.first_block + u64::from(entry) * self.stride),
        })
    }

    fn stored_units(&self, stored: &mut dyn FnMut(u64) -> Result<()>) -> Result<()> {
        for (index, &entry) in self.map.iter().enumerate() {
            if entry != BLOCK_FREE && entry != BLOCK_ZERO {
                stored(index as u64)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::vdi::header::encode;

    /// A VDI of `blocks` blocks of `block` bytes, one of them stored (map entries 0), the map
    /// at 512 and the data after it; `edit` changes the header first.
    fn image(block: u32, blocks: u32, edit: impl FnOnce(&mut Header)) -> File {
        let map_bytes = 4 * u64::from(blocks);
        let data = (512 + map_bytes).next_multiple_of(512);
        let mut h = Header::new(
            512,
            u32::try_from(data).unwrap(),
            u64::from(blocks) * u64::from(block),
            blocks,
            1,
            [1; 16],
            [2; 16],
        );
        h.block_size = block.into();
        edit(&mut h);
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(&encode(&h), 0).unwrap();
        file.set_len(data + u64::from(block)).unwrap();
        file
    }

    fn open(file: File) -> String {
        match VdiReader::open(file) {
            Ok(_) => String::new(),
            Err(e) => {
                let message = e.to_string();
                assert!(!message.contains('\n'), "one line: {message}");
                message
            }
        }
    }

    #[test]
    fn block_sizes_from_512_bytes_to_256_mib() {
        assert_eq!(open(image(VDI_MIN_BLOCK_SIZE, 3, |_| {})), "");
        assert_eq!(open(image(VDI_MAX_BLOCK_SIZE, 1, |_| {})), "");
        for bad in [VDI_MIN_BLOCK_SIZE / 2, VDI_MAX_BLOCK_SIZE * 2] {
            assert_eq!(
                open(image(bad, 1, |_| {})),
                format!(
                    "VDI header: block size {bad} is not a power of two from 512 to 268435456 bytes"
                )
            );
        }
    }

    #[test]
    fn block_maps_up_to_16_mi_entries_that_match_the_disk() {
        assert_eq!(open(image(512, VDI_MAX_BLOCKS, |_| {})), "");
        assert_eq!(
            open(image(512, VDI_MAX_BLOCKS + 1, |_| {})),
            "a VDI block map of 16777217 entries (d2l reads up to 16777216)"
        );
        assert_eq!(
            open(image(512, 4, |h| h.disk_size = 1536.into())),
            "VDI header: 4 blocks of 512 bytes, a disk of 1536 bytes has 3"
        );
    }

    #[test]
    fn the_map_lies_between_the_header_and_the_data() {
        assert_eq!(
            open(image(512, 4, |h| h.offset_blocks = 256.into())),
            "VDI block map (4 entries at 0x100) overlaps the header (ending at 0x1d8) or the data area (at 0x400)"
        );
    }
}
