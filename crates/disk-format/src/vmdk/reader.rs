//! Reading VMware virtual disks held in one file (VMDK specification 1.1, "Virtual Disk
//! Format 5.0"), for `d2l convert`: monolithicSparse and streamOptimized.
//!
//! Both are a hosted sparse extent: a little-endian header ("KDMV") with the capacity, the
//! grain size and the grain directory's place, an embedded text descriptor, and grains found
//! through a two-level map: the grain directory (GD) lists grain tables (GT), whose entries
//! are the sectors of grains, 0 for a grain never written (zeros). The primary GD is read
//! (not the redundant one). In a streamOptimized extent each grain is deflated (a zlib
//! stream after a 12-byte marker holding the grain's first sector and the stream's length)
//! and the header may put the GD "at the end": the footer, a copy of the header near the end
//! of the file, then gives it. The GD and the place of every GT are checked when the image is
//! opened; each GT entry when its table is read; each compressed grain when it is inflated
//! (its marker, its length, the size it inflates to).
//!
//! A VMDK whose data lives in other files (a descriptor file naming extents: monolithicFlat,
//! twoGbMaxExtentSparse, vmfs...; an extent file without its descriptor), or a delta disk
//! with a parent, is refused and named.

use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use flate2::{Decompress, FlushDecompress, Status};

use d2l_disk::bytes::FromBytes;

use super::header::{
    Entry, GrainMarker, Header as RawHeader, MetadataMarker, COMPRESS_DEFLATE, FLAG_COMPRESSED,
    FLAG_MARKERS, FLAG_NL_DETECT, FLAG_ZERO_GRAIN, GD_AT_END, MAGIC, MARKER_EOS, MARKER_FOOTER,
    NL_CHECK, SECTOR, VMDK_MAX_COMPRESSED_GRAIN_SECTORS, VMDK_MAX_DESCRIPTOR_BYTES,
    VMDK_MAX_GD_BYTES, VMDK_MAX_GRAIN_SECTORS, VMDK_MAX_GTES_PER_GT, VMDK_MIN_GRAIN_SECTORS,
    ZERO_GRAIN,
};
use crate::image_file::{corrupt, ImageFile};
use crate::unit_map::{Unit, UnitMap};
use crate::usize_from;
use crate::{Error, Format, Result};

/// Versions of the hosted sparse extent header: 1, 2 (zero grains), 3 (streamOptimized).
const VERSIONS: std::ops::RangeInclusive<u32> = 1..=3;
/// Bytes before a compressed grain's stream: its marker.
const GRAIN_MARKER_BYTES: u64 = size_of::<GrainMarker>() as u64;
/// The create types of a VMDK held whole in one file.
const ONE_FILE_TYPES: [&str; 2] = ["monolithicSparse", "streamOptimized"];

/// What a sparse extent header says.
#[derive(Debug, Clone, Copy)]
struct Header {
    flags: u32,
    /// Capacity in sectors.
    capacity: u64,
    /// Sectors per grain.
    grain: u64,
    /// Sector and sectors of the embedded descriptor.
    descriptor: (u64, u64),
    gtes_per_gt: u32,
    /// Sector of the grain directory, or [`GD_AT_END`].
    gd_offset: u64,
    /// Sectors of metadata before the first grain.
    overhead: u64,
}

