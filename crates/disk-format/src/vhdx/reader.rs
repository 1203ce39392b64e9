//! Reading VHDX images (MS-VHDX 1.0), dynamic or fixed, for `d2l convert`.
//!
//! The first MiB is the header section: the file type identifier, two headers (the current
//! one is the valid one with the higher sequence number) and two copies of the region
//! table, which says where the block allocation table (BAT) and the metadata region are.
//! The metadata gives the block size, the virtual disk's size and its sector sizes; the BAT
//! gives, per payload block, its state and its offset in the file, with a sector bitmap
//! entry after each chunk of blocks. Every checksum, offset, length and state is checked
//! when the image is opened, against the specification and the file: a region or block
//! past the end, or overlapping the header section, the log or another region, is an error
//! naming both.
//!
//! What d2l does not read is refused by name: a log not yet replayed (a non-zero LogGuid:
//! the file's metadata is stale until Hyper-V or QEMU applies it), and differencing VHDXs
//! (a parent). Blocks not present, undefined, zero or unmapped read as zeros, as QEMU reads
//! them (the specification lets a reader return zeros for each of these states). Reserved bits of BAT entries are ignored,
//! and so are regions and metadata items the image does not mark required.

use std::fmt;
use std::fs::File;

use d2l_disk::bytes::{FromBytes, FromZeros, IntoBytes};

use super::header::{
    bat_entries, chunk_ratio, file_offset, guid_text, state, BatEntry, FileIdentifier,
    FileParameters, Header, MetadataTable, RegionTable, BAT_REGION, FILE_PARAMETERS, HAS_PARENT,
    HEADER_OFFSETS, HEADER_SECTION, HEADER_SIGNATURE, LOGICAL_SECTOR_SIZE, LOG_VERSION,
    MAX_METADATA_ITEM, MAX_TABLE_ENTRIES, METADATA_IS_REQUIRED, METADATA_REGION,
    METADATA_SIGNATURE, METADATA_TABLE_SIZE, MIB, PARENT_LOCATOR, PAYLOAD_BLOCK_FULLY_PRESENT,
    PAYLOAD_BLOCK_NOT_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT, PAYLOAD_BLOCK_UNDEFINED,
    PAYLOAD_BLOCK_UNMAPPED, PAYLOAD_BLOCK_ZERO, PHYSICAL_SECTOR_SIZE, REGION_REQUIRED,
    REGION_SIGNATURE, REGION_TABLE_OFFSETS, SB_BLOCK_NOT_PRESENT, SIGNATURE, VERSION,
    VHDX_MAX_BAT_ENTRIES, VHDX_MAX_BLOCK_SIZE, VHDX_MAX_VIRTUAL_SIZE, VHDX_MIN_BLOCK_SIZE,
    VIRTUAL_DISK_ID, VIRTUAL_DISK_SIZE,
};
use crate::image_file::{corrupt, ImageFile};
use crate::read::DiskReader;
use crate::unit_map::{Unit, UnitMap};
use crate::usize_from;
use crate::{Error, Format, Result};

/// BAT entries read at a time (512 KiB).
const BAT_CHUNK: u64 = 64 << 10;

/// Opens a VHDX, checking its headers, region table, metadata and BAT.
pub(crate) fn open(file: File) -> Result<Box<dyn DiskReader>> {
    Ok(Box::new(Vhdx::open(ImageFile::new(file)?)?))
}

/// A part of the file that holds metadata, which nothing else may overlap.
#[derive(Debug)]
struct Extent {
    start: u64,
    end: u64,
    name: String,
}

impl fmt::Display for Extent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the VHDX {} ({:#x}..{:#x})",
            self.name, self.start, self.end
        )
    }
}

/// The metadata extents of the file, to check what comes after against: sorted, none
/// overlapping another, so that each of millions of blocks is checked in a few steps.
#[derive(Debug, Default)]
struct Extents(Vec<Extent>);

impl Extents {
    /// The extent `start..end` overlaps, if any.
    fn overlapped(&self, start: u64, end: u64) -> Option<&Extent> {
        let first_ending_after = self.0.partition_point(|e| e.end <= start);
        self.0
            .get(first_ending_after)
            .filter(|e| e.start < end && start < end)
    }

