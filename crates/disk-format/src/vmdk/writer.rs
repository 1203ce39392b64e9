//! Writing monolithicSparse and streamOptimized VMDKs.

use std::fs::File;
use std::os::unix::fs::FileExt;

use d2l_disk::bytes::{FromZeros, IntoBytes};
use d2l_disk::VirtualDisk;

use super::header::{
    Entry, GrainMarker, Header, MetadataMarker, COMPRESS_DEFLATE, FLAG_COMPRESSED, FLAG_MARKERS,
    FLAG_NL_DETECT, FLAG_RGD, GD_AT_END, MAGIC, MARKER_EOS, MARKER_FOOTER, MARKER_GD, MARKER_GT,
    NL_CHECK, SECTOR,
};

use crate::cluster_map::{ClusterMap, SlotLayout};
use crate::compress::{deflate_grains, Codec, Grain};
use crate::seq::SeqWriter;
use crate::usize_from;
use crate::{Error, ImageWriter, Result, WriteOptions, MIB};

/// Grain size in sectors (64 KiB, VMware's default).
const GRAIN_SECTORS: u64 = 128;
/// Grain size in bytes.
const GRAIN: u64 = GRAIN_SECTORS * SECTOR;
/// Entries per grain table.
const GTES_PER_GT: u32 = 512;
/// Sectors of a grain table.
const GT_SECTORS: u64 = GTES_PER_GT as u64 * 4 / SECTOR;
/// Where the embedded descriptor starts and how many sectors it may use.
const DESCRIPTOR_OFFSET: u64 = 1;
/// Descriptor sectors (QEMU and VMware reserve 20).
const DESCRIPTOR_SECTORS: u64 = 20;
/// Sectors before the first grain of a monolithicSparse extent: header and descriptor,
/// rounded up to 4 KiB.
const SPARSE_OVERHEAD_SECTORS: u64 = 24;
/// Sectors before the first grain of a streamOptimized extent: a grain, as VMware writes.
const STREAM_OVERHEAD_SECTORS: u64 = GRAIN_SECTORS;
/// The largest hosted sparse extent: 2^32 sectors (QEMU's VMDK_EXTENT_MAX_SECTORS).
const MAX_SIZE: u64 = (1 << 32) * SECTOR;

/// The header d2l writes: 64 KiB grains, tables of 512 entries, the descriptor in sectors
/// 1..21, the line-end check characters, deflate when `compress`.
fn header(
    version: u32,
    flags: u32,
    capacity: u64,
    rgd_offset: u64,
    gd_offset: u64,
    compress: bool,
    overhead: u64,
) -> Header {
    let mut h = Header::new_zeroed();
    h.magic = MAGIC;
    h.version = version.into();
    h.flags = flags.into();
    h.capacity = capacity.into();
    h.grain_size = GRAIN_SECTORS.into();
    h.descriptor_offset = DESCRIPTOR_OFFSET.into();
    h.descriptor_size = DESCRIPTOR_SECTORS.into();
    h.num_gtes_per_gt = GTES_PER_GT.into();
    h.rgd_offset = rgd_offset.into();
    h.gd_offset = gd_offset.into();
    h.overhead = overhead.into();
    h.nl_check = NL_CHECK;
    h.compress_algorithm = if compress { COMPRESS_DEFLATE } else { 0 }.into();
    h
}

/// The controller a VMDK says it sits on (`ddb.adapterType`): IDE alone, which every
/// hypervisor has; an OVA's disk says what its descriptor attaches it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Adapter {
    /// `ide`.
    Ide,
    /// `lsilogic`: LSI Logic parallel SCSI.
    LsiLogic,
}

