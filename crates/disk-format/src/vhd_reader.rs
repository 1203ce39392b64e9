//! Reading Virtual Hard Disk images (VHD specification 1.0), fixed or dynamic, for
//! `d2l convert`.
//!
//! Every VHD ends with a 512-byte footer (cookie "conectix", big-endian fields, a checksum):
//! its current size is the virtual disk's size and its disk type says how the data is kept.
//! A fixed disk is the disk's bytes followed by the footer. A dynamic disk starts with a copy
//! of the footer, which points to a dynamic disk header (cookie "cxsparse", its own
//! checksum) giving the block size and the block allocation table (BAT): one sector number
//! per block, or "unused" (zeros). A stored block is its sector bitmap followed by its data.
//! Both checksums, the copy of the footer, the BAT's place and every block are checked when
//! the image is opened; a file cut short has lost its footer and says so. Differencing disks
//! (changes to a parent) are refused.
//!
//! The sector bitmaps are not consulted: as QEMU does, a stored block's bytes are read as
//! they are (writers fill the bitmap of every block they allocate, and a sector marked
//! absent holds zeros in a dynamic disk).

use std::fs::File;

use crate::format::VHD_COOKIE;
use crate::image_file::{be32, be64, corrupt, ImageFile};
use crate::read::DiskReader;
use crate::unit_map::{Unit, UnitMap};
use crate::vhd::{
    checksum, DYNAMIC_COOKIE, DYNAMIC_HEADER_SIZE, FORMAT_VERSION, HEADER_VERSION, SECTOR,
    TYPE_DYNAMIC, TYPE_FIXED, UNUSED,
};
use crate::{Error, Format, Result};

/// Disk type 4: differencing, changes to a parent disk.
const TYPE_DIFFERENCING: u32 = 4;
/// The largest BAT read: 16 Mi entries (64 MiB), 32 TiB in 2 MiB blocks.
const MAX_BAT_ENTRIES: u32 = 16 << 20;

/// Offsets of the footer fields read ("Hard Disk Footer Format").
mod footer {
    pub const VERSION: usize = 12;
    pub const DATA_OFFSET: usize = 16;
    pub const CURRENT_SIZE: usize = 48;
    pub const DISK_TYPE: usize = 60;
    pub const CHECKSUM: usize = 64;
}

/// Offsets of the dynamic disk header fields read ("Dynamic Disk Header Format").
mod header {
    pub const TABLE_OFFSET: usize = 16;
    pub const VERSION: usize = 24;
    pub const MAX_TABLE_ENTRIES: usize = 28;
    pub const BLOCK_SIZE: usize = 32;
    pub const CHECKSUM: usize = 36;
}

/// What a footer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Footer {
    /// Offset of the dynamic disk header.
    data_offset: u64,
    /// The virtual disk's size.
    size: u64,
    /// Fixed, dynamic or differencing.
    disk_type: u32,
}

/// Checks the `u32` checksum at `at` of `bytes`: the one's complement of the sum of all
/// bytes, the checksum's own counted as zero.
fn check_sum(bytes: &[u8], at: usize, what: &str) -> Result<()> {
    let stored = be32(bytes, at);
    let mut zeroed = bytes.to_vec();
    zeroed[at..at + 4].fill(0);
    let computed = checksum(&zeroed);
    if stored != computed {
        return Err(corrupt(format!(
            "{what}: its checksum is {stored:#010x}, its bytes sum to {computed:#010x}: it is damaged"
        )));
    }
    Ok(())
}

impl Footer {
    /// Parses and checks a footer; `what` says which one ("the VHD footer at 0x...").
    fn parse(b: &[u8; 512], what: &str) -> Result<Footer> {
        if b[..8] != VHD_COOKIE {
            return Err(corrupt(format!("{what} has no \"conectix\" cookie")));
        }
        check_sum(b, footer::CHECKSUM, what)?;
        let version = be32(b, footer::VERSION);
        if version >> 16 != FORMAT_VERSION >> 16 {
            return Err(Error::Unsupported(format!(
                "VHD format version {}.{} (d2l reads 1.0)",
                version >> 16,
                version & 0xffff
            )));
        }
        let disk_type = be32(b, footer::DISK_TYPE);
        match disk_type {
            TYPE_FIXED | TYPE_DYNAMIC => {}
            TYPE_DIFFERENCING => {
                return Err(Error::Unsupported(
                    "a differencing VHD: its data depends on a parent disk; convert the whole chain with qemu-img or Hyper-V first"
                        .into(),
                ))
            }
            other => {
                return Err(corrupt(format!(
                    "{what}: disk type {other} is not fixed (2), dynamic (3) or differencing (4)"
                )))
            }
        }
        Ok(Footer {
            data_offset: be64(b, footer::DATA_OFFSET),
            size: be64(b, footer::CURRENT_SIZE),
            disk_type,
        })
    }
}

