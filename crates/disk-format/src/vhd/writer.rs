//! Writing dynamic and fixed VHDs.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use d2l_disk::bytes::{FromZeros, IntoBytes};
use d2l_disk::VirtualDisk;

use super::header::{
    BatEntry, DynamicHeader, Footer, COOKIE, FEATURES, FORMAT_VERSION, NO_DATA_OFFSET, SECTOR,
    TYPE_DYNAMIC, TYPE_FIXED, UNUSED,
};

use crate::chs::vhd_geometry;
use crate::cluster_map::{ClusterMap, SlotLayout};
use crate::raw::RawWriter;
use crate::usize_from;
use crate::{Error, ImageWriter, Result, WriteOptions, MIB};

/// Size of the dynamic disk header.
const DYNAMIC_HEADER_SIZE: u64 = size_of::<DynamicHeader>() as u64;
/// Offset of the BAT: after the footer copy and the dynamic header.
const BAT_OFFSET: u64 = SECTOR + DYNAMIC_HEADER_SIZE;
/// Block size: 2 MiB, the specification's default.
const BLOCK_SIZE: u32 = 2 << 20;
/// [`BLOCK_SIZE`] in bytes.
const BLOCK: u64 = BLOCK_SIZE as u64;
/// Bytes of a block's sector bitmap: one bit per sector, padded to a sector.
const BITMAP: u64 = (BLOCK / SECTOR / 8).next_multiple_of(SECTOR);
/// The largest VHD: 2040 GiB (QEMU's VHD_MAX_SECTORS; the format's 32-bit sector counts).
const MAX_SIZE: u64 = 0xff00_0000 * SECTOR;
/// Creator application: "win " (Hyper-V); see the module documentation.
const CREATOR_APP: &[u8; 4] = b"win ";
/// Creator version: 10.0, as Hyper-V on Windows 10 and Server 2016+ writes.
const CREATOR_VERSION: u32 = 0x000a_0000;
/// Creator host OS: "Wi2k" (Windows).
const CREATOR_OS: &[u8; 4] = b"Wi2k";
/// VHD timestamps count seconds from 2000-01-01 00:00:00 UTC.
const EPOCH_2000: u64 = 946_684_800;

/// The footer of a disk of `size` bytes, dynamic with its header at `dynamic_header`, or
/// fixed; checksum set.
fn footer(options: &WriteOptions, size: u64, dynamic_header: Option<u64>) -> Footer {
    let (cylinders, heads, sectors) = vhd_geometry(size / SECTOR);
    let mut footer = Footer::new_zeroed();
    footer.cookie = COOKIE;
    footer.features = FEATURES.into();
    footer.version = FORMAT_VERSION.into();
    footer.data_offset = dynamic_header.unwrap_or(NO_DATA_OFFSET).into();
    footer.timestamp = u32::try_from(options.timestamp.saturating_sub(EPOCH_2000))
        .unwrap_or(u32::MAX)
        .into();
    footer.creator_app = *CREATOR_APP;
    footer.creator_version = CREATOR_VERSION.into();
    footer.creator_os = *CREATOR_OS;
    footer.original_size = size.into();
    footer.current_size = size.into();
    footer.cylinders = cylinders.into();
    footer.heads = heads;
    footer.sectors = sectors;
    footer.disk_type = if dynamic_header.is_some() {
        TYPE_DYNAMIC
    } else {
        TYPE_FIXED
    }
    .into();
    footer.unique_id = options.identity;
    footer.seal()
}

/// Checks that a disk of `size` bytes fits a VHD.
fn check_size(size: u64) -> Result<()> {
    Error::check_size("VHD", size, MAX_SIZE)
}

/// Writes a dynamic VHD.
#[derive(Debug)]
pub(crate) struct DynamicWriter {
    map: ClusterMap,
    options: WriteOptions,
    /// Whether the BAT has its room after the header (the size was known).
    bat_in_front: bool,
}