    /// Adds `len` bytes at `start`, named `name`, after checking they overlap nothing.
    fn add(&mut self, name: String, start: u64, len: u64) -> Result<()> {
        let extent = Extent {
            start,
            end: start + len,
            name,
        };
        if let Some(other) = self.overlapped(extent.start, extent.end) {
            return Err(corrupt(format!("{extent} overlaps {other}")));
        }
        let at = self.0.partition_point(|e| e.end <= start);
        self.0.insert(at, extent);
        Ok(())
    }
}

/// Reads header `index` (0 or 1): the header, or why it is not valid.
fn read_header(file: &ImageFile, index: usize) -> Result<std::result::Result<Header, String>> {
    let at = HEADER_OFFSETS[index];
    let mut h = Header::new_zeroed();
    file.read(
        format_args!("VHDX header {}", index + 1),
        h.as_mut_bytes(),
        at,
    )?;
    if h.signature != HEADER_SIGNATURE {
        return Ok(Err("has no \"head\" signature".into()));
    }
    let (stored, computed) = (h.checksum.get(), h.computed_checksum());
    if stored != computed {
        return Ok(Err(format!(
            "has checksum {stored:#010x}, its bytes give {computed:#010x}"
        )));
    }
    if h.version.get() != VERSION {
        return Ok(Err(format!(
            "has version {} (the format's is {VERSION})",
            h.version.get()
        )));
    }
    Ok(Ok(h))
}

/// The current header: the valid one with the higher sequence number (MS-VHDX 2.2.2.1).
fn current_header(file: &ImageFile) -> Result<Header> {
    let [first, second] = [read_header(file, 0)?, read_header(file, 1)?];
    let [a, b] = HEADER_OFFSETS;
    Ok(match (first, second) {
        (Ok(h1), Ok(h2)) => {
            let (s1, s2) = (h1.sequence_number.get(), h2.sequence_number.get());
            if s1 > s2 || (s1 == s2 && h1.as_bytes() == h2.as_bytes()) {
                h1
            } else if s2 > s1 {
                h2
            } else {
                return Err(corrupt(format!(
                    "the VHDX headers at {a:#x} and {b:#x} differ but have the same sequence number {s1}: neither is current"
                )));
            }
        }
        (Ok(h), Err(_)) | (Err(_), Ok(h)) => h,
        (Err(e1), Err(e2)) => {
            return Err(corrupt(format!(
                "no valid VHDX header: the one at {a:#x} {e1}, the one at {b:#x} {e2}"
            )))
        }
    })
}

/// Reads the region table at `at`: the table, or why it is not valid.
fn read_region_table(
    file: &ImageFile,
    at: u64,
) -> Result<std::result::Result<Box<RegionTable>, String>> {
    let mut table = Box::new(RegionTable::new_zeroed());
    file.read("the VHDX region table", table.as_mut_bytes(), at)?;
    if table.header.signature != REGION_SIGNATURE {
        return Ok(Err(format!(
            "the VHDX region table at {at:#x} has no \"regi\" signature"
        )));
    }
    let (stored, computed) = (table.header.checksum.get(), table.computed_checksum());
    if stored != computed {
        return Ok(Err(format!(
            "the VHDX region table at {at:#x} has checksum {stored:#010x}, its bytes give {computed:#010x}"
        )));
    }
    let count = table.header.entry_count.get();
    if count > MAX_TABLE_ENTRIES {
        return Ok(Err(format!(
            "the VHDX region table at {at:#x} has {count} entries (at most {MAX_TABLE_ENTRIES})"
        )));
    }
    Ok(Ok(table))
}

/// Where a region is.
#[derive(Debug, Clone, Copy)]
struct Region {
    offset: u64,
    length: u64,
}

