//! Virtual Hard Disk (VHD) images (Microsoft's "Virtual Hard Disk Image Format
//! Specification" 1.0), dynamic or fixed.
//!
//! The footer names "win " (Hyper-V) as the creator application: QEMU (block/vpc.c) takes
//! the disk's size from the footer's current size only for creators it knows to mean it
//! (Hyper-V, Disk2vhd, XenServer, XenConverter, and QEMU with force_size); for others it
//! computes the size from the CHS geometry, which cannot express most sizes exactly. Hyper-V,
//! Azure and VirtualBox read the current size. The geometry is the specification's, for
//! BIOSes. Sizes are whole MiB, as Azure requires of fixed disks.
//!
//! Dynamic: a copy of the footer at 0, the dynamic disk header at 512, then blocks of 2 MiB,
//! each after its sector bitmap, in the order they were first written, then the footer. The
//! block allocation table (BAT) sits between the header and the blocks when the caller knows
//! the disk's size before the first write ([`WriteOptions::max_virtual_size`], as QEMU lays
//! it out); otherwise `finish` writes it after the last block, before the footer: its place
//! is the dynamic header's table offset, and QEMU and VirtualBox read it there. Fixed: the
//! disk's bytes, then the footer.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use d2l_disk::VirtualDisk;

use crate::chs::vhd_geometry;
use crate::cluster_map::{ClusterMap, SlotLayout};
use crate::format::VHD_COOKIE;
use crate::raw::RawWriter;
use crate::{Error, ImageWriter, Result, WriteOptions, MIB};

/// Size of the footer and of a sector.
pub(crate) const SECTOR: u64 = 512;
/// Size of the dynamic disk header.
pub(crate) const DYNAMIC_HEADER_SIZE: u64 = 1024;
/// Offset of the BAT: after the footer copy and the dynamic header.
const BAT_OFFSET: u64 = SECTOR + DYNAMIC_HEADER_SIZE;
/// Block size: 2 MiB, the specification's default.
const BLOCK: u64 = 2 * MIB;
/// Bytes of a block's sector bitmap: one bit per sector, padded to a sector.
const BITMAP: u64 = (BLOCK / SECTOR / 8).next_multiple_of(SECTOR);
/// The largest VHD: 2040 GiB (QEMU's VHD_MAX_SECTORS; the format's 32-bit sector counts).
const MAX_SIZE: u64 = 0xff00_0000 * SECTOR;
/// "cxsparse", the dynamic header's cookie.
pub(crate) const DYNAMIC_COOKIE: &[u8; 8] = b"cxsparse";
/// Footer "features": bit 1, reserved, always set.
const FEATURES: u32 = 2;
/// File format version 1.0.
pub(crate) const FORMAT_VERSION: u32 = 0x0001_0000;
/// Dynamic header version 1.0.
pub(crate) const HEADER_VERSION: u32 = 0x0001_0000;
/// Creator application: "win " (Hyper-V); see the module documentation.
const CREATOR_APP: &[u8; 4] = b"win ";
/// Creator version: 10.0, as Hyper-V on Windows 10 and Server 2016+ writes.
const CREATOR_VERSION: u32 = 0x000a_0000;
/// Creator host OS: "Wi2k" (Windows).
const CREATOR_OS: &[u8; 4] = b"Wi2k";
/// Disk type 2: fixed.
pub(crate) const TYPE_FIXED: u32 = 2;
/// Disk type 3: dynamic.
pub(crate) const TYPE_DYNAMIC: u32 = 3;
/// A BAT entry for a block never written.
pub(crate) const UNUSED: u32 = u32::MAX;
/// VHD timestamps count seconds from 2000-01-01 00:00:00 UTC.
const EPOCH_2000: u64 = 946_684_800;

/// The footer's fields that vary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Footer {
    /// Offset of the dynamic header, or `None` for a fixed disk.
    dynamic_header: Option<u64>,
    /// Creation time, seconds since 2000.
    timestamp: u32,
    /// The disk's size.
    size: u64,
    /// Fixed or dynamic.
    disk_type: u32,
    /// The unique id.
    id: [u8; 16],
}

impl Footer {
    fn new(options: &WriteOptions, size: u64, dynamic_header: Option<u64>) -> Self {
        Footer {
            dynamic_header,
            timestamp: u32::try_from(options.timestamp.saturating_sub(EPOCH_2000))
                .unwrap_or(u32::MAX),
            size,
            disk_type: if dynamic_header.is_some() {
                TYPE_DYNAMIC
            } else {
                TYPE_FIXED
            },
            id: options.identity,
        }
    }