impl Header {
    /// Parses and checks a header; `what` says which one.
    fn parse(b: &[u8], what: &str) -> Result<Header> {
        let (h, _) = RawHeader::read_from_prefix(b).expect("a header's bytes");
        if h.magic != MAGIC {
            return Err(corrupt(format!("{what} has no \"KDMV\" magic")));
        }
        let version = h.version.get();
        if !VERSIONS.contains(&version) {
            return Err(Error::Unsupported(format!(
                "VMDK sparse extent version {version} (d2l reads 1 to 3)"
            )));
        }
        let flags = h.flags.get();
        if flags & FLAG_NL_DETECT != 0 && h.nl_check != NL_CHECK {
            return Err(corrupt(format!(
                "{what}: its line-end check characters are changed (the file went through a text-mode transfer)"
            )));
        }
        if flags & FLAG_COMPRESSED != 0 {
            let algorithm = h.compress_algorithm.get();
            if algorithm != COMPRESS_DEFLATE {
                return Err(Error::Unsupported(format!(
                    "VMDK compression algorithm {algorithm} (d2l reads deflate, 1)"
                )));
            }
            if flags & FLAG_MARKERS == 0 {
                return Err(Error::Unsupported(
                    "a VMDK with compressed grains but no markers (d2l reads streamOptimized ones)"
                        .into(),
                ));
            }
        }
        let grain = h.grain_size.get();
        let max = if flags & FLAG_COMPRESSED != 0 {
            VMDK_MAX_COMPRESSED_GRAIN_SECTORS
        } else {
            VMDK_MAX_GRAIN_SECTORS
        };
        if !grain.is_power_of_two() || !(VMDK_MIN_GRAIN_SECTORS..=max).contains(&grain) {
            return Err(corrupt(format!(
                "{what}: a grain of {grain} sectors is not a power of two from {VMDK_MIN_GRAIN_SECTORS} to {max}"
            )));
        }
        let gtes_per_gt = h.num_gtes_per_gt.get();
        if gtes_per_gt == 0 || gtes_per_gt > VMDK_MAX_GTES_PER_GT {
            return Err(corrupt(format!(
                "{what}: grain tables of {gtes_per_gt} entries (1 to {VMDK_MAX_GTES_PER_GT})"
            )));
        }
        Ok(Header {
            flags,
            capacity: h.capacity.get(),
            grain,
            descriptor: (h.descriptor_offset.get(), h.descriptor_size.get()),
            gtes_per_gt,
            gd_offset: h.gd_offset.get(),
            overhead: h.overhead.get(),
        })
    }

    fn compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }
}

/// What a descriptor says about where the disk's data is.
#[derive(Debug, Default, PartialEq, Eq)]
struct Descriptor {
    create_type: Option<String>,
    /// Extent lines (`RW 2048 SPARSE "x.vmdk"`).
    extents: usize,
    /// Whether it names a parent (a delta disk).
    parent: bool,
}

impl Descriptor {
    /// Reads the fields that matter from descriptor text (up to its first NUL).
    fn parse(text: &[u8]) -> Descriptor {
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        let text = String::from_utf8_lossy(&text[..end]);
        let mut descriptor = Descriptor::default();
        for line in text.lines().map(str::trim) {
            let value = |key: &str| {
                let (k, v) = line.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            };
            if let Some(create_type) = value("createType") {
                descriptor.create_type = Some(create_type);
            } else if let Some(cid) = value("parentCID") {
                descriptor.parent |= !cid.eq_ignore_ascii_case("ffffffff");
            } else if value("parentFileNameHint").is_some() {
                descriptor.parent = true;
            } else if ["RW ", "RDONLY ", "NOACCESS "]
                .iter()
                .any(|access| line.starts_with(access))
            {
                descriptor.extents += 1;
            }
        }
        descriptor
    }

    /// How the refusals name the file.
    fn create_type(&self) -> &str {
        self.create_type.as_deref().unwrap_or("none given")
    }

    /// How the refusals count the extents.
    fn extents(&self) -> String {
        match self.extents {
            1 => "1 extent".into(),
            n => format!("{n} extents"),
        }
    }

    /// Errors unless it describes a disk whole in this one file.
    fn check_one_file(&self) -> Result<()> {
        if self.parent {
            return Err(Error::Unsupported(format!(
                "a VMDK delta disk (createType {}, with a parent): its data depends on the parent disk; convert the whole chain with qemu-img first",
                self.create_type()
            )));
        }
        let one_file = self
            .create_type
            .as_deref()
            .is_some_and(|t| ONE_FILE_TYPES.contains(&t));
        if !one_file || self.extents != 1 {
            return Err(Error::Unsupported(format!(
                "a VMDK of createType {} with {}, whose data is in other files; d2l reads monolithicSparse and streamOptimized VMDKs, whole in one file (qemu-img convert -O raw reads this one)",
                self.create_type(),
                self.extents()
            )));
        }
        Ok(())
    }
}

/// What a grain table entry says about a grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grain {
    Zero,
    /// Stored as it is at this file offset.
    Stored(u64),
    /// Compressed: its marker at this file offset.
    Compressed(u64),
}

/// Recently used tables and grains: conversion reads the disk in order.
#[derive(Debug, Default)]
struct Cache {
    /// The last grain table read: its index and entries.
    gt: Option<(u64, Arc<Vec<u32>>)>,
    /// The last grain inflated: its index and bytes.
    inflated: Option<(u64, Arc<Vec<u8>>)>,
}