impl DynamicWriter {
    pub fn new(file: File, options: &WriteOptions) -> Result<Self> {
        let known = options
            .max_virtual_size
            .map(|size| size.next_multiple_of(MIB));
        let max = known.unwrap_or(MAX_SIZE);
        check_size(max)?;
        let bat_bytes = known.map_or(0, |size| bat_bytes(size.div_ceil(BLOCK)));
        let layout = SlotLayout {
            unit: BLOCK,
            first: BAT_OFFSET + bat_bytes,
            stride: BITMAP + BLOCK,
            data: BITMAP,
        };
        Ok(DynamicWriter {
            map: ClusterMap::new(file, layout, "VHD", max),
            options: options.clone(),
            bat_in_front: known.is_some(),
        })
    }
}

/// Bytes of a BAT of `entries`, padded to a sector.
fn bat_bytes(entries: u64) -> u64 {
    (entries * 4).next_multiple_of(SECTOR)
}

impl ImageWriter for DynamicWriter {
    fn as_disk(&self) -> &dyn VirtualDisk {
        &self.map
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let alloc = self.map.into_allocation()?;
        let size = alloc.size.next_multiple_of(MIB);
        check_size(size)?;
        let entries = size.div_ceil(BLOCK);
        let file = &alloc.file;
        let sector = |slot| {
            u32::try_from(alloc.layout.slot_offset(slot) / SECTOR).map_err(|_| Error::TooLarge {
                format: "VHD",
                size,
                max: MAX_SIZE,
            })
        };
        let bat: Vec<BatEntry> = (0..entries)
            .map(|block| {
                alloc
                    .slot(block)
                    .map_or(Ok(UNUSED), sector)
                    .map(BatEntry::new)
            })
            .collect::<Result<_>>()?;
        let bat_offset = if self.bat_in_front {
            BAT_OFFSET
        } else {
            alloc.data_end()
        };
        file.write_all_at(bat.as_bytes(), bat_offset)
            .map_err(Error::output(
                "writing the VHD block allocation table",
                bat_offset,
            ))?;
        // Every sector of a stored block is marked present: its unwritten parts are holes
        // that read as zeros.
        let bitmap = [0xffu8; usize_from(BITMAP)];
        for slot in 0..alloc.slots {
            let at = alloc.layout.slot_offset(slot);
            file.write_all_at(&bitmap, at)
                .map_err(Error::output("writing a VHD block bitmap", at))?;
        }
        let footer = footer(&self.options, size, Some(SECTOR));
        let footer = footer.as_bytes();
        file.write_all_at(footer, 0)
            .map_err(Error::output("writing the VHD footer copy", 0))?;
        let entries = u32::try_from(entries).expect("a disk below MAX_SIZE has fewer blocks");
        let header = DynamicHeader::new(bat_offset, entries, BLOCK_SIZE);
        file.write_all_at(header.as_bytes(), SECTOR)
            .map_err(Error::output("writing the VHD dynamic header", SECTOR))?;
        let end = if self.bat_in_front {
            alloc
                .data_end()
                .max(BAT_OFFSET + bat_bytes(u64::from(entries)))
        } else {
            bat_offset + bat_bytes(u64::from(entries))
        };
        file.write_all_at(footer, end)
            .map_err(Error::output("writing the VHD footer", end))?;
        file.set_len(end + SECTOR)
            .map_err(Error::output("sizing the image", end + SECTOR))
    }
}

/// Writes a fixed VHD: a raw disk, then the footer.
#[derive(Debug)]
pub(crate) struct FixedWriter {
    raw: RawWriter,
    file: File,
    options: WriteOptions,
}

impl FixedWriter {
    pub fn new(file: File, options: &WriteOptions) -> Result<Self> {
        let raw_file = file
            .try_clone()
            .map_err(Error::output("duplicating the output's descriptor", 0))?;
        Ok(FixedWriter {
            raw: RawWriter::new(raw_file),
            file,
            options: options.clone(),
        })
    }
}

impl VirtualDisk for FixedWriter {
    fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        check_size(offset + bytes.len() as u64)?;
        self.raw.write_at(bytes, offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.raw.read_at(buf, offset)
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.raw.discard(offset, len)
    }

    fn virtual_size(&self) -> io::Result<u64> {
        self.raw.virtual_size()
    }

    fn grow_to(&self, len: u64) -> io::Result<()> {
        check_size(len)?;
        self.raw.grow_to(len)
    }