/// Opens a VHD, fixed or dynamic, checking its footer(s), header and BAT.
pub(crate) fn open(file: File) -> Result<Box<dyn DiskReader>> {
    let file = ImageFile::new(file)?;
    let len = file.len();
    if len < SECTOR {
        return Err(corrupt(format!(
            "VHD footer truncated: the file is {len} bytes, a footer needs {SECTOR}"
        )));
    }
    let mut head = [0u8; SECTOR as usize];
    let mut tail = [0u8; SECTOR as usize];
    file.read("the VHD footer copy", &mut head, 0)?;
    let end = len - SECTOR;
    file.read("the VHD footer", &mut tail, end)?;
    if tail[..8] != VHD_COOKIE {
        // Only a dynamic disk has a copy at the start; without its footer it was cut short.
        let copy = Footer::parse(&head, "the VHD footer copy at 0")?;
        return Err(corrupt(format!(
            "the VHD footer is missing from the end of the file ({len:#x} bytes; the copy at 0 describes a disk of {} bytes): the image is truncated",
            copy.size
        )));
    }
    let footer = Footer::parse(&tail, &format!("the VHD footer at {end:#x}"))?;
    if footer.disk_type == TYPE_FIXED {
        if footer.size > end {
            return Err(corrupt(format!(
                "the fixed VHD's disk of {} bytes does not fit before its footer at {end:#x}: the image is truncated or damaged",
                footer.size
            )));
        }
        return Ok(Box::new(FixedVhd {
            file,
            size: footer.size,
        }));
    }
    let copy = Footer::parse(&head, "the VHD footer copy at 0")?;
    if copy != footer {
        return Err(corrupt(format!(
            "the VHD footer copy at 0 (disk type {}, {} bytes, header at {:#x}) differs from the footer at {end:#x} (disk type {}, {} bytes, header at {:#x})",
            copy.disk_type, copy.size, copy.data_offset, footer.disk_type, footer.size, footer.data_offset
        )));
    }
    Ok(Box::new(DynamicVhd::open(file, footer)?))
}

/// A fixed VHD: the disk's bytes, then the footer.
#[derive(Debug)]
struct FixedVhd {
    file: ImageFile,
    size: u64,
}

impl DiskReader for FixedVhd {
    fn format(&self) -> Format {
        Format::Vhd
    }

    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let inside = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        let (data, past_the_end) = buf.split_at_mut(inside);
        past_the_end.fill(0);
        if !data.is_empty() {
            self.file.read("the fixed VHD's data", data, offset)?;
        }
        Ok(())
    }

    fn data_ranges(&self, found: &mut dyn FnMut(u64, u64) -> Result<()>) -> Result<()> {
        crate::raw::data_ranges(self.file.file(), self.size, found)
    }
}

/// A dynamic VHD: blocks found through the BAT.
#[derive(Debug)]
struct DynamicVhd {
    file: ImageFile,
    size: u64,
    /// Bytes per block.
    block: u64,
    /// Bytes of a block's sector bitmap, before its data.
    bitmap: u64,
    /// The BAT's entries for the disk's blocks, checked: unused, or a block inside the file.
    bat: Vec<u32>,
}

impl DynamicVhd {
    fn open(file: ImageFile, footer: Footer) -> Result<Self> {
        let mut h = [0u8; DYNAMIC_HEADER_SIZE as usize];
        let at = footer.data_offset;
        file.read("the VHD dynamic disk header", &mut h, at)?;
        if h[..8] != *DYNAMIC_COOKIE {
            return Err(corrupt(format!(
                "the VHD dynamic disk header at {at:#x} has no \"cxsparse\" cookie"
            )));
        }
        check_sum(
            &h,
            header::CHECKSUM,
            &format!("the VHD dynamic disk header at {at:#x}"),
        )?;
        let version = be32(&h, header::VERSION);
        if version >> 16 != HEADER_VERSION >> 16 {
            return Err(Error::Unsupported(format!(
                "VHD dynamic disk header version {}.{} (d2l reads 1.0)",
                version >> 16,
                version & 0xffff
            )));
        }
        let block = be32(&h, header::BLOCK_SIZE);
        if !block.is_power_of_two() || u64::from(block) < SECTOR {
            return Err(corrupt(format!(
                "the VHD dynamic disk header at {at:#x}: block size {block} is not a power of two of at least {SECTOR} bytes"
            )));
        }
        let block = u64::from(block);
        let entries = be32(&h, header::MAX_TABLE_ENTRIES);
        let needed = footer.size.div_ceil(block);
        if u64::from(entries) < needed {
            return Err(corrupt(format!(
                "the VHD block allocation table has {entries} entries, a disk of {} bytes in blocks of {block} needs {needed}",
                footer.size
            )));
        }
        if entries > MAX_BAT_ENTRIES {
            return Err(Error::Unsupported(format!(
                "a VHD block allocation table of {entries} entries (d2l reads up to {MAX_BAT_ENTRIES})"
            )));
        }
        let bat_offset = be64(&h, header::TABLE_OFFSET);
        let mut bat = file.read_u32s(
            format_args!("the VHD block allocation table ({entries} entries)"),
            bat_offset,
            u64::from(entries),
            u32::from_be_bytes,
        )?;
        // Entries past the disk's size are never used.
        bat.truncate(needed as usize);
        // One bit per sector, padded to a sector.
        let bitmap = (block / SECTOR).div_ceil(8).next_multiple_of(SECTOR);
        for (index, &entry) in bat.iter().enumerate() {
            if entry != UNUSED {
                file.check(
                    format_args!("VHD block {index} (BAT entry sector {entry:#x})"),
                    u64::from(entry) * SECTOR,
                    bitmap + block,
                )?;
            }
        }
        Ok(DynamicVhd {
            file,
            size: footer.size,
            block,
            bitmap,
            bat,
        })
    }
}

impl UnitMap for DynamicVhd {
    fn image_format(&self) -> Format {
        Format::Vhd
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
        Ok(match self.bat[index as usize] {
            UNUSED => Unit::Zero,
            entry => Unit::Stored(u64::from(entry) * SECTOR + self.bitmap),
        })
    }

    fn stored_units(&self, stored: &mut dyn FnMut(u64) -> Result<()>) -> Result<()> {
        for (index, &entry) in self.bat.iter().enumerate() {
            if entry != UNUSED {
                stored(index as u64)?;
            }
        }
        Ok(())
    }
}
