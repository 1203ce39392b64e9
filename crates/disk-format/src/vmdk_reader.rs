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
use std::sync::{Arc, Mutex, MutexGuard};

use flate2::{Decompress, FlushDecompress, Status};

use crate::format::VMDK_MAGIC;
use crate::image_file::{corrupt, le16, le32, le64, ImageFile};
use crate::unit_map::{Unit, UnitMap};
use crate::vmdk::{
    COMPRESS_DEFLATE, FLAG_COMPRESSED, FLAG_MARKERS, FLAG_NL_DETECT, GD_AT_END, MARKER_EOS,
    MARKER_FOOTER, NL_CHECK, SECTOR,
};
use crate::{Error, Format, Result};

/// Header flag: grain table entries of 1 mean "a grain of zeros" (version 2 on).
const FLAG_ZERO_GRAIN: u32 = 1 << 2;
/// The grain table entry for a grain of zeros, with [`FLAG_ZERO_GRAIN`].
const ZERO_GRAIN: u32 = 1;
/// Versions of the hosted sparse extent header: 1, 2 (zero grains), 3 (streamOptimized).
const VERSIONS: std::ops::RangeInclusive<u32> = 1..=3;
/// The largest grain: 2^21 sectors, 1 GiB (QEMU's limit).
const MAX_GRAIN_SECTORS: u64 = 1 << 21;
/// The largest compressed grain, which is inflated in memory: 16 MiB.
const MAX_COMPRESSED_GRAIN_SECTORS: u64 = 1 << 15;
/// The most entries a grain table has (QEMU's limit; VMware writes 512).
const MAX_GTES: u32 = 512;
/// The largest grain directory read: 32 MiB (QEMU's limit).
const MAX_GD_BYTES: u64 = 32 << 20;
/// The largest embedded descriptor read.
const MAX_DESCRIPTOR_BYTES: u64 = 1 << 20;
/// Bytes before a compressed grain's stream: its first sector (`u64`) and length (`u32`).
const GRAIN_MARKER_BYTES: u64 = 12;
/// The create types of a VMDK held whole in one file.
const ONE_FILE_TYPES: [&str; 2] = ["monolithicSparse", "streamOptimized"];

