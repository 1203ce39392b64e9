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

use d2l_disk::bytes::FromBytes;

use super::header::{
    BatEntry, DynamicHeader, Footer as RawFooter, COOKIE, DYNAMIC_COOKIE, FORMAT_VERSION,
    HEADER_VERSION, SECTOR, TYPE_DIFFERENCING, TYPE_DYNAMIC, TYPE_FIXED, UNUSED,
    VHD_MAX_BAT_ENTRIES, VHD_MAX_BLOCK_SIZE, VHD_MIN_BLOCK_SIZE,
};
use crate::image_file::{corrupt, ImageFile};
use crate::read::DiskReader;
use crate::unit_map::{Unit, UnitMap};
use crate::usize_from;
use crate::{Error, Format, Result};

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

/// Checks a structure's checksum: `stored` against `computed`.
fn check_sum(stored: u32, computed: u32, what: &str) -> Result<()> {
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
        let (raw, _) = RawFooter::read_from_prefix(b).expect("a footer's bytes");
        if raw.cookie != COOKIE {
            return Err(corrupt(format!("{what} has no \"conectix\" cookie")));
        }
        check_sum(raw.checksum.get(), raw.computed_checksum(), what)?;
        let version = raw.version.get();
        if version >> 16 != FORMAT_VERSION >> 16 {
            return Err(Error::Unsupported(format!(
                "VHD format version {}.{} (d2l reads 1.0)",
                version >> 16,
                version & 0xffff
            )));
        }
        let disk_type = raw.disk_type.get();
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
            data_offset: raw.data_offset.get(),
            size: raw.current_size.get(),
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
    let mut head = [0u8; usize_from(SECTOR)];
    let mut tail = [0u8; usize_from(SECTOR)];
    file.read("the VHD footer copy", &mut head, 0)?;
    let end = len - SECTOR;
    file.read("the VHD footer", &mut tail, end)?;
    if tail[..8] != COOKIE {
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
        // At most `buf.len()`: fits a usize.
        #[allow(clippy::cast_possible_truncation)]
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
        let mut raw = [0u8; size_of::<DynamicHeader>()];
        let at = footer.data_offset;
        file.read("the VHD dynamic disk header", &mut raw, at)?;
        let (h, _) = DynamicHeader::read_from_prefix(&raw).expect("a header's bytes");
        if h.cookie != DYNAMIC_COOKIE {
            return Err(corrupt(format!(
                "the VHD dynamic disk header at {at:#x} has no \"cxsparse\" cookie"
            )));
        }
        check_sum(
            h.checksum.get(),
            h.computed_checksum(),
            &format!("the VHD dynamic disk header at {at:#x}"),
        )?;
        let version = h.header_version.get();
        if version >> 16 != HEADER_VERSION >> 16 {
            return Err(Error::Unsupported(format!(
                "VHD dynamic disk header version {}.{} (d2l reads 1.0)",
                version >> 16,
                version & 0xffff
            )));
        }
        let block = h.block_size.get();
        if !block.is_power_of_two() || !(VHD_MIN_BLOCK_SIZE..=VHD_MAX_BLOCK_SIZE).contains(&block) {
            return Err(corrupt(format!(
                "the VHD dynamic disk header at {at:#x}: block size {block} is not a power of two from {VHD_MIN_BLOCK_SIZE} to {VHD_MAX_BLOCK_SIZE} bytes"
            )));
        }
        let block = u64::from(block);
        let entries = h.max_table_entries.get();
        let needed = footer.size.div_ceil(block);
        if u64::from(entries) < needed {
            return Err(corrupt(format!(
                "the VHD block allocation table has {entries} entries, a disk of {} bytes in blocks of {block} needs {needed}",
                footer.size
            )));
        }
        if entries > VHD_MAX_BAT_ENTRIES {
            return Err(Error::Unsupported(format!(
                "a VHD block allocation table of {entries} entries (d2l reads up to {VHD_MAX_BAT_ENTRIES})"
            )));
        }
        let bat_offset = h.table_offset.get();
        let mut bat = file.read_u32s::<BatEntry>(
            format_args!("the VHD block allocation table ({entries} entries)"),
            bat_offset,
            u64::from(entries),
        )?;
        // The metadata no block may overlap: footers, header, table.
        let footer_at = file.len() - SECTOR;
        let regions = [
            (0, SECTOR, "footer copy"),
            (
                at,
                at + size_of::<DynamicHeader>() as u64,
                "dynamic disk header",
            ),
            (
                bat_offset,
                bat_offset + 4 * u64::from(entries),
                "block allocation table",
            ),
            (footer_at, file.len(), "footer"),
        ];
        let overlap = |start: u64, end: u64| {
            regions
                .iter()
                .find(|&&(s, e, _)| start < e && s < end)
                .map(|&(s, e, name)| format!("the VHD {name} ({s:#x}..{e:#x})"))
        };
        // The table first: the header is where the footer says.
        for i in [2, 1] {
            let (start, end, what) = regions[i];
            let other = regions
                .iter()
                .enumerate()
                .find(|&(j, &(s, e, _))| j != i && start < e && s < end);
            if let Some((_, &(s, e, name))) = other {
                return Err(corrupt(format!(
                    "the VHD {what} ({start:#x}..{end:#x}) overlaps the {name} ({s:#x}..{e:#x})"
                )));
            }
        }
        // Entries past the disk's size are never used.
        bat.truncate(usize::try_from(needed).expect("at most the BAT's length"));
        // One bit per sector, padded to a sector.
        let bitmap = (block / SECTOR).div_ceil(8).next_multiple_of(SECTOR);
        for (index, &entry) in bat.iter().enumerate() {
            if entry != UNUSED {
                let start = u64::from(entry) * SECTOR;
                file.check(
                    format_args!("VHD block {index} (BAT entry sector {entry:#x})"),
                    start,
                    bitmap + block,
                )?;
                if let Some(name) = overlap(start, start + bitmap + block) {
                    return Err(corrupt(format!(
                        "VHD block {index} (BAT entry sector {entry:#x}) overlaps {name}"
                    )));
                }
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
        let entry = usize::try_from(index).ok().and_then(|i| self.bat.get(i));
        Ok(match *entry.expect("a unit inside the disk") {
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use d2l_disk::bytes::{FromZeros, IntoBytes};

    use super::*;
    use crate::vhd::header::DynamicHeader;

    /// A dynamic VHD of one block of `block` bytes, stored: footer copy, dynamic header at
    /// 512, a BAT of `entries` at 1536 (all but the first unused), the block (bitmap and
    /// data), the footer. `edit` changes the dynamic header (its checksum is set after).
    fn image(block: u32, entries: u32, edit: impl FnOnce(&mut DynamicHeader)) -> File {
        let bat_bytes = (4 * u64::from(entries)).next_multiple_of(SECTOR);
        let block_at = 1536 + bat_bytes;
        let bitmap = (u64::from(block) / SECTOR)
            .div_ceil(8)
            .next_multiple_of(SECTOR);
        let end = block_at + bitmap + u64::from(block);
        let mut footer = RawFooter::new_zeroed();
        footer.cookie = COOKIE;
        footer.version = FORMAT_VERSION.into();
        footer.data_offset = SECTOR.into();
        footer.current_size = u64::from(block).into();
        footer.disk_type = TYPE_DYNAMIC.into();
        let footer = footer.seal();
        let mut header = DynamicHeader::new(1536, entries, block);
        edit(&mut header);
        header.checksum = header.computed_checksum().into();
        let mut bat = vec![BatEntry::new(UNUSED); usize::try_from(entries).unwrap()];
        if let Some(first) = bat.first_mut() {
            *first = u32::try_from(block_at / SECTOR).unwrap().into();
        }
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(footer.as_bytes(), 0).unwrap();
        file.write_all_at(header.as_bytes(), SECTOR).unwrap();
        file.write_all_at(bat.as_bytes(), 1536).unwrap();
        file.write_all_at(footer.as_bytes(), end).unwrap();
        file
    }

    fn open_error(file: File) -> String {
        match open(file) {
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
        assert_eq!(open_error(image(VHD_MIN_BLOCK_SIZE, 1, |_| {})), "");
        assert_eq!(open_error(image(VHD_MAX_BLOCK_SIZE, 1, |_| {})), "");
        for bad in [VHD_MIN_BLOCK_SIZE / 2, VHD_MAX_BLOCK_SIZE * 2] {
            assert_eq!(
                open_error(image(bad, 1, |_| {})),
                format!("the VHD dynamic disk header at 0x200: block size {bad} is not a power of two from 512 to 268435456 bytes")
            );
        }
    }

    #[test]
    fn block_allocation_tables_up_to_16_mi_entries() {
        assert_eq!(open_error(image(512, VHD_MAX_BAT_ENTRIES, |_| {})), "");
        assert_eq!(
            open_error(image(512, VHD_MAX_BAT_ENTRIES + 1, |_| {})),
            "a VHD block allocation table of 16777217 entries (d2l reads up to 16777216)"
        );
    }

    #[test]
    fn tables_and_blocks_do_not_overlap_the_headers() {
        assert_eq!(
            open_error(image(512, 1, |h| h.table_offset = 1024.into())),
            "the VHD block allocation table (0x400..0x404) overlaps the dynamic disk header (0x200..0x600)"
        );
        // The BAT's one entry pointing at the dynamic header.
        let file = image(512, 1, |_| {});
        file.write_all_at(&1u32.to_be_bytes(), 1536).unwrap();
        assert_eq!(
            open_error(file),
            "VHD block 0 (BAT entry sector 0x1) overlaps the VHD dynamic disk header (0x200..0x600)"
        );
    }
}
