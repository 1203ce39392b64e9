//! VMware virtual disks (VMDK), one file each ("Virtual Disk Format 5.0"; "VMDK"
//! specification 1.1): a sparse extent header in sector 0 and an embedded descriptor in
//! sectors 1..21, then 64 KiB grains.
//!
//! monolithicSparse (version 1): grains from 12 KiB on, in the order they were first
//! written; at `finish`, after them, the redundant grain directory and its grain tables, then
//! the grain directory and its grain tables (every table of the disk, entries 0 for grains
//! never written). The directory's size follows the disk's, so it is placed at the end,
//! which the header's offsets allow and QEMU and VirtualBox read.
//!
//! streamOptimized (version 3, deflated grains with markers): each stored grain is a marker
//! (its sector number and length) and a zlib stream, sector aligned, in disk order; each
//! grain table follows the grains it maps, then come the grain directory, a footer (the
//! header again, now with the directory's offset) and the end-of-stream marker. The header
//! at the front says "directory at the end".

use std::fs::File;
use std::os::unix::fs::FileExt;

use d2l_disk::VirtualDisk;

use crate::cluster_map::{ClusterMap, SlotLayout};
use crate::compress::{deflate_grains, Codec, Grain};
use crate::format::VMDK_MAGIC;
use crate::seq::SeqWriter;
use crate::{Error, ImageWriter, Result, WriteOptions, MIB};

/// Sector size.
pub(crate) const SECTOR: u64 = 512;
/// Grain size in sectors (64 KiB, VMware's default).
const GRAIN_SECTORS: u64 = 128;
/// Grain size in bytes.
const GRAIN: u64 = GRAIN_SECTORS * SECTOR;
/// Entries per grain table.
const GTES_PER_GT: u64 = 512;
/// Sectors of a grain table.
const GT_SECTORS: u64 = GTES_PER_GT * 4 / SECTOR;
/// Where the embedded descriptor starts and how many sectors it may use.
const DESCRIPTOR_OFFSET: u64 = 1;
/// Descriptor sectors (QEMU and VMware reserve 20).
const DESCRIPTOR_SECTORS: u64 = 20;
/// Sectors before the first grain of a monolithicSparse extent: header and descriptor,
/// rounded up to 4 KiB.
const SPARSE_OVERHEAD_SECTORS: u64 = 24;
/// Sectors before the first grain of a streamOptimized extent: a grain, as VMware writes.
const STREAM_OVERHEAD_SECTORS: u64 = GRAIN_SECTORS;
/// Header flag: the new-line detection characters are valid.
pub(crate) const FLAG_NL_DETECT: u32 = 1 << 0;
/// The characters after the header's uncleanShutdown byte that detect a file whose line
/// endings a text-mode transfer changed (valid when [`FLAG_NL_DETECT`] is set).
pub(crate) const NL_CHECK: &[u8; 4] = b"\n \r\n";
/// Header flag: the redundant grain directory is in use.
const FLAG_RGD: u32 = 1 << 1;
/// Header flag: grains are compressed.
pub(crate) const FLAG_COMPRESSED: u32 = 1 << 16;
/// Header flag: grains and metadata carry markers.
pub(crate) const FLAG_MARKERS: u32 = 1 << 17;
/// compressAlgorithm 1: deflate.
pub(crate) const COMPRESS_DEFLATE: u16 = 1;
/// gdOffset meaning "the grain directory is at the end, see the footer".
pub(crate) const GD_AT_END: u64 = u64::MAX;
/// Marker types of a streamOptimized extent.
pub(crate) const MARKER_EOS: u32 = 0;
const MARKER_GT: u32 = 1;
const MARKER_GD: u32 = 2;
pub(crate) const MARKER_FOOTER: u32 = 3;
/// The largest hosted sparse extent: 2^32 sectors (QEMU's VMDK_EXTENT_MAX_SECTORS).
const MAX_SIZE: u64 = (1 << 32) * SECTOR;