/// The BAT and metadata regions, from the first valid region table, checked against the
/// file and `extents` (which they join).
fn regions(file: &ImageFile, extents: &mut Extents) -> Result<(Region, Region)> {
    let [a, b] = REGION_TABLE_OFFSETS;
    // The second copy is there for when the first is damaged (MS-VHDX 2.2.3).
    let table = match read_region_table(file, a)? {
        Ok(table) => table,
        Err(first) => read_region_table(file, b)?
            .map_err(|second| corrupt(format!("{first}, and {second}")))?,
    };
    let (mut bat, mut metadata) = (None, None);
    let count = usize_from(u64::from(table.header.entry_count.get()));
    for entry in &table.entries[..count] {
        let (offset, length) = (entry.file_offset.get(), u64::from(entry.length.get()));
        let (name, slot) = match entry.guid {
            BAT_REGION => ("BAT region".to_string(), Some(&mut bat)),
            METADATA_REGION => ("metadata region".to_string(), Some(&mut metadata)),
            other if entry.required.get() & REGION_REQUIRED != 0 => {
                return Err(Error::Unsupported(format!(
                    "a VHDX with a region d2l does not know ({}) that it marks required",
                    guid_text(&other)
                )))
            }
            other => (format!("region {}", guid_text(&other)), None),
        };
        if offset % MIB != 0 || length % MIB != 0 || offset < HEADER_SECTION || length == 0 {
            return Err(corrupt(format!(
                "the VHDX {name} ({length} bytes at {offset:#x}) is not whole MiB after the header section"
            )));
        }
        file.check(format_args!("the VHDX {name}"), offset, length)?;
        extents.add(name.clone(), offset, length)?;
        if let Some(slot) = slot {
            if slot.replace(Region { offset, length }).is_some() {
                return Err(corrupt(format!("the VHDX region table names two {name}s")));
            }
        }
    }
    match (bat, metadata) {
        (Some(bat), Some(metadata)) => Ok((bat, metadata)),
        (None, _) => Err(corrupt("the VHDX region table has no BAT region".into())),
        (_, None) => Err(corrupt(
            "the VHDX region table has no metadata region".into(),
        )),
    }
}

/// What the metadata says about the virtual disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Metadata {
    block: u64,
    size: u64,
    logical_sector: u64,
}

/// The metadata items d2l reads: (GUID, name, length).
const ITEMS: [([u8; 16], &str, u32); 5] = [
    (FILE_PARAMETERS, "file parameters", 8),
    (VIRTUAL_DISK_SIZE, "virtual disk size", 8),
    (VIRTUAL_DISK_ID, "virtual disk ID", 16),
    (LOGICAL_SECTOR_SIZE, "logical sector size", 4),
    (PHYSICAL_SECTOR_SIZE, "physical sector size", 4),
];