/// The embedded descriptor for a disk of `capacity` sectors.
fn descriptor(
    options: &WriteOptions,
    create_type: &str,
    capacity: u64,
    adapter: Adapter,
) -> Vec<u8> {
    let adapter = match adapter {
        Adapter::Ide => "ide",
        Adapter::LsiLogic => "lsilogic",
    };
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
         ddb.adapterType = \"{adapter}\"\n"
    );
    let mut bytes = text.into_bytes();
    bytes.truncate(usize_from(DESCRIPTOR_SECTORS * SECTOR));
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
        let gt_count = grains.div_ceil(u64::from(GTES_PER_GT));
        let gd_sectors = (gt_count * 4).div_ceil(SECTOR);
        let rgd = alloc.data_end().div_ceil(SECTOR);
        let rgt = rgd + gd_sectors;
        let gd = rgt + gt_count * GT_SECTORS;
        let gt = gd + gd_sectors;
        let end = gt + gt_count * GT_SECTORS;
        for (directory, tables) in [(rgd, rgt), (gd, gt)] {
            let entries: Vec<Entry> = (0..gt_count)
                .map(|t| sector_u32(tables + t * GT_SECTORS).into())
                .collect();
            file.write_all_at(entries.as_bytes(), directory * SECTOR)
                .map_err(Error::output(
                    "writing a VMDK grain directory",
                    directory * SECTOR,
                ))?;
        }
        for t in 0..gt_count {
            let per_table = u64::from(GTES_PER_GT);
            let table: Vec<Entry> = (t * per_table..(t + 1) * per_table)
                .map(|grain| {
                    alloc
                        .slot(grain)
                        .map_or(0, |slot| {
                            sector_u32(alloc.layout.data_offset(slot) / SECTOR)
                        })
                        .into()
                })
                .collect();
            for first in [rgt, gt] {
                let at = (first + t * GT_SECTORS) * SECTOR;
                file.write_all_at(table.as_bytes(), at)
                    .map_err(Error::output("writing a VMDK grain table", at))?;
            }
        }
        let header = header(
            1,
            FLAG_NL_DETECT | FLAG_RGD,
            capacity,
            rgd,
            gd,
            false,
            SPARSE_OVERHEAD_SECTORS,
        );
        file.write_all_at(header.as_bytes(), 0)
            .map_err(Error::output("writing the VMDK header", 0))?;
        file.write_all_at(
            &descriptor(&self.options, "monolithicSparse", capacity, Adapter::Ide),
            DESCRIPTOR_OFFSET * SECTOR,
        )
        .map_err(Error::output("writing the VMDK descriptor", SECTOR))?;
        file.set_len(end * SECTOR)
            .map_err(Error::output("sizing the image", end * SECTOR))
    }
}

/// A sector number as the 32-bit table entries hold it (files stay below 2 TiB).
fn sector_u32(sector: u64) -> u32 {
    u32::try_from(sector).expect("a VMDK under 2 TiB has 32-bit sector numbers")
}

/// A metadata marker sector of a streamOptimized extent: `sectors` of metadata of `kind`
/// follow it.
fn marker(sectors: u64, kind: u32) -> MetadataMarker {
    MetadataMarker::new(sectors, kind)
}