/// Offsets of the header fields read ("SparseExtentHeader").
mod field {
    pub const VERSION: usize = 4;
    pub const FLAGS: usize = 8;
    pub const CAPACITY: usize = 12;
    pub const GRAIN_SIZE: usize = 20;
    pub const DESCRIPTOR_OFFSET: usize = 28;
    pub const DESCRIPTOR_SIZE: usize = 36;
    pub const GTES_PER_GT: usize = 44;
    pub const GD_OFFSET: usize = 56;
    pub const OVERHEAD: usize = 64;
    pub const NL_CHECK: usize = 73;
    pub const COMPRESS_ALGORITHM: usize = 77;
}

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
        if b[..4] != VMDK_MAGIC {
            return Err(corrupt(format!("{what} has no \"KDMV\" magic")));
        }
        let version = le32(b, field::VERSION);
        if !VERSIONS.contains(&version) {
            return Err(Error::Unsupported(format!(
                "VMDK sparse extent version {version} (d2l reads 1 to 3)"
            )));
        }
        let flags = le32(b, field::FLAGS);
        if flags & FLAG_NL_DETECT != 0 && b[field::NL_CHECK..field::NL_CHECK + 4] != *NL_CHECK {
            return Err(corrupt(format!(
                "{what}: its line-end check characters are changed (the file went through a text-mode transfer)"
            )));
        }
        if flags & FLAG_COMPRESSED != 0 {
            let algorithm = le16(b, field::COMPRESS_ALGORITHM);
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
        let grain = le64(b, field::GRAIN_SIZE);
        let max = if flags & FLAG_COMPRESSED != 0 {
            MAX_COMPRESSED_GRAIN_SECTORS
        } else {
            MAX_GRAIN_SECTORS
        };
        if !grain.is_power_of_two() || grain > max {
            return Err(corrupt(format!(
                "{what}: a grain of {grain} sectors is not a power of two up to {max}"
            )));
        }
        let gtes_per_gt = le32(b, field::GTES_PER_GT);
        if gtes_per_gt == 0 || gtes_per_gt > MAX_GTES {
            return Err(corrupt(format!(
                "{what}: grain tables of {gtes_per_gt} entries (1 to {MAX_GTES})"
            )));
        }
        Ok(Header {
            flags,
            capacity: le64(b, field::CAPACITY),
            grain,
            descriptor: (
                le64(b, field::DESCRIPTOR_OFFSET),
                le64(b, field::DESCRIPTOR_SIZE),
            ),
            gtes_per_gt,
            gd_offset: le64(b, field::GD_OFFSET),
            overhead: le64(b, field::OVERHEAD),
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
    cache: Mutex<Cache>,
}

impl VmdkReader {
    /// Opens and checks the header (or footer), the descriptor and the grain directory.
    pub fn open(file: File) -> Result<Self> {
        let file = ImageFile::new(file)?;
        let mut head = [0u8; SECTOR as usize];
        let n = crate::cluster_map::read_up_to(file.file(), &mut head, 0)
            .map_err(Error::io("reading the VMDK header", 0))?;
        if head[..4] != VMDK_MAGIC {
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
        let mut text = vec![
            0u8;
            desc_sectors
                .saturating_mul(SECTOR)
                .min(MAX_DESCRIPTOR_BYTES) as usize
        ];
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
        if tables * 4 > MAX_GD_BYTES {
            return Err(Error::Unsupported(format!(
                "a VMDK grain directory of {tables} entries (d2l reads up to {})",
                MAX_GD_BYTES / 4
            )));
        }
        let gd = file.read_u32s(
            format_args!("the VMDK grain directory ({tables} entries)"),
            header.gd_offset.saturating_mul(SECTOR),
            tables,
            u32::from_le_bytes,
        )?;
        let table_bytes = u64::from(header.gtes_per_gt) * 4;
        for (index, &sector) in gd.iter().enumerate() {
            if sector != 0 {
                file.check(
                    format_args!("VMDK grain table {index}"),
                    u64::from(sector) * SECTOR,
                    table_bytes,
                )?;
            }
        }
        Ok(VmdkReader {
            file,
            header,
            size,
            grains,
            gd,
            cache: Mutex::new(Cache::default()),
        })
    }

    fn grain_bytes(&self) -> u64 {
        self.header.grain * SECTOR
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entries of grain table `index`, or `None` if the directory has none.
    fn grain_table(&self, index: u64) -> Result<Option<Arc<Vec<u32>>>> {
        let sector = self.gd[index as usize];
        if sector == 0 {
            return Ok(None);
        }
        if let Some((cached, entries)) = &self.lock().gt {
            if *cached == index {
                return Ok(Some(Arc::clone(entries)));
            }
        }
        let entries = Arc::new(self.file.read_u32s(
            format_args!("VMDK grain table {index}"),
            u64::from(sector) * SECTOR,
            u64::from(self.header.gtes_per_gt),
            u32::from_le_bytes,
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
            Ok(Grain::Compressed(offset))
        } else {
            // The last grain may reach past the disk; only its part inside must be stored.
            let inside = self.grain_bytes().min(self.size - at);
            self.file.check(
                format_args!("the VMDK grain for guest offset {at:#x}"),
                offset,
                inside,
            )?;
            Ok(Grain::Stored(offset))
        }
    }

    /// What grain `index` holds.
    fn lookup(&self, index: u64) -> Result<Grain> {
        let per_table = u64::from(self.header.gtes_per_gt);
        match self.grain_table(index / per_table)? {
            None => Ok(Grain::Zero),
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
        let mut marker = [0u8; GRAIN_MARKER_BYTES as usize];
        self.file.read("a VMDK grain marker", &mut marker, offset)?;
        let (lba, len) = (le64(&marker, 0), u64::from(le32(&marker, 8)));
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
        let mut packed = vec![0u8; len as usize];
        self.file.read(
            format_args!("the VMDK compressed grain for guest offset {at:#x}"),
            &mut packed,
            offset + GRAIN_MARKER_BYTES,
        )?;
        // A grain reaching past the disk may be stored whole or cut at the disk's end.
        let inside = grain.min(self.size - at) as usize;
        let mut bytes = Vec::with_capacity(grain as usize);
        let bad = |why: String| {
            corrupt(format!(
                "VMDK compressed grain for guest offset {at:#x} at {offset:#x} does not inflate to a grain: {why}"
            ))
        };
        match Decompress::new(true).decompress_vec(&packed, &mut bytes, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) if bytes.len() == grain as usize || bytes.len() == inside => {}
            Ok(Status::StreamEnd) => return Err(bad(format!("{} bytes", bytes.len()))),
            Ok(_) => return Err(bad("the stream is cut short or longer than a grain".into())),
            Err(e) => return Err(bad(e.to_string())),
        }
        bytes.resize(grain as usize, 0);
        let bytes = Arc::new(bytes);
        self.lock().inflated = Some((index, Arc::clone(&bytes)));
        Ok(bytes)
    }
}

/// Reads the footer of a streamOptimized extent whose header puts the grain directory at
/// the end: a footer marker, the header again (with the directory's place), and the
/// end-of-stream marker, in the last three sectors.
fn read_footer(file: &ImageFile) -> Result<Header> {
    let mut tail = [0u8; 3 * SECTOR as usize];
    let at = file
        .len()
        .checked_sub(tail.len() as u64)
        .filter(|&at| at >= SECTOR);
    let marker = |b: &[u8]| (le64(b, 0), le32(b, 8), le32(b, 12));
    let found = match at {
        Some(at) => {
            file.read("the VMDK footer", &mut tail, at)?;
            marker(&tail) == (1, 0, MARKER_FOOTER)
                && marker(&tail[2 * SECTOR as usize..]) == (0, 0, MARKER_EOS)
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
        &tail[SECTOR as usize..2 * SECTOR as usize],
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
    let mut text = vec![0u8; file.len().min(64 << 10) as usize];
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