/// Reads and checks the metadata table and the items d2l needs.
fn metadata(file: &ImageFile, region: Region) -> Result<Metadata> {
    let mut table = Box::new(MetadataTable::new_zeroed());
    let at = region.offset;
    file.read("the VHDX metadata table", table.as_mut_bytes(), at)?;
    if table.header.signature != METADATA_SIGNATURE {
        return Err(corrupt(format!(
            "the VHDX metadata table at {at:#x} has no \"metadata\" signature"
        )));
    }
    let count = u32::from(table.header.entry_count.get());
    if count > MAX_TABLE_ENTRIES {
        return Err(corrupt(format!(
            "the VHDX metadata table at {at:#x} has {count} entries (at most {MAX_TABLE_ENTRIES})"
        )));
    }
    let mut found: [Option<Vec<u8>>; ITEMS.len()] = Default::default();
    let mut parent_locator = false;
    for entry in &table.entries[..usize_from(u64::from(count))] {
        let (offset, length) = (entry.offset.get(), entry.length.get());
        let known = ITEMS.iter().position(|(id, _, _)| *id == entry.item_id);
        let name = match known {
            Some(i) => ITEMS[i].1.to_string(),
            None if entry.item_id == PARENT_LOCATOR => "parent locator".into(),
            None => format!("item {}", guid_text(&entry.item_id)),
        };
        let placed = if length == 0 {
            offset == 0
        } else {
            u64::from(offset) >= METADATA_TABLE_SIZE
                && length <= MAX_METADATA_ITEM
                && u64::from(offset) + u64::from(length) <= region.length
        };
        if !placed {
            return Err(corrupt(format!(
                "the VHDX metadata {name} ({length} bytes at {offset:#x} in the metadata region of {} bytes) is not after the table, inside the region",
                region.length
            )));
        }
        let Some(i) = known else {
            if entry.item_id == PARENT_LOCATOR {
                parent_locator = true;
            } else if entry.flags.get() & METADATA_IS_REQUIRED != 0 {
                return Err(Error::Unsupported(format!(
                    "a VHDX with a metadata {name} d2l does not know that it marks required"
                )));
            }
            continue;
        };
        let expected = ITEMS[i].2;
        if length != expected {
            return Err(corrupt(format!(
                "the VHDX metadata {name} is {length} bytes, not {expected}"
            )));
        }
        if found[i].is_some() {
            return Err(corrupt(format!(
                "the VHDX metadata table has two {name} items"
            )));
        }
        let mut bytes = vec![0u8; usize_from(u64::from(length))];
        file.read(
            format_args!("the VHDX metadata {name}"),
            &mut bytes,
            at + u64::from(offset),
        )?;
        found[i] = Some(bytes);
    }
    let [parameters, size, _id, logical, physical] = found;
    let item = |bytes: Option<Vec<u8>>, i: usize| {
        bytes.ok_or_else(|| {
            corrupt(format!(
                "the VHDX metadata has no {} item (it is required)",
                ITEMS[i].1
            ))
        })
    };
    let u32_of = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
    let (parameters, _) = FileParameters::read_from_prefix(&item(parameters, 0)?).expect("8 bytes");
    let size = u64::from_le_bytes(item(size, 1)?[..8].try_into().expect("8 bytes"));
    let logical = u32_of(&item(logical, 3)?);
    let physical = u32_of(&item(physical, 4)?);
    if parameters.flags.get() & HAS_PARENT != 0 || parent_locator {
        return Err(Error::Unsupported(
            "a differencing VHDX: its data depends on a parent disk; merge it in Hyper-V or convert the chain with qemu-img first"
                .into(),
        ));
    }
    let block = parameters.block_size.get();
    if !block.is_power_of_two() || !(VHDX_MIN_BLOCK_SIZE..=VHDX_MAX_BLOCK_SIZE).contains(&block) {
        return Err(corrupt(format!(
            "the VHDX file parameters: block size {block} is not a power of two from {VHDX_MIN_BLOCK_SIZE} to {VHDX_MAX_BLOCK_SIZE} bytes"
        )));
    }
    for (what, value) in [("logical", logical), ("physical", physical)] {
        if value != 512 && value != 4096 {
            return Err(corrupt(format!(
                "the VHDX metadata: {what} sector size {value} is neither 512 nor 4096"
            )));
        }
    }
    let logical_sector = u64::from(logical);
    if size % logical_sector != 0 || size > VHDX_MAX_VIRTUAL_SIZE {
        return Err(corrupt(format!(
            "the VHDX metadata: virtual disk size {size} is not a multiple of the {logical}-byte sector up to {VHDX_MAX_VIRTUAL_SIZE}"
        )));
    }
    Ok(Metadata {
        block: u64::from(block),
        size,
        logical_sector,
    })
}

/// A payload block and its BAT entry, as errors name them.
#[derive(Debug, Clone, Copy)]
struct BlockName {
    block: u64,
    index: u64,
}

impl fmt::Display for BlockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VHDX block {} (BAT entry {})", self.block, self.index)
    }
}

/// A VHDX: payload blocks found through the BAT.
#[derive(Debug)]
struct Vhdx {
    file: ImageFile,
    size: u64,
    /// Bytes per payload block.
    block: u64,
    /// Per payload block: its offset in the file in MiB, checked, or 0 for zeros.
    blocks: Vec<u32>,
}