/// The sparse extent header ("SparseExtentHeader"), little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    version: u32,
    flags: u32,
    /// Capacity in sectors.
    capacity: u64,
    /// Sector of the redundant grain directory (0: none).
    rgd_offset: u64,
    /// Sector of the grain directory, or [`GD_AT_END`].
    gd_offset: u64,
    compress: bool,
    /// Sectors before the first grain.
    overhead: u64,
}

impl Header {
    fn encode(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &VMDK_MAGIC);
        put(4, &self.version.to_le_bytes());
        put(8, &self.flags.to_le_bytes());
        put(12, &self.capacity.to_le_bytes());
        put(20, &GRAIN_SECTORS.to_le_bytes());
        put(28, &DESCRIPTOR_OFFSET.to_le_bytes());
        put(36, &DESCRIPTOR_SECTORS.to_le_bytes());
        put(44, &(GTES_PER_GT as u32).to_le_bytes());
        put(48, &self.rgd_offset.to_le_bytes());
        put(56, &self.gd_offset.to_le_bytes());
        put(64, &self.overhead.to_le_bytes());
        // 72: uncleanShutdown 0; then the characters that detect mangled line endings.
        put(73, NL_CHECK);
        let algorithm = if self.compress { COMPRESS_DEFLATE } else { 0 };
        put(77, &algorithm.to_le_bytes());
        b
    }
}

/// The embedded descriptor for a disk of `capacity` sectors.
fn descriptor(options: &WriteOptions, create_type: &str, capacity: u64) -> Vec<u8> {
    let cid = u32::from_le_bytes(options.identity[..4].try_into().expect("4 bytes"));
    // The name is quoted in the descriptor: no quotes or control characters in it.
    let name: String = options
        .file_name
        .chars()
        .map(|c| if c == '"' || c.is_control() { '_' } else { c })
        .collect();
    let cylinders = (capacity / (16 * 63)).min(65535);
    let text = format!(
        "# Disk DescriptorFile\n\
         version=1\n\
         CID={cid:08x}\n\
         parentCID=ffffffff\n\
         createType=\"{create_type}\"\n\
         \n\
         # Extent description\n\
         RW {capacity} SPARSE \"{name}\"\n\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.virtualHWVersion = \"4\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"16\"\n\
         ddb.geometry.sectors = \"63\"\n\
         ddb.adapterType = \"ide\"\n"
    );
    let mut bytes = text.into_bytes();
    bytes.truncate((DESCRIPTOR_SECTORS * SECTOR) as usize);
    bytes
}

/// Checks that a disk of `size` bytes fits a sparse extent.
fn check_size(size: u64) -> Result<()> {
    Error::check_size("VMDK", size, MAX_SIZE)
}

/// Writes a monolithicSparse VMDK.
#[derive(Debug)]
pub(crate) struct SparseWriter {
    map: ClusterMap,
    options: WriteOptions,
}

impl SparseWriter {
    pub fn new(file: File, options: &WriteOptions) -> Result<Self> {
        let max = options
            .max_virtual_size
            .map_or(MAX_SIZE, |size| size.next_multiple_of(MIB));
        check_size(max)?;
        let layout = SlotLayout {
            unit: GRAIN,
            first: SPARSE_OVERHEAD_SECTORS * SECTOR,
            stride: GRAIN,
            data: 0,
        };
        Ok(SparseWriter {
            map: ClusterMap::new(file, layout, "VMDK", max),
            options: options.clone(),
        })
    }
}

