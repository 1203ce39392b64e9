//! Writing dynamic VHDXs: the layout (pure, [`Layout`]) and the writer over a
//! [`ClusterMap`].

use std::fs::File;
use std::os::unix::fs::FileExt;

use d2l_disk::bytes::{FromZeros, IntoBytes};
use d2l_disk::VirtualDisk;

use super::header::{
    bat_entries, bat_index, chunk_ratio, guid_from_uuid, present, BatEntry, FileIdentifier,
    FileParameters, Header, MetadataTable, MetadataTableEntry, RegionTable, RegionTableEntry,
    BAT_REGION, FILE_PARAMETERS, HEADER_OFFSETS, HEADER_SECTION, HEADER_SIGNATURE,
    LOGICAL_SECTOR_SIZE, LOG_VERSION, METADATA_IS_REQUIRED, METADATA_IS_VIRTUAL_DISK,
    METADATA_REGION, METADATA_SIGNATURE, METADATA_TABLE_SIZE, MIB, PAYLOAD_BLOCK_ZERO,
    PHYSICAL_SECTOR_SIZE, REGION_REQUIRED, REGION_SIGNATURE, REGION_TABLE_OFFSETS, SIGNATURE,
    VERSION, VHDX_MAX_VIRTUAL_SIZE, VIRTUAL_DISK_ID, VIRTUAL_DISK_SIZE,
};
use crate::cluster_map::{ClusterMap, SlotLayout};
use crate::{Error, ImageWriter, Result, WriteOptions};

/// Payload block size: 1 MiB, the smallest the format allows. Microsoft recommends it for
/// Linux guests ("Best Practices for running Linux on Hyper-V": ext4 spreads its metadata
/// over the disk, and each touched block is allocated whole); it also keeps the file small
/// where it is not sparse (copied to Windows, uploaded).
const BLOCK_SIZE: u64 = MIB;
/// Logical sector size: 512 bytes, the sectors d2l's partition tables count in.
const LOGICAL_SECTOR: u32 = 512;
/// Physical sector size: 4 KiB, Hyper-V's default for a new VHDX (guests align to it).
const PHYSICAL_SECTOR: u32 = 4096;
/// The log: 1 MiB right after the header section, as Hyper-V and QEMU place it. It holds
/// nothing (the headers' LogGuid is zero), but whoever opens the file for writing needs it.
const LOG_OFFSET: u64 = HEADER_SECTION;
/// The log's length.
const LOG_LENGTH: u32 = 1 << 20;
/// The metadata region: 1 MiB after the log (the table, then the items at 64 KiB).
const METADATA_OFFSET: u64 = LOG_OFFSET + LOG_LENGTH as u64;
/// The metadata region's length.
const METADATA_LENGTH: u32 = 1 << 20;
/// Where the BAT goes when the disk's size is known before the first write: after the
/// metadata region, before the blocks.
const FRONT_BAT_OFFSET: u64 = METADATA_OFFSET + METADATA_LENGTH as u64;
/// The creator named in the file type identifier.
const CREATOR: &str = concat!("d2l ", env!("CARGO_PKG_VERSION"));
/// Header sequence numbers: the second header is current.
const SEQUENCE_NUMBERS: [u64; 2] = [1, 2];

/// The file's layout for payload blocks of `block` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Bytes per payload block.
    block: u64,
}

impl Layout {
    /// Payload blocks per sector bitmap entry.
    fn chunk_ratio(self) -> u64 {
        chunk_ratio(self.block, u64::from(LOGICAL_SECTOR))
    }

    /// Payload blocks of a disk of `size` bytes.
    fn blocks(self, size: u64) -> u64 {
        size.div_ceil(self.block)
    }

    /// Bytes of the BAT region of a disk of `size` bytes: whole MiB, at least one.
    fn bat_region(self, size: u64) -> u64 {
        (bat_entries(self.blocks(size), self.chunk_ratio()) * 8)
            .next_multiple_of(MIB)
            .max(MIB)
    }