/// The grain directory and grain tables, which no grain may overlap.
#[derive(Debug)]
struct Metadata {
    /// File bytes of the grain directory.
    gd: (u64, u64),
    /// File offsets of the grain tables, sorted.
    tables: Vec<u64>,
    /// Bytes of a grain table.
    table_bytes: u64,
}

/// A monolithicSparse or streamOptimized VMDK opened for reading.
#[derive(Debug)]
pub(crate) struct VmdkReader {
    file: ImageFile,
    header: Header,
    /// The virtual size.
    size: u64,
    /// Grains in the disk.
    grains: u64,
    /// The grain directory: sectors of the grain tables (0: none), checked.
    gd: Vec<u32>,
    /// Where the grain directory and tables are, for the grains to be checked against.
    metadata: Metadata,
    cache: Mutex<Cache>,
}

impl VmdkReader {
    /// Opens and checks the header (or footer), the descriptor and the grain directory.
    pub fn open(file: File) -> Result<Self> {
        let file = ImageFile::new(file)?;
        let mut head = [0u8; usize_from(SECTOR)];
        let n = crate::cluster_map::read_up_to(file.file(), &mut head, 0)
            .map_err(Error::input("reading the VMDK header", 0))?;
        if head[..4] != MAGIC {
            return Err(refuse_descriptor_file(&file));
        }
        if n < head.len() {
            return Err(corrupt(format!(
                "VMDK header truncated: the file is {n} bytes, a header needs {SECTOR}"
            )));
        }
        let front = Header::parse(&head, "the VMDK header")?;
        let header = if front.gd_offset == GD_AT_END {
            read_footer(&file)?
        } else {
            front
        };
        let (desc_sector, desc_sectors) = front.descriptor;
        let text_len = desc_sectors
            .saturating_mul(SECTOR)
            .min(VMDK_MAX_DESCRIPTOR_BYTES);
        let mut text = vec![0u8; usize::try_from(text_len).expect("at most 1 MiB")];
        if desc_sector != 0 {
            file.read(
                "the VMDK embedded descriptor",
                &mut text,
                desc_sector.saturating_mul(SECTOR),
            )?;
        }
        let descriptor = Descriptor::parse(&text);
        if descriptor == Descriptor::default() {
            return Err(Error::Unsupported(
                "a VMDK sparse extent without an embedded descriptor: one file of a multi-file VMDK (twoGbMaxExtentSparse, or a snapshot's extent); convert its descriptor file with qemu-img"
                    .into(),
            ));
        }
        descriptor.check_one_file()?;

        let size = header.capacity.checked_mul(SECTOR).ok_or_else(|| {
            corrupt(format!(
                "VMDK header: a capacity of {} sectors is too large",
                header.capacity
            ))
        })?;
        let grains = header.capacity.div_ceil(header.grain);
        let tables = grains.div_ceil(u64::from(header.gtes_per_gt));
        if tables * 4 > VMDK_MAX_GD_BYTES {
            return Err(Error::Unsupported(format!(
                "a VMDK grain directory of {tables} entries (d2l reads up to {})",
                VMDK_MAX_GD_BYTES / 4
            )));
        }
        // The header and the embedded descriptor: no table may start inside them.
        let front_end = desc_sector.saturating_add(desc_sectors).max(1);
        if header.gd_offset < front_end {
            return Err(corrupt(format!(
                "the VMDK grain directory at sector {:#x} overlaps the header and descriptor (sectors 0..{front_end:#x})",
                header.gd_offset
            )));
        }
        let gd_start = header.gd_offset.saturating_mul(SECTOR);
        // Saturating: a damaged offset is reported by the read below, not an overflow.
        let gd_end = gd_start.saturating_add(tables * 4);
        let gd = file.read_u32s::<Entry>(
            format_args!("the VMDK grain directory ({tables} entries)"),
            gd_start,
            tables,
        )?;
        let table_bytes = u64::from(header.gtes_per_gt) * 4;
        let mut tables_at = Vec::new();
        for (index, &sector) in gd.iter().enumerate() {
            if sector != 0 {
                let start = u64::from(sector) * SECTOR;
                file.check(format_args!("VMDK grain table {index}"), start, table_bytes)?;
                if u64::from(sector) < front_end {
                    return Err(corrupt(format!(
                        "VMDK grain table {index} at sector {sector:#x} overlaps the header and descriptor (sectors 0..{front_end:#x})"
                    )));
                }
                if start < gd_end && gd_start < start + table_bytes {
                    return Err(corrupt(format!(
                        "VMDK grain table {index} at sector {sector:#x} overlaps the grain directory ({gd_start:#x}..{gd_end:#x})"
                    )));
                }
                tables_at.push(start);
            }
        }
        tables_at.sort_unstable();
        Ok(VmdkReader {
            file,
            header,
            size,
            grains,
            gd,
            metadata: Metadata {
                gd: (gd_start, gd_end),
                tables: tables_at,
                table_bytes,
            },
            cache: Mutex::new(Cache::default()),
        })
    }