impl Vhdx {
    fn open(file: ImageFile) -> Result<Self> {
        let len = file.len();
        if len < HEADER_SECTION {
            return Err(corrupt(format!(
                "VHDX header section truncated: the file is {len} bytes, the header section needs {HEADER_SECTION}"
            )));
        }
        let mut id = FileIdentifier::new_zeroed();
        file.read("the VHDX file type identifier", id.as_mut_bytes(), 0)?;
        if id.signature != SIGNATURE {
            return Err(corrupt(
                "the VHDX file type identifier has no \"vhdxfile\" signature".into(),
            ));
        }
        let header = current_header(&file)?;
        if header.log_guid != [0; 16] {
            return Err(Error::Unsupported(format!(
                "a VHDX whose log holds updates not yet applied (log GUID {}): open it once in Hyper-V, or run `qemu-img check -r all` on it, then convert it",
                guid_text(&header.log_guid)
            )));
        }
        if header.log_version.get() != LOG_VERSION {
            return Err(corrupt(format!(
                "the VHDX header: log version {} (the format's is {LOG_VERSION})",
                header.log_version.get()
            )));
        }
        let mut extents = Extents::default();
        extents.add("header section".into(), 0, HEADER_SECTION)?;
        let (log_offset, log_length) =
            (header.log_offset.get(), u64::from(header.log_length.get()));
        if log_length > 0 {
            if log_offset % MIB != 0 || log_length % MIB != 0 {
                return Err(corrupt(format!(
                    "the VHDX log ({log_length} bytes at {log_offset:#x}) is not whole MiB"
                )));
            }
            file.check("the VHDX log", log_offset, log_length)?;
            extents.add("log".into(), log_offset, log_length)?;
        }
        let (bat, metadata_region) = regions(&file, &mut extents)?;
        let m = metadata(&file, metadata_region)?;
        let ratio = chunk_ratio(m.block, m.logical_sector);
        let block_count = m.size.div_ceil(m.block);
        let entries = bat_entries(block_count, ratio);
        if entries > VHDX_MAX_BAT_ENTRIES {
            return Err(Error::Unsupported(format!(
                "a VHDX block allocation table of {entries} entries (d2l reads up to {VHDX_MAX_BAT_ENTRIES})"
            )));
        }
        if entries * 8 > bat.length {
            return Err(corrupt(format!(
                "the VHDX BAT region ({} bytes) is smaller than the {entries} entries a disk of {} bytes in blocks of {} needs",
                bat.length, m.size, m.block
            )));
        }
        let mut blocks = Vec::with_capacity(usize_from(block_count));
        let mut raw = vec![BatEntry::new(0); usize_from(BAT_CHUNK)];
        for first in (0..entries).step_by(usize_from(BAT_CHUNK)) {
            let n = (entries - first).min(BAT_CHUNK);
            let chunk = &mut raw[..usize_from(n)];
            file.read(
                "the VHDX block allocation table",
                chunk.as_mut_bytes(),
                bat.offset + first * 8,
            )?;
            for (index, entry) in (first..).zip(chunk.iter().map(|e| e.get())) {
                let state = state(entry);
                // A sector bitmap entry follows each chunk of payload entries.
                if (index + 1) % (ratio + 1) == 0 {
                    if state != SB_BLOCK_NOT_PRESENT {
                        return Err(corrupt(format!(
                            "VHDX BAT entry {index}, a sector bitmap's, has state {state}: without a parent there are none"
                        )));
                    }
                    continue;
                }
                let block = blocks.len() as u64;
                blocks.push(match state {
                    PAYLOAD_BLOCK_NOT_PRESENT
                    | PAYLOAD_BLOCK_UNDEFINED
                    | PAYLOAD_BLOCK_ZERO
                    | PAYLOAD_BLOCK_UNMAPPED => 0,
                    PAYLOAD_BLOCK_FULLY_PRESENT => {
                        let what = BlockName { block, index };
                        let at = file_offset(entry);
                        // Only the part inside the virtual disk is read (QEMU once wrote the
                        // last block short).
                        let inside = m.block.min(m.size - block * m.block);
                        file.check(what, at, inside)?;
                        if let Some(other) = extents.overlapped(at, at + inside) {
                            return Err(corrupt(format!("{what} at {at:#x} overlaps {other}")));
                        }
                        u32::try_from(at / MIB).map_err(|_| {
                            corrupt(format!("{what} at {at:#x} is past any file's end"))
                        })?
                    }
                    PAYLOAD_BLOCK_PARTIALLY_PRESENT => {
                        return Err(corrupt(format!(
                            "VHDX BAT entry {index} is partially present, which only a differencing VHDX's can be"
                        )))
                    }
                    other => {
                        return Err(corrupt(format!(
                            "VHDX BAT entry {index} has the reserved state {other}"
                        )))
                    }
                });
            }
        }
        Ok(Vhdx {
            file,
            size: m.size,
            block: m.block,
            blocks,
        })
    }
}