    /// The BAT of a disk of `size` bytes: `stored(block)` is the file offset of payload
    /// block `block`, or `None` for one never written, which reads as zeros; sector bitmap
    /// entries are not present (no parent).
    fn bat(self, size: u64, stored: impl Fn(u64) -> Option<u64>) -> Vec<BatEntry> {
        let ratio = self.chunk_ratio();
        let blocks = self.blocks(size);
        let mut bat = vec![BatEntry::new(0); crate::usize_from(bat_entries(blocks, ratio))];
        for block in 0..blocks {
            let entry = stored(block).map_or(PAYLOAD_BLOCK_ZERO, present);
            bat[crate::usize_from(bat_index(block, ratio))] = entry.into();
        }
        bat
    }
}

/// Checks that a disk of `size` bytes fits a VHDX.
fn check_size(size: u64) -> Result<()> {
    Error::check_size("VHDX", size, VHDX_MAX_VIRTUAL_SIZE)
}

/// The file type identifier.
fn file_identifier() -> FileIdentifier {
    let mut id = FileIdentifier::new_zeroed();
    id.signature = SIGNATURE;
    let creator: Vec<u8> = CREATOR.encode_utf16().flat_map(u16::to_le_bytes).collect();
    id.creator[..creator.len()].copy_from_slice(&creator);
    id
}

/// The two headers, checksums set: the same but for the sequence number. FileWriteGuid and
/// DataWriteGuid derive from the identity; no log to replay.
fn headers(options: &WriteOptions) -> [Header; 2] {
    let derived = |what: &[u8]| {
        guid_from_uuid(crate::identity(
            &[&options.identity[..], &b" vhdx "[..], what].concat(),
        ))
    };
    SEQUENCE_NUMBERS.map(|sequence| {
        let mut h = Header::new_zeroed();
        h.signature = HEADER_SIGNATURE;
        h.sequence_number = sequence.into();
        h.file_write_guid = derived(b"file write");
        h.data_write_guid = derived(b"data write");
        h.log_version = LOG_VERSION.into();
        h.version = VERSION.into();
        h.log_length = LOG_LENGTH.into();
        h.log_offset = LOG_OFFSET.into();
        h.checksum = h.computed_checksum().into();
        h
    })
}

/// The region table: the BAT region at `bat_offset` of `bat_length` bytes and the metadata
/// region, both required; checksum set.
fn region_table(bat_offset: u64, bat_length: u32) -> Box<RegionTable> {
    let mut table = Box::new(RegionTable::new_zeroed());
    table.header.signature = REGION_SIGNATURE;
    table.header.entry_count = 2.into();
    let entry = |guid, file_offset: u64, length: u32| RegionTableEntry {
        guid,
        file_offset: file_offset.into(),
        length: length.into(),
        required: REGION_REQUIRED.into(),
    };
    table.entries[0] = entry(BAT_REGION, bat_offset, bat_length);
    table.entries[1] = entry(METADATA_REGION, METADATA_OFFSET, METADATA_LENGTH);
    table.header.checksum = table.computed_checksum().into();
    table
}

/// The metadata region's first bytes: the table, then the five items packed from 64 KiB.
fn metadata(options: &WriteOptions, size: u64, block: u64) -> Vec<u8> {
    let block = u32::try_from(block).expect("a block of at most 256 MiB");
    let parameters = FileParameters {
        block_size: block.into(),
        flags: 0.into(),
    };
    let items: [([u8; 16], u32, Vec<u8>); 5] = [
        (FILE_PARAMETERS, 0, parameters.as_bytes().to_vec()),
        (
            VIRTUAL_DISK_SIZE,
            METADATA_IS_VIRTUAL_DISK,
            size.to_le_bytes().to_vec(),
        ),
        (
            VIRTUAL_DISK_ID,
            METADATA_IS_VIRTUAL_DISK,
            guid_from_uuid(options.identity).to_vec(),
        ),
        (
            LOGICAL_SECTOR_SIZE,
            METADATA_IS_VIRTUAL_DISK,
            LOGICAL_SECTOR.to_le_bytes().to_vec(),
        ),
        (
            PHYSICAL_SECTOR_SIZE,
            METADATA_IS_VIRTUAL_DISK,
            PHYSICAL_SECTOR.to_le_bytes().to_vec(),
        ),
    ];
    let mut table = Box::new(MetadataTable::new_zeroed());
    table.header.signature = METADATA_SIGNATURE;
    table.header.entry_count = 5.into();
    let mut data = Vec::new();
    for (entry, (item_id, flags, bytes)) in table.entries.iter_mut().zip(&items) {
        let offset = METADATA_TABLE_SIZE + data.len() as u64;
        *entry = MetadataTableEntry {
            item_id: *item_id,
            offset: u32::try_from(offset).expect("inside 1 MiB").into(),
            length: u32::try_from(bytes.len()).expect("a few bytes").into(),
            flags: (flags | METADATA_IS_REQUIRED).into(),
            reserved: 0.into(),
        };
        data.extend_from_slice(bytes);
    }
    [table.as_bytes(), &data].concat()
}