    /// Errors if the grain (or grain marker) of guest offset `at`, `len` bytes at `offset`,
    /// overlaps the grain directory or a grain table.
    fn check_not_metadata(&self, at: u64, offset: u64, len: u64) -> Result<()> {
        let end = offset.saturating_add(len);
        let m = &self.metadata;
        let (gd_start, gd_end) = m.gd;
        if offset < gd_end && gd_start < end {
            return Err(corrupt(format!(
                "VMDK grain for guest offset {at:#x} at {offset:#x} overlaps the grain directory ({gd_start:#x}..{gd_end:#x})"
            )));
        }
        let before = m.tables.partition_point(|&t| t < end);
        if let Some(&table) = before.checked_sub(1).and_then(|i| m.tables.get(i)) {
            if table + m.table_bytes > offset {
                return Err(corrupt(format!(
                    "VMDK grain for guest offset {at:#x} at {offset:#x} overlaps the grain table at {table:#x}"
                )));
            }
        }
        Ok(())
    }

    fn grain_bytes(&self) -> u64 {
        self.header.grain * SECTOR
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entries of grain table `index`, or `None` if the directory has none.
    fn grain_table(&self, index: u64) -> Result<Option<Arc<Vec<u32>>>> {
        let sector = *usize::try_from(index)
            .ok()
            .and_then(|i| self.gd.get(i))
            .expect("a table inside the disk");
        if sector == 0 {
            return Ok(None);
        }
        if let Some((cached, entries)) = &self.lock().gt {
            if *cached == index {
                return Ok(Some(Arc::clone(entries)));
            }
        }
        let entries = Arc::new(self.file.read_u32s::<Entry>(
            format_args!("VMDK grain table {index}"),
            u64::from(sector) * SECTOR,
            u64::from(self.header.gtes_per_gt),
        )?);
        self.lock().gt = Some((index, Arc::clone(&entries)));
        Ok(Some(entries))
    }

    /// What grain table entry `entry` of grain `index` means, checked against the file.
    fn classify(&self, entry: u32, index: u64) -> Result<Grain> {
        if entry == 0 || (entry == ZERO_GRAIN && self.header.flags & FLAG_ZERO_GRAIN != 0) {
            return Ok(Grain::Zero);
        }
        let at = index * self.grain_bytes();
        let sector = u64::from(entry);
        if sector < self.header.overhead {
            return Err(corrupt(format!(
                "VMDK grain table entry for guest offset {at:#x} is sector {sector:#x}, inside the metadata (grains start at sector {:#x})",
                self.header.overhead
            )));
        }
        let offset = sector * SECTOR;
        if self.header.compressed() {
            self.file.check(
                format_args!("the VMDK compressed grain for guest offset {at:#x}"),
                offset,
                GRAIN_MARKER_BYTES,
            )?;
            self.check_not_metadata(at, offset, GRAIN_MARKER_BYTES)?;
            Ok(Grain::Compressed(offset))
        } else {
            // The last grain may reach past the disk; only its part inside must be stored.
            let inside = self.grain_bytes().min(self.size - at);
            self.file.check(
                format_args!("the VMDK grain for guest offset {at:#x}"),
                offset,
                inside,
            )?;
            self.check_not_metadata(at, offset, inside)?;
            Ok(Grain::Stored(offset))
        }
    }

    /// What grain `index` holds.
    fn lookup(&self, index: u64) -> Result<Grain> {
        let per_table = u64::from(self.header.gtes_per_gt);
        match self.grain_table(index / per_table)? {
            None => Ok(Grain::Zero),
            // Below the table's length, at most 512.
            #[allow(clippy::cast_possible_truncation)]
            Some(table) => self.classify(table[(index % per_table) as usize], index),
        }
    }

    /// The bytes of compressed grain `index`, whose marker is at `offset`: a whole grain.
    fn inflate(&self, index: u64, offset: u64) -> Result<Arc<Vec<u8>>> {
        if let Some((cached, bytes)) = &self.lock().inflated {
            if *cached == index {
                return Ok(Arc::clone(bytes));
            }
        }
        let grain = self.grain_bytes();
        let at = index * grain;
        let mut raw = [0u8; size_of::<GrainMarker>()];
        self.file.read("a VMDK grain marker", &mut raw, offset)?;
        let (marker, _) = GrainMarker::read_from_prefix(&raw).expect("a marker's bytes");
        let (lba, len) = (marker.lba.get(), u64::from(marker.size.get()));
        if lba != index * self.header.grain {
            return Err(corrupt(format!(
                "VMDK compressed grain at {offset:#x} is marked for sector {lba:#x}, but the grain table gives it guest sector {:#x}",
                index * self.header.grain
            )));
        }
        // Deflate's worst case is a few bytes per 16 KiB more than its input.
        let max = grain + grain / 64 + 1024;
        if len == 0 || len > max {
            return Err(corrupt(format!(
                "VMDK compressed grain for guest offset {at:#x} at {offset:#x} is {len} bytes long, not 1 to {max}"
            )));
        }
        // At most a grain and a bit: 16 MiB and a bit.
        let mut packed = vec![0u8; usize::try_from(len).expect("at most 17 MiB")];
        self.file.read(
            format_args!("the VMDK compressed grain for guest offset {at:#x}"),
            &mut packed,
            offset + GRAIN_MARKER_BYTES,
        )?;
        // A grain reaching past the disk may be stored whole or cut at the disk's end.
        let grain_len = usize::try_from(grain).expect("at most 16 MiB");
        let inside = usize::try_from(grain.min(self.size - at)).expect("at most a grain");
        let mut bytes = Vec::with_capacity(grain_len);
        let bad = |why: String| Error::Inflate {
            unit: "grain",
            what: format!("VMDK compressed grain for guest offset {at:#x} at {offset:#x}"),
            expected: grain,
            source: io::Error::new(io::ErrorKind::InvalidData, why),
        };
        match Decompress::new(true).decompress_vec(&packed, &mut bytes, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) if bytes.len() == grain_len || bytes.len() == inside => {}
            Ok(Status::StreamEnd) => {
                return Err(bad(format!("it inflates to {} bytes", bytes.len())))
            }
            Ok(_) => return Err(bad("the stream is cut short or longer than a grain".into())),
            Err(e) => return Err(bad(e.to_string())),
        }
        bytes.resize(grain_len, 0);
        let bytes = Arc::new(bytes);
        self.lock().inflated = Some((index, Arc::clone(&bytes)));
        Ok(bytes)
    }
}