impl UnitMap for Vhdx {
    fn image_format(&self) -> Format {
        Format::Vhdx
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
        let entry = usize::try_from(index).ok().and_then(|i| self.blocks.get(i));
        Ok(match *entry.expect("a unit inside the disk") {
            0 => Unit::Zero,
            mib => Unit::Stored(u64::from(mib) * MIB),
        })
    }

    fn stored_units(&self, stored: &mut dyn FnMut(u64) -> Result<()>) -> Result<()> {
        for (index, &mib) in self.blocks.iter().enumerate() {
            if mib != 0 {
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
    use crate::vhdx::header::present;
    use crate::vhdx::writer::DynamicWriter;
    use crate::{ImageWriter, WriteOptions};

    /// A 6 MiB VHDX as d2l writes it, its size known in advance or not: bytes in blocks 4
    /// (written first) and 0.
    fn image(known: bool) -> File {
        let file = tempfile::tempfile().unwrap();
        let mut options = WriteOptions::new(Format::Vhdx, "t.vhdx");
        options.max_virtual_size = known.then_some(6 * MIB);
        let writer = DynamicWriter::new(file.try_clone().unwrap(), &options).unwrap();
        writer
            .as_disk()
            .write_at(&[0xcd; 1000], 4 * MIB + 5)
            .unwrap();
        writer.as_disk().write_at(&[0xab; 512], 0).unwrap();
        writer.as_disk().grow_to(6 * MIB).unwrap();
        Box::new(writer).finish().unwrap();
        file
    }

    fn open_error(file: &File) -> String {
        match open(file.try_clone().unwrap()) {
            Ok(_) => String::new(),
            Err(e) => {
                let message = e.to_string();
                assert!(!message.contains('\n'), "one line: {message}");
                message
            }
        }
    }

    /// Changes header `index` with `edit` and sets its checksum.
    fn edit_header(file: &File, index: usize, edit: impl FnOnce(&mut Header)) {
        let mut h = Header::new_zeroed();
        let at = HEADER_OFFSETS[index];
        file.read_exact_at(h.as_mut_bytes(), at).unwrap();
        edit(&mut h);
        h.checksum = h.computed_checksum().into();
        file.write_all_at(h.as_bytes(), at).unwrap();
    }

    /// Where the BAT is, from the first region table.
    fn bat_offset(file: &File) -> u64 {
        let mut entry = [0u8; 8];
        file.read_exact_at(&mut entry, REGION_TABLE_OFFSETS[0] + 32)
            .unwrap();
        u64::from_le_bytes(entry)
    }

    #[test]
    fn extents_added_in_any_order_find_what_a_range_overlaps() {
        let mut extents = Extents::default();
        for (name, start) in [("BAT", 5), ("log", 1), ("metadata", 3)] {
            extents.add(name.into(), start * MIB, MIB).unwrap();
        }
        let hit = |start: u64, end: u64| extents.overlapped(start, end).map(|e| e.name.as_str());
        assert_eq!(hit(0, MIB), None);
        assert_eq!(hit(2 * MIB - 1, 2 * MIB), Some("log"));
        assert_eq!(hit(2 * MIB, 3 * MIB), None);
        assert_eq!(hit(4 * MIB, 5 * MIB + 1), Some("BAT"));
        assert_eq!(hit(0, 10 * MIB), Some("log"), "the first it overlaps");
        assert_eq!(
            extents
                .add("block".into(), 3 * MIB + 512, 10)
                .unwrap_err()
                .to_string(),
            "the VHDX block (0x300200..0x30020a) overlaps the VHDX metadata (0x300000..0x400000)"
        );
    }

    #[test]
    fn reads_what_the_writer_wrote_with_the_table_before_or_after_the_blocks() {
        for known in [true, false] {
            let reader = open(image(known)).unwrap();
            assert_eq!(reader.format(), Format::Vhdx);
            assert_eq!(reader.virtual_size(), 6 * MIB);
            let mut disk = vec![1u8; 6 << 20];
            reader.read_at(&mut disk, 0).unwrap();
            let mut expected = vec![0u8; 6 << 20];
            expected[..512].fill(0xab);
            expected[(4 << 20) + 5..(4 << 20) + 1005].fill(0xcd);
            assert!(disk == expected, "size known: {known}");
            let mut ranges = Vec::new();
            reader
                .data_ranges(&mut |start, len| {
                    ranges.push((start, len));
                    Ok(())
                })
                .unwrap();
            assert_eq!(ranges, [(0, MIB), (4 * MIB, MIB)]);
        }
    }

    #[test]
    fn the_current_header_is_the_valid_one_with_the_higher_sequence_number() {
        let file = image(true);
        // The current header (sequence number 2) damaged: the other one serves.
        file.write_all_at(&[0x5a], HEADER_OFFSETS[1] + 100).unwrap();
        assert_eq!(open_error(&file), "");
        file.write_all_at(&[0x5a], HEADER_OFFSETS[0] + 100).unwrap();
        let message = open_error(&file);
        assert!(
            message.starts_with("no valid VHDX header: the one at 0x10000 has checksum"),
            "{message}"
        );
        assert!(
            message.contains("the one at 0x20000 has checksum"),
            "{message}"
        );

        let file = image(true);
        edit_header(&file, 0, |h| h.sequence_number = 2.into());
        assert_eq!(
            open_error(&file),
            "",
            "identical headers, as Disk2VHD writes"
        );
        edit_header(&file, 0, |h| h.reserved[0] = 1);
        assert_eq!(
            open_error(&file),
            "the VHDX headers at 0x10000 and 0x20000 differ but have the same sequence number 2: neither is current"
        );
        edit_header(&file, 1, |h| h.version = 2.into());
        assert_eq!(open_error(&file), "", "header 2 is not valid");
    }

    #[test]
    fn a_log_not_replayed_is_refused_with_what_to_do() {
        let file = image(true);
        edit_header(&file, 1, |h| h.log_guid = [9; 16]);
        let message = open_error(&file);
        assert!(
            message.starts_with("a VHDX whose log holds updates not yet applied (log GUID 09090909-0909-0909-0909-090909090909)"),
            "{message}"
        );
        assert!(message.contains("qemu-img check -r all"), "{message}");
        edit_header(&file, 1, |h| {
            h.log_guid = [0; 16];
            h.log_offset = (MIB / 2).into();
        });
        assert!(open_error(&file).contains("is not whole MiB"));
    }

    #[test]
    fn the_second_region_table_serves_when_the_first_is_damaged() {
        let file = image(false);
        file.write_all_at(&[0x5a], REGION_TABLE_OFFSETS[0] + 1000)
            .unwrap();
        assert_eq!(open_error(&file), "");
        file.write_all_at(b"xxxx", REGION_TABLE_OFFSETS[1]).unwrap();
        let message = open_error(&file);
        assert!(
            message.starts_with("the VHDX region table at 0x30000 has checksum"),
            "{message}"
        );
        assert!(
            message.ends_with("the VHDX region table at 0x40000 has no \"regi\" signature"),
            "{message}"
        );
    }

    #[test]
    fn bat_entries_are_checked_against_the_file_and_the_metadata() {
        let put = |file: &File, index: u64, entry: u64| {
            file.write_all_at(&entry.to_le_bytes(), bat_offset(file) + 8 * index)
                .unwrap();
        };
        let file = image(true);
        put(&file, 1, present(2 * MIB));
        assert_eq!(
            open_error(&file),
            "VHDX block 1 (BAT entry 1) at 0x200000 overlaps the VHDX metadata region (0x200000..0x300000)"
        );
        put(&file, 1, present(64 * MIB));
        let message = open_error(&file);
        assert!(
            message.starts_with("VHDX block 1 (BAT entry 1) (1048576 bytes at 0x4000000) lies past the end of the file"),
            "{message}"
        );
        put(&file, 1, (64 << 20) | PAYLOAD_BLOCK_UNDEFINED);
        assert_eq!(
            open_error(&file),
            "",
            "undefined: zeros, the offset reserved"
        );
        put(&file, 1, 7);
        assert_eq!(
            open_error(&file),
            "VHDX BAT entry 1 is partially present, which only a differencing VHDX's can be"
        );
        put(&file, 1, 5);
        assert_eq!(
            open_error(&file),
            "VHDX BAT entry 1 has the reserved state 5"
        );
    }
}