    fn copy_from(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        check_size(offset + len)?;
        self.raw.copy_from(src, src_offset, len, offset)
    }
}

impl ImageWriter for FixedWriter {
    fn as_disk(&self) -> &dyn VirtualDisk {
        self
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let len = self
            .raw
            .virtual_size()
            .map_err(Error::output("sizing the image", 0))?;
        let size = len.next_multiple_of(MIB);
        check_size(size)?;
        let footer = footer(&self.options, size, None);
        self.file
            .write_all_at(footer.as_bytes(), size)
            .map_err(Error::output("writing the VHD footer", size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_bytes_field_by_field() {
        let mut options = WriteOptions::new(crate::Format::Vhd, "x.vhd");
        options.identity = [7; 16];
        options.timestamp = EPOCH_2000 + 0x0102_0304;
        let dynamic = footer(&options, 1 << 30, Some(512));
        let b = dynamic.as_bytes();
        assert_eq!(&b[0..8], b"conectix");
        assert_eq!(
            &b[8..16],
            &[0, 0, 0, 2, 0, 1, 0, 0],
            "features, version 1.0"
        );
        assert_eq!(
            &b[16..24],
            &[0, 0, 0, 0, 0, 0, 2, 0],
            "dynamic header at 512"
        );
        assert_eq!(&b[24..28], &[1, 2, 3, 4], "seconds since 2000");
        assert_eq!(&b[28..40], b"win \0\x0a\0\0Wi2k", "creator");
        assert_eq!(&b[40..48], &[0, 0, 0, 0, 0x40, 0, 0, 0], "original size");
        assert_eq!(&b[48..56], &[0, 0, 0, 0, 0x40, 0, 0, 0], "current size");
        assert_eq!(&b[56..60], &[0x08, 0x20, 16, 63], "CHS 2080/16/63");
        assert_eq!(&b[60..64], &[0, 0, 0, 3], "dynamic");
        assert_eq!(&b[68..84], &[7; 16], "unique id");
        let mut zeroed = b.to_vec();
        zeroed[64..68].fill(0);
        let sum = u32::from_be_bytes(b[64..68].try_into().unwrap());
        assert_eq!(sum, !zeroed.iter().map(|&x| u32::from(x)).sum::<u32>());
        let fixed = footer(&options, 1 << 30, None);
        let fixed = fixed.as_bytes();
        assert_eq!(&fixed[16..24], &[0xff; 8], "no dynamic header");
        assert_eq!(&fixed[60..64], &[0, 0, 0, 2], "fixed");
    }

    #[test]
    fn dynamic_header_bytes() {
        let header = DynamicHeader::new(BAT_OFFSET, 671, BLOCK_SIZE);
        let b = header.as_bytes();
        assert_eq!(&b[0..8], b"cxsparse");
        assert_eq!(&b[8..16], &[0xff; 8]);
        assert_eq!(&b[16..24], &[0, 0, 0, 0, 0, 0, 6, 0], "BAT at 1536");
        assert_eq!(
            &b[24..40][..12],
            &[0, 1, 0, 0, 0, 0, 2, 0x9f, 0, 0x20, 0, 0]
        );
        assert!(b[40..].iter().all(|&x| x == 0));
    }

    #[test]
    fn blocks_follow_a_bat_sized_for_a_known_disk_or_the_header() {
        let mut options = WriteOptions::new(crate::Format::Vhd, "x.vhd");
        options.max_virtual_size = Some(1341 * MIB);
        let w = DynamicWriter::new(tempfile::tempfile().unwrap(), &options).unwrap();
        let layout = w.map.into_allocation().unwrap().layout;
        assert_eq!(
            layout.slot_offset(0),
            BAT_OFFSET + 3072,
            "671 entries, padded"
        );
        assert_eq!(layout.slot_offset(0) + 512, layout.data_offset(0));
        assert_eq!(layout.slot_offset(1), layout.slot_offset(0) + 512 + BLOCK);
        options.max_virtual_size = None;
        let w = DynamicWriter::new(tempfile::tempfile().unwrap(), &options).unwrap();
        assert_eq!(
            w.map.into_allocation().unwrap().layout.slot_offset(0),
            BAT_OFFSET
        );
    }
}