/// Writes a streamOptimized VMDK through `writer` (at its position 0) from the first `size`
/// bytes of `scratch` (a sparse raw disk), front to back: header, descriptor, grains with
/// their tables, directory, footer, end-of-stream marker. Everything but the footer's
/// directory offset is known before the first grain, so nothing is patched afterwards and a
/// hashing writer sees the file in order. `adapter` is the controller the descriptor names,
/// `level` the deflate level of the grains.
pub(crate) fn write_stream(
    writer: &mut SeqWriter<'_>,
    scratch: &File,
    size: u64,
    options: &WriteOptions,
    adapter: Adapter,
    level: u32,
) -> Result<()> {
    check_size(size)?;
    let capacity = size / SECTOR;
    let per_table = u64::from(GTES_PER_GT);
    let gt_count = (size / GRAIN).div_ceil(per_table);
    // At most 2^32 sectors / 128 / 512 = 65536 tables.
    let mut directory = vec![0u32; usize::try_from(gt_count).expect("at most 65536 tables")];
    let header = |gd_offset| {
        header(
            3,
            FLAG_NL_DETECT | FLAG_COMPRESSED | FLAG_MARKERS,
            capacity,
            0,
            gd_offset,
            true,
            STREAM_OVERHEAD_SECTORS,
        )
    };
    // The header at the front says "directory at the end"; the footer says where.
    writer.write(header(GD_AT_END).as_bytes())?;
    writer.write(&descriptor(options, "streamOptimized", capacity, adapter))?;
    writer.pad_to(STREAM_OVERHEAD_SECTORS * SECTOR)?;
    // The grain table being filled: its index and entries.
    let mut table: Option<(u64, Vec<u32>)> = None;

    fn put_table(
        writer: &mut SeqWriter<'_>,
        directory: &mut [u32],
        (index, entries): (u64, Vec<u32>),
    ) -> Result<()> {
        writer.write(marker(GT_SECTORS, MARKER_GT).as_bytes())?;
        let slot = usize::try_from(index).expect("below the directory's length");
        directory[slot] = sector_u32(writer.pos() / SECTOR);
        let entries: Vec<Entry> = entries.into_iter().map(Entry::new).collect();
        writer.write(entries.as_bytes())
    }

    deflate_grains(
        scratch,
        size,
        GRAIN,
        Codec::Zlib { level },
        &mut |index, grain| {
            let Grain::Deflated(bytes) = grain else {
                unreachable!("zlib grains are always deflated")
            };
            let t = index / per_table;
            if table.as_ref().is_some_and(|(current, _)| *current != t) {
                put_table(writer, &mut directory, table.take().expect("checked"))?;
            }
            let entries = &mut table
                .get_or_insert_with(|| (t, vec![0; GTES_PER_GT as usize]))
                .1;
            let slot = usize::try_from(index % per_table).expect("below 512");
            entries[slot] = sector_u32(writer.pos() / SECTOR);
            // Grain marker: the grain's first sector and the deflated length.
            let marker = GrainMarker {
                lba: (index * GRAIN_SECTORS).into(),
                size: u32::try_from(bytes.len())
                    .expect("a deflated 64 KiB grain is far below 4 GiB")
                    .into(),
            };
            writer.write(marker.as_bytes())?;
            writer.write(&bytes)?;
            writer.pad_to(SECTOR)
        },
    )?;
    if let Some(last) = table.take() {
        put_table(writer, &mut directory, last)?;
    }
    let gd_sectors = (gt_count * 4).div_ceil(SECTOR);
    writer.write(marker(gd_sectors, MARKER_GD).as_bytes())?;
    let gd = writer.pos() / SECTOR;
    let directory: Vec<Entry> = directory.into_iter().map(Entry::new).collect();
    writer.write(directory.as_bytes())?;
    writer.pad_to(SECTOR)?;
    writer.write(marker(1, MARKER_FOOTER).as_bytes())?;
    writer.write(header(gd).as_bytes())?;
    writer.write(marker(0, MARKER_EOS).as_bytes())?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_field_by_field() {
        let h = header(
            3,
            FLAG_NL_DETECT | FLAG_COMPRESSED | FLAG_MARKERS,
            0x20_0000,
            0,
            GD_AT_END,
            true,
            STREAM_OVERHEAD_SECTORS,
        );
        let b = h.as_bytes();
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
        let text = String::from_utf8(descriptor(
            &options,
            "monolithicSparse",
            2 << 20,
            Adapter::Ide,
        ))
        .unwrap();
        assert!(text.starts_with("# Disk DescriptorFile\nversion=1\nCID=12345678\n"));
        assert!(text.contains("createType=\"monolithicSparse\""));
        assert!(text.contains("RW 2097152 SPARSE \"my _disk_.vmdk\"\n"));
        assert!(text.contains("ddb.geometry.cylinders = \"2080\""));
        assert!(text.ends_with("ddb.adapterType = \"ide\"\n"));
        let scsi = descriptor(&options, "streamOptimized", 2 << 20, Adapter::LsiLogic);
        assert!(String::from_utf8(scsi)
            .unwrap()
            .ends_with("ddb.adapterType = \"lsilogic\"\n"));
    }
}