/// Writes a dynamic VHDX.
#[derive(Debug)]
pub(crate) struct DynamicWriter {
    map: ClusterMap,
    options: WriteOptions,
    layout: Layout,
    /// The BAT region's length when it sits before the blocks (the size was known).
    front_bat: Option<u64>,
}

impl DynamicWriter {
    pub fn new(file: File, options: &WriteOptions) -> Result<Self> {
        let layout = Layout { block: BLOCK_SIZE };
        let known = options
            .max_virtual_size
            .map(|size| size.next_multiple_of(MIB));
        let max = known.unwrap_or(VHDX_MAX_VIRTUAL_SIZE);
        check_size(max)?;
        let front_bat = known.map(|size| layout.bat_region(size));
        let slots = SlotLayout {
            unit: layout.block,
            first: FRONT_BAT_OFFSET + front_bat.unwrap_or(0),
            stride: layout.block,
            data: 0,
        };
        Ok(DynamicWriter {
            map: ClusterMap::new(file, slots, "VHDX", max),
            options: options.clone(),
            layout,
            front_bat,
        })
    }
}

impl ImageWriter for DynamicWriter {
    fn as_disk(&self) -> &dyn VirtualDisk {
        &self.map
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let alloc = self.map.into_allocation()?;
        let size = alloc.size.next_multiple_of(MIB);
        check_size(size)?;
        let layout = self.layout;
        let bat = layout.bat(size, |block| {
            alloc.slot(block).map(|slot| alloc.layout.data_offset(slot))
        });
        // Blocks are whole MiB from a MiB boundary: the data ends on one too.
        let (bat_offset, bat_length) = match self.front_bat {
            Some(reserved) => (FRONT_BAT_OFFSET, reserved),
            None => (alloc.data_end(), layout.bat_region(size)),
        };
        let end = alloc.data_end().max(bat_offset + bat_length);
        let file = &alloc.file;
        let write = |bytes: &[u8], at: u64, what: &'static str| {
            file.write_all_at(bytes, at)
                .map_err(Error::output(what, at))
        };
        write(
            bat.as_bytes(),
            bat_offset,
            "writing the VHDX block allocation table",
        )?;
        write(
            &metadata(&self.options, size, layout.block),
            METADATA_OFFSET,
            "writing the VHDX metadata",
        )?;
        let bat_length = u32::try_from(bat_length).map_err(|_| Error::TooLarge {
            format: "VHDX",
            size,
            max: VHDX_MAX_VIRTUAL_SIZE,
        })?;
        let table = region_table(bat_offset, bat_length);
        for at in REGION_TABLE_OFFSETS {
            write(table.as_bytes(), at, "writing a VHDX region table")?;
        }
        for (header, at) in headers(&self.options).iter().zip(HEADER_OFFSETS) {
            write(header.as_bytes(), at, "writing a VHDX header")?;
        }
        write(
            file_identifier().as_bytes(),
            0,
            "writing the VHDX file type identifier",
        )?;
        file.set_len(end)
            .map_err(Error::output("sizing the image", end))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use d2l_disk::bytes::FromBytes;

    use super::*;
    use crate::vhdx::header::{checksum, CHECKSUM_AT, PAYLOAD_BLOCK_FULLY_PRESENT};