impl ImageWriter for SparseWriter {
    fn as_disk(&self) -> &dyn VirtualDisk {
        &self.map
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let alloc = self.map.into_allocation()?;
        let size = alloc.size.next_multiple_of(MIB);
        check_size(size)?;
        let file = &alloc.file;
        let capacity = size / SECTOR;
        let grains = size / GRAIN;
        let gt_count = grains.div_ceil(GTES_PER_GT);
        let gd_sectors = (gt_count * 4).div_ceil(SECTOR);
        let rgd = alloc.data_end().div_ceil(SECTOR);
        let rgt = rgd + gd_sectors;
        let gd = rgt + gt_count * GT_SECTORS;
        let gt = gd + gd_sectors;
        let end = gt + gt_count * GT_SECTORS;
        for (directory, tables) in [(rgd, rgt), (gd, gt)] {
            let entries: Vec<u8> = (0..gt_count)
                .flat_map(|t| sector_u32(tables + t * GT_SECTORS).to_le_bytes())
                .collect();
            file.write_all_at(&entries, directory * SECTOR)
                .map_err(Error::io(
                    "writing a VMDK grain directory",
                    directory * SECTOR,
                ))?;
        }
        for t in 0..gt_count {
            let table: Vec<u8> = (t * GTES_PER_GT..(t + 1) * GTES_PER_GT)
                .flat_map(|grain| {
                    alloc
                        .slot(grain)
                        .map_or(0, |slot| {
                            sector_u32(alloc.layout.data_offset(slot) / SECTOR)
                        })
                        .to_le_bytes()
                })
                .collect();
            for first in [rgt, gt] {
                let at = (first + t * GT_SECTORS) * SECTOR;
                file.write_all_at(&table, at)
                    .map_err(Error::io("writing a VMDK grain table", at))?;
            }
        }
        let header = Header {
            version: 1,
            flags: FLAG_NL_DETECT | FLAG_RGD,
            capacity,
            rgd_offset: rgd,
            gd_offset: gd,
            compress: false,
            overhead: SPARSE_OVERHEAD_SECTORS,
        };
        file.write_all_at(&header.encode(), 0)
            .map_err(Error::io("writing the VMDK header", 0))?;
        file.write_all_at(
            &descriptor(&self.options, "monolithicSparse", capacity),
            DESCRIPTOR_OFFSET * SECTOR,
        )
        .map_err(Error::io("writing the VMDK descriptor", SECTOR))?;
        file.set_len(end * SECTOR)
            .map_err(Error::io("sizing the image", end * SECTOR))
    }
}

/// A sector number as the 32-bit table entries hold it (files stay below 2 TiB).
fn sector_u32(sector: u64) -> u32 {
    u32::try_from(sector).expect("a VMDK under 2 TiB has 32-bit sector numbers")
}

/// A metadata marker sector of a streamOptimized extent: `sectors` of metadata of `kind`
/// follow it.
fn marker(sectors: u64, kind: u32) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[0..8].copy_from_slice(&sectors.to_le_bytes());
    // 8..12: size 0 (a metadata marker, not a grain).
    b[12..16].copy_from_slice(&kind.to_le_bytes());
    b
}