    /// The 512-byte footer, big-endian ("Hard Disk Footer Format").
    fn encode(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &VHD_COOKIE);
        put(8, &FEATURES.to_be_bytes());
        put(12, &FORMAT_VERSION.to_be_bytes());
        put(16, &self.dynamic_header.unwrap_or(u64::MAX).to_be_bytes());
        put(24, &self.timestamp.to_be_bytes());
        put(28, CREATOR_APP);
        put(32, &CREATOR_VERSION.to_be_bytes());
        put(36, CREATOR_OS);
        put(40, &self.size.to_be_bytes()); // original size
        put(48, &self.size.to_be_bytes()); // current size
        let (cylinders, heads, sectors) = vhd_geometry(self.size / SECTOR);
        put(56, &cylinders.to_be_bytes());
        put(58, &[heads, sectors]);
        put(60, &self.disk_type.to_be_bytes());
        put(68, &self.id);
        // 84: saved state 0; 85..512 reserved.
        let sum = checksum(&b);
        b[64..68].copy_from_slice(&sum.to_be_bytes());
        b
    }
}

/// The one's complement of the sum of all bytes (the checksum field counted as zero).
pub(crate) fn checksum(bytes: &[u8]) -> u32 {
    !bytes
        .iter()
        .fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)))
}

/// The dynamic disk header ("Dynamic Disk Header Format"), big-endian, for a BAT of
/// `max_table_entries` at `table_offset`.
fn dynamic_header(table_offset: u64, max_table_entries: u32) -> [u8; DYNAMIC_HEADER_SIZE as usize] {
    let mut b = [0u8; DYNAMIC_HEADER_SIZE as usize];
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, DYNAMIC_COOKIE);
    put(8, &u64::MAX.to_be_bytes()); // data offset: unused
    put(16, &table_offset.to_be_bytes());
    put(24, &HEADER_VERSION.to_be_bytes());
    put(28, &max_table_entries.to_be_bytes());
    put(32, &(BLOCK as u32).to_be_bytes());
    // 40: parent UUID, timestamp, name and locators: none.
    let sum = checksum(&b);
    b[36..40].copy_from_slice(&sum.to_be_bytes());
    b
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
        let bat: Vec<u8> = (0..entries)
            .flat_map(|block| {
                alloc
                    .slot(block)
                    .map_or(UNUSED, |slot| {
                        (alloc.layout.slot_offset(slot) / SECTOR) as u32
                    })
                    .to_be_bytes()
            })
            .collect();
        let bat_offset = if self.bat_in_front {
            BAT_OFFSET
        } else {
            alloc.data_end()
        };
        file.write_all_at(&bat, bat_offset).map_err(Error::io(
            "writing the VHD block allocation table",
            bat_offset,
        ))?;
        // Every sector of a stored block is marked present: its unwritten parts are holes
        // that read as zeros.
        let bitmap = [0xffu8; BITMAP as usize];
        for slot in 0..alloc.slots {
            let at = alloc.layout.slot_offset(slot);
            file.write_all_at(&bitmap, at)
                .map_err(Error::io("writing a VHD block bitmap", at))?;
        }
        let footer = Footer::new(&self.options, size, Some(SECTOR)).encode();
        file.write_all_at(&footer, 0)
            .map_err(Error::io("writing the VHD footer copy", 0))?;
        file.write_all_at(&dynamic_header(bat_offset, entries as u32), SECTOR)
            .map_err(Error::io("writing the VHD dynamic header", SECTOR))?;
        let end = if self.bat_in_front {
            alloc.data_end().max(BAT_OFFSET + bat_bytes(entries))
        } else {
            bat_offset + bat_bytes(entries)
        };
        file.write_all_at(&footer, end)
            .map_err(Error::io("writing the VHD footer", end))?;
        file.set_len(end + SECTOR)
            .map_err(Error::io("sizing the image", end + SECTOR))
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
            .map_err(Error::io("duplicating the output's descriptor", 0))?;
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
            .map_err(Error::io("sizing the image", 0))?;
        let size = len.next_multiple_of(MIB);
        check_size(size)?;
        let footer = Footer::new(&self.options, size, None).encode();
        self.file
            .write_all_at(&footer, size)
            .map_err(Error::io("writing the VHD footer", size))
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
        let b = Footer::new(&options, 1 << 30, Some(512)).encode();
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
        let mut zeroed = b;
        zeroed[64..68].fill(0);
        let sum = u32::from_be_bytes(b[64..68].try_into().unwrap());
        assert_eq!(sum, !zeroed.iter().map(|&x| u32::from(x)).sum::<u32>());
        let fixed = Footer::new(&options, 1 << 30, None).encode();
        assert_eq!(&fixed[16..24], &[0xff; 8], "no dynamic header");
        assert_eq!(&fixed[60..64], &[0, 0, 0, 2], "fixed");
    }

    #[test]
    fn dynamic_header_bytes() {
        let b = dynamic_header(BAT_OFFSET, 671);
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