    #[test]
    fn header_bytes_field_by_field() {
        let mut options = WriteOptions::new(crate::Format::Vhdx, "x.vhdx");
        options.identity = [7; 16];
        let [h1, h2] = headers(&options);
        let b = h2.as_bytes();
        assert_eq!(&b[0..4], b"head");
        assert_eq!(&b[8..16], &[2, 0, 0, 0, 0, 0, 0, 0], "sequence number 2");
        assert_ne!(&b[16..32], &b[32..48], "file and data write GUIDs differ");
        assert_eq!(&b[48..64], &[0; 16], "no log to replay");
        assert_eq!(&b[64..68], &[0, 0, 1, 0], "log version 0, version 1");
        assert_eq!(&b[68..72], &[0, 0, 0x10, 0], "a 1 MiB log");
        assert_eq!(&b[72..80], &[0, 0, 0x10, 0, 0, 0, 0, 0], "at 1 MiB");
        assert!(b[80..].iter().all(|&x| x == 0));
        let sum = u32::from_le_bytes(b[4..8].try_into().unwrap());
        assert_eq!(sum, checksum(b, CHECKSUM_AT));
        assert_eq!(h1.sequence_number.get(), 1);
        assert_eq!(h1.file_write_guid, h2.file_write_guid);
        options.identity = [8; 16];
        assert_ne!(headers(&options)[1].file_write_guid, h2.file_write_guid);
    }

    #[test]
    fn region_table_bytes() {
        let table = region_table(5 * MIB, 2 << 20);
        let b = table.as_bytes();
        assert_eq!(&b[0..4], b"regi");
        assert_eq!(&b[8..12], &[2, 0, 0, 0], "two entries");
        assert_eq!(&b[16..32], &BAT_REGION);
        assert_eq!(&b[32..40], &[0, 0, 0x50, 0, 0, 0, 0, 0], "BAT at 5 MiB");
        assert_eq!(&b[40..44], &[0, 0, 0x20, 0], "2 MiB long");
        assert_eq!(&b[44..48], &[1, 0, 0, 0], "required");
        assert_eq!(&b[48..64], &METADATA_REGION);
        assert_eq!(
            &b[64..72],
            &[0, 0, 0x20, 0, 0, 0, 0, 0],
            "metadata at 2 MiB"
        );
        assert!(b[80..].iter().all(|&x| x == 0));
        let sum = u32::from_le_bytes(b[4..8].try_into().unwrap());
        assert_eq!(sum, checksum(b, CHECKSUM_AT));
    }