/// Reads the footer of a streamOptimized extent whose header puts the grain directory at
/// the end: a footer marker, the header again (with the directory's place), and the
/// end-of-stream marker, in the last three sectors.
fn read_footer(file: &ImageFile) -> Result<Header> {
    let mut tail = [0u8; 3 * usize_from(SECTOR)];
    let at = file
        .len()
        .checked_sub(tail.len() as u64)
        .filter(|&at| at >= SECTOR);
    let marker = |b: &[u8]| {
        let (m, _) = MetadataMarker::read_from_prefix(b).expect("a marker's bytes");
        (m.num_sectors.get(), m.size.get(), m.kind.get())
    };
    let found = match at {
        Some(at) => {
            file.read("the VMDK footer", &mut tail, at)?;
            marker(&tail) == (1, 0, MARKER_FOOTER)
                && marker(&tail[2 * usize_from(SECTOR)..]) == (0, 0, MARKER_EOS)
        }
        None => false,
    };
    if !found {
        return Err(corrupt(format!(
            "the VMDK header puts the grain directory at the end, but the file ({:#x} bytes) does not end with a footer and an end-of-stream marker: the image is truncated or damaged",
            file.len()
        )));
    }
    let footer = Header::parse(
        &tail[usize_from(SECTOR)..2 * usize_from(SECTOR)],
        "the VMDK footer",
    )?;
    if footer.gd_offset == GD_AT_END {
        return Err(corrupt(
            "the VMDK footer puts the grain directory at the end too: it gives no place for it"
                .into(),
        ));
    }
    Ok(footer)
}