/// Writes a streamOptimized VMDK into `out` from the first `size` bytes of `scratch` (a
/// sparse raw disk).
pub(crate) fn write_stream(
    out: &File,
    scratch: &File,
    size: u64,
    options: &WriteOptions,
) -> Result<()> {
    check_size(size)?;
    let capacity = size / SECTOR;
    let gt_count = (size / GRAIN).div_ceil(GTES_PER_GT);
    let mut directory = vec![0u32; gt_count as usize];
    let mut writer = SeqWriter::new(out, STREAM_OVERHEAD_SECTORS * SECTOR);
    // The grain table being filled: its index and entries.
    let mut table: Option<(u64, Vec<u32>)> = None;

    fn put_table(
        writer: &mut SeqWriter<'_>,
        directory: &mut [u32],
        (index, entries): (u64, Vec<u32>),
    ) -> Result<()> {
        writer.write(&marker(GT_SECTORS, MARKER_GT))?;
        directory[index as usize] = sector_u32(writer.pos() / SECTOR);
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
        writer.write(&bytes)
    }

    deflate_grains(scratch, size, GRAIN, Codec::Zlib, &mut |index, grain| {
        let Grain::Deflated(bytes) = grain else {
            unreachable!("zlib grains are always deflated")
        };
        let t = index / GTES_PER_GT;
        if table.as_ref().is_some_and(|(current, _)| *current != t) {
            put_table(&mut writer, &mut directory, table.take().expect("checked"))?;
        }
        let entries = &mut table
            .get_or_insert_with(|| (t, vec![0; GTES_PER_GT as usize]))
            .1;
        entries[(index % GTES_PER_GT) as usize] = sector_u32(writer.pos() / SECTOR);
        // Grain marker: the grain's first sector and the deflated length.
        writer.write(&(index * GRAIN_SECTORS).to_le_bytes())?;
        writer.write(&(bytes.len() as u32).to_le_bytes())?;
        writer.write(&bytes)?;
        writer.pad_to(SECTOR)
    })?;
    if let Some(last) = table.take() {
        put_table(&mut writer, &mut directory, last)?;
    }
    let gd_sectors = (gt_count * 4).div_ceil(SECTOR);
    writer.write(&marker(gd_sectors, MARKER_GD))?;
    let gd = writer.pos() / SECTOR;
    let bytes: Vec<u8> = directory.iter().flat_map(|e| e.to_le_bytes()).collect();
    writer.write(&bytes)?;
    writer.pad_to(SECTOR)?;
    let header = |gd_offset| Header {
        version: 3,
        flags: FLAG_NL_DETECT | FLAG_COMPRESSED | FLAG_MARKERS,
        capacity,
        rgd_offset: 0,
        gd_offset,
        compress: true,
        overhead: STREAM_OVERHEAD_SECTORS,
    };
    writer.write(&marker(1, MARKER_FOOTER))?;
    writer.write(&header(gd).encode())?;
    writer.write(&marker(0, MARKER_EOS))?;
    writer.flush()?;
    let end = writer.pos();
    out.write_all_at(&header(GD_AT_END).encode(), 0)
        .map_err(Error::io("writing the VMDK header", 0))?;
    out.write_all_at(
        &descriptor(options, "streamOptimized", capacity),
        DESCRIPTOR_OFFSET * SECTOR,
    )
    .map_err(Error::io("writing the VMDK descriptor", SECTOR))?;
    out.set_len(end).map_err(Error::io("sizing the image", end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_field_by_field() {
        let b = Header {
            version: 3,
            flags: FLAG_NL_DETECT | FLAG_COMPRESSED | FLAG_MARKERS,
            capacity: 0x20_0000,
            rgd_offset: 0,
            gd_offset: GD_AT_END,
            compress: true,
            overhead: STREAM_OVERHEAD_SECTORS,
        }
        .encode();
        assert_eq!(&b[0..4], b"KDMV");
        assert_eq!(
            &b[4..12],
            &[3, 0, 0, 0, 1, 0, 3, 0],
            "version 3, flags 0x30001"
        );
        assert_eq!(&b[12..20], &[0, 0, 0x20, 0, 0, 0, 0, 0], "capacity");
        assert_eq!(&b[20..28], &[128, 0, 0, 0, 0, 0, 0, 0], "grain 128 sectors");
        assert_eq!(
            &b[28..44],
            &[1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0],
            "descriptor"
        );
        assert_eq!(&b[44..48], &[0, 2, 0, 0], "512 entries per table");
        assert_eq!(&b[56..64], &[0xff; 8], "directory at the end");
        assert_eq!(&b[64..72], &[128, 0, 0, 0, 0, 0, 0, 0], "overhead");
        assert_eq!(
            &b[72..79],
            b"\0\n \r\n\x01\0",
            "clean, line-end checks, deflate"
        );
        assert!(b[79..].iter().all(|&x| x == 0));
    }

    #[test]
    fn descriptor_names_the_file_safely() {
        let mut options = WriteOptions::new(crate::Format::Vmdk, "my \"disk\".vmdk");
        options.identity = [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let text = String::from_utf8(descriptor(&options, "monolithicSparse", 2 << 20)).unwrap();
        assert!(text.starts_with("# Disk DescriptorFile\nversion=1\nCID=12345678\n"));
        assert!(text.contains("createType=\"monolithicSparse\""));
        assert!(text.contains("RW 2097152 SPARSE \"my _disk_.vmdk\"\n"));
        assert!(text.contains("ddb.geometry.cylinders = \"2080\""));
    }
}