    #[test]
    fn metadata_items_follow_the_table() {
        let mut options = WriteOptions::new(crate::Format::Vhdx, "x.vhdx");
        options.identity = *b"0123456789abcdef";
        let m = metadata(&options, 3 << 30, MIB);
        assert_eq!(m.len(), 64 * 1024 + 40);
        assert_eq!(&m[0..8], b"metadata");
        assert_eq!(&m[10..12], &[5, 0]);
        let entry = |i: usize| &m[32 + 32 * i..64 + 32 * i];
        assert_eq!(&entry(0)[..16], &FILE_PARAMETERS);
        assert_eq!(&entry(0)[16..28], &[0, 0, 1, 0, 8, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(&entry(1)[..16], &VIRTUAL_DISK_SIZE);
        assert_eq!(&entry(1)[16..28], &[8, 0, 1, 0, 8, 0, 0, 0, 6, 0, 0, 0]);
        assert_eq!(&entry(4)[16..28], &[36, 0, 1, 0, 4, 0, 0, 0, 6, 0, 0, 0]);
        let items = &m[64 << 10..];
        assert_eq!(&items[0..8], &[0, 0, 0x10, 0, 0, 0, 0, 0], "1 MiB, dynamic");
        assert_eq!(&items[8..16], &[0, 0, 0, 0xc0, 0, 0, 0, 0], "3 GiB");
        assert_eq!(&items[16..20], b"3210", "the identity as a GUID");
        assert_eq!(&items[32..40], &[0, 2, 0, 0, 0, 0x10, 0, 0], "512, 4096");
    }

    #[test]
    fn bat_marks_written_blocks_present_and_the_others_zero() {
        let layout = Layout { block: MIB };
        // 4097 blocks: one chunk and one block, a sector bitmap entry between.
        let size = 4097 * MIB;
        assert_eq!(layout.bat_region(size), MIB, "4098 entries in 1 MiB");
        assert_eq!(layout.bat_region(0), MIB);
        assert_eq!(layout.bat_region(131_072 * MIB), 2 * MIB);
        let bat = layout.bat(size, |b| (b % 2 == 0).then_some((10 + b) * MIB));
        assert_eq!(bat.len(), 4098);
        assert_eq!(bat[0].get(), (10 << 20) | PAYLOAD_BLOCK_FULLY_PRESENT);
        assert_eq!(bat[1].get(), PAYLOAD_BLOCK_ZERO);
        assert_eq!(bat[4096].get(), 0, "the sector bitmap entry");
        assert_eq!(
            bat[4097].get(),
            ((10 + 4096) << 20) | PAYLOAD_BLOCK_FULLY_PRESENT
        );
    }

    #[test]
    fn the_same_writes_give_the_same_file() {
        let write = |identity: [u8; 16]| {
            let file = tempfile::tempfile().unwrap();
            let mut options = WriteOptions::new(crate::Format::Vhdx, "x.vhdx");
            options.identity = identity;
            let writer = DynamicWriter::new(file.try_clone().unwrap(), &options).unwrap();
            writer
                .as_disk()
                .write_at(&[3; 5000], 7 * MIB - 100)
                .unwrap();
            writer.as_disk().write_at(&[4; 512], 0).unwrap();
            Box::new(writer).finish().unwrap();
            let mut bytes = vec![0u8; usize::try_from(file.metadata().unwrap().len()).unwrap()];
            file.read_exact_at(&mut bytes, 0).unwrap();
            bytes
        };
        let first = write([1; 16]);
        assert_eq!(
            first.len() as u64,
            3 * MIB + 3 * MIB + MIB,
            "3 blocks, the BAT"
        );
        assert!(first == write([1; 16]));
        assert!(
            first != write([2; 16]),
            "the identifiers follow the identity"
        );
    }

    #[test]
    fn a_disk_past_its_announced_size_is_an_error() {
        let mut options = WriteOptions::new(crate::Format::Vhdx, "x.vhdx");
        options.max_virtual_size = Some(4 * MIB);
        let writer = DynamicWriter::new(tempfile::tempfile().unwrap(), &options).unwrap();
        writer.as_disk().write_at(&[1; 512], 4 * MIB - 512).unwrap();
        let err = writer.as_disk().write_at(&[1; 512], 4 * MIB).unwrap_err();
        assert!(
            err.to_string()
                .contains("a VHDX disk written by d2l holds at most 4194304 bytes"),
            "{err}"
        );
        options.max_virtual_size = Some(VHDX_MAX_VIRTUAL_SIZE + 1);
        let err = DynamicWriter::new(tempfile::tempfile().unwrap(), &options).unwrap_err();
        assert!(
            err.to_string()
                .contains("at most 70368744177664 bytes (65536 GiB)"),
            "{err}"
        );
    }

    #[test]
    fn file_identifier_names_d2l() {
        let id = file_identifier();
        assert_eq!(&id.signature, b"vhdxfile");
        let (creator, _) = <[u8; 6]>::read_from_prefix(&id.creator).unwrap();
        assert_eq!(&creator, b"d\x002\x00l\x00");
    }

    #[test]
    fn blocks_follow_a_bat_sized_for_a_known_disk_or_the_metadata() {
        let mut options = WriteOptions::new(crate::Format::Vhdx, "x.vhdx");
        options.max_virtual_size = Some(1341 * MIB);
        let w = DynamicWriter::new(tempfile::tempfile().unwrap(), &options).unwrap();
        assert_eq!(w.front_bat, Some(MIB));
        let layout = w.map.into_allocation().unwrap().layout;
        assert_eq!(layout.slot_offset(0), 4 * MIB);
        assert_eq!(layout.slot_offset(1), 5 * MIB);
        options.max_virtual_size = None;
        let w = DynamicWriter::new(tempfile::tempfile().unwrap(), &options).unwrap();
        assert_eq!(
            w.map.into_allocation().unwrap().layout.slot_offset(0),
            3 * MIB
        );
    }
}
