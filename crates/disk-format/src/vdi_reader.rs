//! Reading VirtualBox disk images (VDI 1.1, VDICore.h), dynamic or fixed, for `d2l convert`.
//!
//! The header gives the disk's size, the block size (any power of two), where the block
//! map and the data area are, and how many blocks the data area holds. The map has one
//! little-endian entry per guest block: the index of its block in the data area, or "free"
//! or "zero" (both read as zeros). A fixed image is the same with every block stored. Every
//! entry and every block is checked against the header and the file when the image is
//! opened. Differencing and undo images, whose data depends on a parent, are refused.

use std::fs::File;

use crate::format::{VDI_SIGNATURE, VDI_SIGNATURE_OFFSET};
use crate::image_file::{corrupt, le32, le64, ImageFile};
use crate::unit_map::{Unit, UnitMap};
use crate::vdi::{BLOCK_FREE, PREHEADER_SIZE, TYPE_NORMAL};
use crate::{Error, Format, Result};

/// Version 1.x (VDI_IMAGE_VERSION_MAJOR 1), in the version's high half.
const VERSION_MAJOR: u32 = 1;
/// Size of VDIHEADER1, the smallest version 1 header (the 1.1 header, VDIHEADER1PLUS, adds
/// the LCHS geometry after it, which reading does not need).
const HEADER1_SIZE: u32 = 0x180;
/// Image type 2: fixed, every block stored (VDI_IMAGE_TYPE_FIXED).
const TYPE_FIXED: u32 = 2;
/// Image type 3: undo, changes to a parent (VDI_IMAGE_TYPE_UNDO).
const TYPE_UNDO: u32 = 3;
/// Image type 4: differencing, changes to a parent (VDI_IMAGE_TYPE_DIFF).
const TYPE_DIFF: u32 = 4;
/// A map entry for a block that reads as zeros (VDI_IMAGE_BLOCK_ZERO).
const BLOCK_ZERO: u32 = 0xffff_fffe;
/// The smallest block: a sector.
const MIN_BLOCK: u32 = 512;
/// The largest map read: 16 Mi entries (64 MiB), 16 TiB in VirtualBox's 1 MiB blocks.
const MAX_BLOCKS: u32 = 16 << 20;

/// Offsets of the header fields read (VDICore.h, VDIPREHEADER then VDIHEADER1).
mod field {
    use super::PREHEADER_SIZE;
    pub const VERSION: usize = 0x44;
    const H: usize = PREHEADER_SIZE;
    pub const HEADER_SIZE: usize = H;
    pub const IMAGE_TYPE: usize = H + 4;
    pub const OFFSET_BLOCKS: usize = H + 268;
    pub const OFFSET_DATA: usize = H + 272;
    pub const DISK_SIZE: usize = H + 296;
    pub const BLOCK_SIZE: usize = H + 304;
    pub const BLOCK_EXTRA: usize = H + 308;
    pub const BLOCKS: usize = H + 312;
    pub const BLOCKS_ALLOCATED: usize = H + 316;
    /// The parent's UUID and its modification UUID: zero in a base image.
    pub const PARENT: std::ops::Range<usize> = H + 352..H + 384;
    /// Where the fields read end.
    pub const END: usize = H + super::HEADER1_SIZE as usize;
}

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
        let mut h = [0u8; field::END];
        if file.len() < h.len() as u64 {
            return Err(corrupt(format!(
                "VDI header truncated: the file is {} bytes, a header needs {}",
                file.len(),
                h.len()
            )));
        }
        file.read("the VDI header", &mut h, 0)?;
        debug_assert_eq!(le32(&h, VDI_SIGNATURE_OFFSET), VDI_SIGNATURE);
        let version = le32(&h, field::VERSION);
        if version >> 16 != VERSION_MAJOR {
            return Err(Error::Unsupported(format!(
                "VDI version {}.{} (d2l reads version 1.1)",
                version >> 16,
                version & 0xffff
            )));
        }
        let header_size = le32(&h, field::HEADER_SIZE);
        if header_size < HEADER1_SIZE {
            return Err(corrupt(format!(
                "VDI header: its size is {header_size} bytes, a version 1 header has at least {HEADER1_SIZE}"
            )));
        }
        match le32(&h, field::IMAGE_TYPE) {
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
        if h[field::PARENT].iter().any(|&b| b != 0) {
            return Err(Error::Unsupported(
                "the VDI names a parent image (a differencing disk); convert the whole chain with VirtualBox or qemu-img first"
                    .into(),
            ));
        }
        let size = le64(&h, field::DISK_SIZE);
        let block = le32(&h, field::BLOCK_SIZE);
        let extra = le32(&h, field::BLOCK_EXTRA);
        let blocks = le32(&h, field::BLOCKS);
        let allocated = le32(&h, field::BLOCKS_ALLOCATED);
        let map_offset = u64::from(le32(&h, field::OFFSET_BLOCKS));
        let data_offset = u64::from(le32(&h, field::OFFSET_DATA));
        if !block.is_power_of_two() || block < MIN_BLOCK {
            return Err(corrupt(format!(
                "VDI header: block size {block} is not a power of two of at least {MIN_BLOCK} bytes"
            )));
        }
        let block = u64::from(block);
        if u64::from(blocks) * block < size {
            return Err(corrupt(format!(
                "VDI header: {blocks} blocks of {block} bytes are less than the disk's {size} bytes"
            )));
        }
        if blocks > MAX_BLOCKS {
            return Err(Error::Unsupported(format!(
                "a VDI block map of {blocks} entries (d2l reads up to {MAX_BLOCKS})"
            )));
        }
        if allocated > blocks {
            return Err(corrupt(format!(
                "VDI header: {allocated} blocks allocated, more than the disk's {blocks}"
            )));
        }
        let header_end = (PREHEADER_SIZE as u64) + u64::from(header_size);
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
        let map = file.read_u32s(
            "the VDI block map",
            map_offset,
            u64::from(blocks),
            u32::from_le_bytes,
        )?;
        // Entries past the disk's size are never used.
        let used = size.div_ceil(block) as usize;
        for (index, &entry) in map[..used].iter().enumerate() {
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
        Ok(match self.map[index as usize] {
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