/// The error for a VMDK that is not a sparse extent: a descriptor file naming its extents
/// (or something else that starts like one).
fn refuse_descriptor_file(file: &ImageFile) -> Error {
    let mut text = vec![0u8; usize::try_from(file.len().min(64 << 10)).expect("64 KiB")];
    if let Err(e) = file.read("the VMDK descriptor", &mut text, 0) {
        return e;
    }
    let descriptor = Descriptor::parse(&text);
    Error::Unsupported(format!(
        "a VMDK descriptor file (createType {}, {}): the disk's data is in the extent files it names; d2l reads monolithicSparse and streamOptimized VMDKs, whole in one file (qemu-img convert -O raw reads this one)",
        descriptor.create_type(),
        descriptor.extents()
    ))
}

impl UnitMap for VmdkReader {
    fn image_format(&self) -> Format {
        Format::Vmdk
    }

    fn file(&self) -> &ImageFile {
        &self.file
    }

    fn unit_size(&self) -> u64 {
        self.grain_bytes()
    }

    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn unit(&self, index: u64) -> Result<Unit> {
        Ok(match self.lookup(index)? {
            Grain::Zero => Unit::Zero,
            Grain::Stored(offset) => Unit::Stored(offset),
            Grain::Compressed(offset) => Unit::Inflated(self.inflate(index, offset)?),
        })
    }

    fn stored_units(&self, stored: &mut dyn FnMut(u64) -> Result<()>) -> Result<()> {
        let per_table = u64::from(self.header.gtes_per_gt);
        for table_index in 0..self.gd.len() as u64 {
            let Some(table) = self.grain_table(table_index)? else {
                continue;
            };
            for (i, &entry) in table.iter().enumerate() {
                let index = table_index * per_table + i as u64;
                if index >= self.grains {
                    break;
                }
                if self.classify(entry, index)? != Grain::Zero {
                    stored(index)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod limit_tests {
    use std::os::unix::fs::FileExt;

    use d2l_disk::bytes::{FromZeros, IntoBytes};

    use super::*;

    /// A monolithicSparse extent: header, descriptor in sectors 1..21, the grain directory
    /// at sector 21, one grain table at 22 whose first entry points to the grain at sector
    /// 64; a disk of one grain table's span. `edit` changes the header.
    fn image(edit: impl FnOnce(&mut RawHeader)) -> File {
        let mut h = RawHeader::new_zeroed();
        h.magic = MAGIC;
        h.version = 1.into();
        h.grain_size = 128.into();
        h.num_gtes_per_gt = 512.into();
        h.capacity = (128 * 512).into();
        h.descriptor_offset = 1.into();
        h.descriptor_size = 20.into();
        h.gd_offset = 21.into();
        h.overhead = 64.into();
        edit(&mut h);
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(h.as_bytes(), 0).unwrap();
        file.write_all_at(
            b"# Disk DescriptorFile\ncreateType=\"monolithicSparse\"\nRW 65536 SPARSE \"x.vmdk\"\n",
            SECTOR,
        )
        .unwrap();
        let capacity = h.capacity.get();
        let tables = capacity
            .div_ceil(h.grain_size.get().max(1))
            .div_ceil(u64::from(h.num_gtes_per_gt.get()).max(1));
        let gd_bytes = 4 * tables;
        file.write_all_at(&22u32.to_le_bytes(), 21 * SECTOR)
            .unwrap();
        file.write_all_at(&64u32.to_le_bytes(), 22 * SECTOR)
            .unwrap();
        let grain = h.grain_size.get().min(1 << 22) * SECTOR;
        file.set_len((64 * SECTOR + grain).max(21 * SECTOR + gd_bytes))
            .unwrap();
        file
    }

    /// The error opening `file` and reading its first bytes, or "".
    fn read(file: File) -> String {
        let message = match VmdkReader::open(file) {
            Err(e) => e.to_string(),
            Ok(reader) => match crate::unit_map::read_at(&reader, &mut [0u8; 16], 0) {
                Ok(()) => return String::new(),
                Err(e) => e.to_string(),
            },
        };
        assert!(!message.contains('\n'), "one line: {message}");
        message
    }

    #[test]
    fn grains_from_8_sectors_to_2_pow_21() {
        assert_eq!(read(image(|_| {})), "");
        for grain in [VMDK_MIN_GRAIN_SECTORS, VMDK_MAX_GRAIN_SECTORS] {
            assert_eq!(read(image(|h| h.grain_size = grain.into())), "", "{grain}");
        }
        for grain in [VMDK_MIN_GRAIN_SECTORS / 2, VMDK_MAX_GRAIN_SECTORS * 2, 100] {
            assert_eq!(
                read(image(|h| h.grain_size = grain.into())),
                format!("the VMDK header: a grain of {grain} sectors is not a power of two from 8 to 2097152")
            );
        }
    }

    #[test]
    fn grain_tables_of_up_to_512_entries() {
        let gtes = |n: u32| image(|h| h.num_gtes_per_gt = n.into());
        assert_eq!(read(gtes(VMDK_MAX_GTES_PER_GT)), "");
        assert_eq!(
            read(gtes(VMDK_MAX_GTES_PER_GT + 1)),
            "the VMDK header: grain tables of 513 entries (1 to 512)"
        );
    }

    #[test]
    fn grain_directories_up_to_32_mib() {
        let entries = VMDK_MAX_GD_BYTES / 4;
        let tables = |n: u64| {
            let file = image(|h| h.capacity = (n * 512 * 128).into());
            // No grain table: the directory's 32 MiB would cover it.
            file.write_all_at(&[0; 8], 21 * SECTOR).unwrap();
            file.write_all_at(&[0; 8], 22 * SECTOR).unwrap();
            file
        };
        assert_eq!(read(tables(entries)), "");
        assert_eq!(
            read(tables(entries + 1)),
            "a VMDK grain directory of 8388609 entries (d2l reads up to 8388608)"
        );
    }

    #[test]
    fn tables_and_grains_do_not_overlap_the_metadata() {
        assert_eq!(
            read(image(|h| h.gd_offset = 5.into())),
            "the VMDK grain directory at sector 0x5 overlaps the header and descriptor (sectors 0..0x15)"
        );
        let file = image(|_| {});
        file.write_all_at(&21u32.to_le_bytes(), 21 * SECTOR)
            .unwrap();
        assert_eq!(
            read(file),
            "VMDK grain table 0 at sector 0x15 overlaps the grain directory (0x2a00..0x2a04)"
        );
        // With less overhead than the tables take, grains may point into them.
        let into = |sector: u32| {
            let file = image(|h| h.overhead = 21.into());
            file.write_all_at(&sector.to_le_bytes(), 22 * SECTOR)
                .unwrap();
            read(file)
        };
        assert_eq!(into(64), "");
        assert_eq!(
            into(21),
            "VMDK grain for guest offset 0x0 at 0x2a00 overlaps the grain directory (0x2a00..0x2a04)"
        );
        assert_eq!(
            into(23),
            "VMDK grain for guest offset 0x0 at 0x2e00 overlaps the grain table at 0x2c00"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_say_where_the_data_is() {
        let ours = Descriptor::parse(
            b"# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n\n# Extent description\nRW 2097152 SPARSE \"d.vmdk\"\n\0garbage",
        );
        assert_eq!(
            ours,
            Descriptor {
                create_type: Some("monolithicSparse".into()),
                extents: 1,
                parent: false
            }
        );
        assert!(ours.check_one_file().is_ok());
        let split = Descriptor::parse(
            b"createType = \"twoGbMaxExtentSparse\"\r\nRW 4192256 SPARSE \"d-s001.vmdk\"\r\nRW 4192256 SPARSE \"d-s002.vmdk\"\r\n",
        );
        let err = split.check_one_file().unwrap_err().to_string();
        assert!(
            err.contains("createType twoGbMaxExtentSparse with 2 extents"),
            "{err}"
        );
        let delta = Descriptor::parse(
            b"parentCID=8a2b3c4d\ncreateType=\"monolithicSparse\"\nparentFileNameHint=\"base.vmdk\"\nRW 8 SPARSE \"d.vmdk\"\n",
        );
        let err = delta.check_one_file().unwrap_err().to_string();
        assert!(err.contains("delta disk"), "{err}");
        let flat =
            Descriptor::parse(b"createType=\"monolithicFlat\"\nRW 8 FLAT \"d-flat.vmdk\" 0\n");
        let err = flat.check_one_file().unwrap_err().to_string();
        assert!(err.contains("createType monolithicFlat"), "{err}");
    }
}
