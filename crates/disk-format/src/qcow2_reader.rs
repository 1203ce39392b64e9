//! Reading qcow2 images (versions 2 and 3) by their tables, for `d2l convert`.
//!
//! Every offset is checked against the file before it is used: the header's fields, the L1
//! table's place and size, each L2 table and each data cluster; a damaged or truncated image
//! is a one-line error saying which structure points where. Backing files, encryption,
//! external data files and extended L2 entries are refused; compressed clusters (deflate or
//! zstd) are inflated.

use std::fs::File;
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};

use flate2::{Decompress, FlushDecompress, Status};

use crate::cluster_map::read_up_to;
use crate::image_file::{be32, be64, corrupt, ImageFile};
use crate::qcow2::{compressed_sector_shift, COMPRESSED, OFFSET_MASK};
use crate::unit_map::{Unit, UnitMap};
use crate::{Error, Format, Result};

/// Length of a version 2 header (and of the fields common to both versions).
const V2_HEADER_LENGTH: u64 = 72;
/// Smallest version 3 header.
const V3_HEADER_LENGTH: u64 = 104;
/// Cluster sizes QEMU allows: 512 bytes to 2 MiB.
const CLUSTER_BITS: std::ops::RangeInclusive<u32> = 9..=21;
/// Largest L1 table read (QEMU's QCOW_MAX_L1_SIZE).
const MAX_L1_BYTES: u64 = 32 << 20;
/// Incompatible feature bits (qcow2.txt): dirty, corrupt, external data file, compression
/// type, extended L2 entries.
const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;
/// L1 entry bits that must be zero: 1..8 and 56..62.
const L1_RESERVED: u64 = 0x7f00_0000_0000_01fe;
/// Standard L2 entry bits that must be zero: 1..8 and 56..61.
const L2_RESERVED: u64 = 0x3f00_0000_0000_01fe;
/// Standard L2 entry bit 0: the cluster reads as zeros (version 3).
const ZERO_FLAG: u64 = 1;

/// How compressed clusters are compressed (header byte 104).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Deflate,
    Zstd,
}

/// What an L2 entry says about a guest cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cluster {
    /// Reads as zeros (unallocated, or the zero flag).
    Zero,
    /// Stored at this host offset.
    Data(u64),
    /// Compressed: the host offset and the bytes that may hold the stream.
    Compressed { offset: u64, len: u64 },
}

/// Recently used tables and clusters: conversion reads the disk in order.
#[derive(Debug, Default)]
struct Cache {
    /// The last L2 table read: its L1 index and entries.
    l2: Option<(u64, Arc<Vec<u64>>)>,
    /// The last compressed cluster inflated: its guest cluster number and bytes.
    inflated: Option<(u64, Arc<Vec<u8>>)>,
}

/// A qcow2 image opened for reading.
#[derive(Debug)]
pub(crate) struct Qcow2Reader {
    file: ImageFile,
    /// The virtual size.
    size: u64,
    cluster_bits: u32,
    /// L1 entries, already checked.
    l1: Vec<u64>,
    compression: Compression,
    cache: Mutex<Cache>,
}

impl Qcow2Reader {
    /// Opens and checks the header and the L1 table.
    pub fn open(file: File) -> Result<Self> {
        let file = ImageFile::new(file)?;
        let len = file.len();
        if len < V2_HEADER_LENGTH {
            return Err(corrupt(format!(
                "qcow2 header truncated: the file is {len} bytes, a header needs {V2_HEADER_LENGTH}"
            )));
        }
        let mut h = [0u8; 112];
        let n =
            read_up_to(file.file(), &mut h, 0).map_err(Error::io("reading the qcow2 header", 0))?;
        let version = be32(&h, 4);
        if version != 2 && version != 3 {
            return Err(Error::Unsupported(format!(
                "qcow2 version {version} (d2l reads 2 and 3)"
            )));
        }
        let cluster_bits = be32(&h, 20);
        if !CLUSTER_BITS.contains(&cluster_bits) {
            return Err(corrupt(format!(
                "qcow2 header: cluster_bits {cluster_bits} is outside 9..21"
            )));
        }
        let cluster = 1u64 << cluster_bits;
        if be64(&h, 8) != 0 {
            return Err(Error::Unsupported(
                "the qcow2 image has a backing file; convert the whole chain with qemu-img first"
                    .into(),
            ));
        }
        if be32(&h, 32) != 0 {
            return Err(Error::Unsupported("the qcow2 image is encrypted".into()));
        }
        let size = be64(&h, 24);
        let l1_size = u64::from(be32(&h, 36));
        let l1_offset = be64(&h, 40);
        let mut compression = Compression::Deflate;
        if version == 3 {
            if (n as u64) < V3_HEADER_LENGTH {
                return Err(corrupt(format!(
                    "qcow2 header truncated: the file is {len} bytes, a version 3 header needs {V3_HEADER_LENGTH}"
                )));
            }
            let header_length = u64::from(be32(&h, 100));
            if header_length < V3_HEADER_LENGTH || header_length > cluster {
                return Err(corrupt(format!(
                    "qcow2 header: header_length {header_length} is outside {V3_HEADER_LENGTH}..{cluster}"
                )));
            }
            let incompatible = be64(&h, 72);
            if incompatible & INCOMPAT_CORRUPT != 0 {
                return Err(corrupt(
                    "QEMU marked the qcow2 image corrupt (run qemu-img check -r all)".into(),
                ));
            }
            if incompatible & INCOMPAT_DATA_FILE != 0 {
                return Err(Error::Unsupported(
                    "the qcow2 image keeps its data in an external file".into(),
                ));
            }
            if incompatible & INCOMPAT_EXTL2 != 0 {
                return Err(Error::Unsupported(
                    "the qcow2 image uses extended L2 entries (subclusters)".into(),
                ));
            }
            let known = INCOMPAT_DIRTY
                | INCOMPAT_CORRUPT
                | INCOMPAT_DATA_FILE
                | INCOMPAT_COMPRESSION
                | INCOMPAT_EXTL2;
            if incompatible & !known != 0 {
                return Err(Error::Unsupported(format!(
                    "the qcow2 image has unknown incompatible features {:#x}",
                    incompatible & !known
                )));
            }
            if incompatible & INCOMPAT_COMPRESSION != 0 {
                compression =
                    match (header_length > 104, h[104]) {
                        (true, 0) => Compression::Deflate,
                        (true, 1) => Compression::Zstd,
                        (true, other) => {
                            return Err(Error::Unsupported(format!(
                                "qcow2 compression type {other}"
                            )))
                        }
                        (false, _) => return Err(corrupt(
                            "qcow2 header: a compression type is flagged but the header has none"
                                .into(),
                        )),
                    };
            }
        }

        // The refcount table is not needed to read, but a file cut before it is truncated.
        let refcount_table = be64(&h, 48);
        let refcount_end = refcount_table.saturating_add(u64::from(be32(&h, 56)) << cluster_bits);
        if refcount_table % cluster != 0 || refcount_end > len {
            return Err(corrupt(format!(
                "qcow2 refcount table ({} clusters at {refcount_table:#x}) is misplaced or ends past the end of the file ({len:#x} bytes): the image is truncated or damaged",
                be32(&h, 56)
            )));
        }

        // The L1 table: where it is, that it fits the file and covers the virtual size.
        let l2_span = cluster * (cluster / 8);
        let needed = size.div_ceil(l2_span);
        if l1_size < needed {
            return Err(corrupt(format!(
                "qcow2 L1 table has {l1_size} entries, a disk of {size} bytes needs {needed}"
            )));
        }
        if l1_size * 8 > MAX_L1_BYTES {
            return Err(corrupt(format!(
                "qcow2 L1 table of {l1_size} entries is larger than QEMU allows"
            )));
        }
        if l1_size > 0 && l1_offset % cluster != 0 {
            return Err(corrupt(format!(
                "qcow2 L1 table offset {l1_offset:#x} is not cluster aligned"
            )));
        }
        let mut raw = vec![0u8; (l1_size * 8) as usize];
        file.read(
            format_args!("the qcow2 L1 table ({l1_size} entries)"),
            &mut raw,
            l1_offset,
        )?;
        // Entries past the virtual size are never used.
        let l1: Vec<u64> = raw
            .chunks_exact(8)
            .take(needed as usize)
            .map(|e| u64::from_be_bytes(e.try_into().expect("8 bytes")))
            .collect();
        for (index, &entry) in l1.iter().enumerate() {
            if entry & L1_RESERVED != 0 {
                return Err(corrupt(format!(
                    "qcow2 L1 entry {index} ({entry:#018x}) has reserved bits set"
                )));
            }
            let offset = entry & OFFSET_MASK;
            if offset == 0 {
                continue;
            }
            if offset % cluster != 0 {
                return Err(corrupt(format!(
                    "qcow2 L2 table of L1 entry {index} is at {offset:#x}, not cluster aligned"
                )));
            }
            file.check(
                format_args!("the qcow2 L2 table of L1 entry {index}"),
                offset,
                cluster,
            )?;
        }
        Ok(Qcow2Reader {
            file,
            size,
            cluster_bits,
            l1,
            compression,
            cache: Mutex::new(Cache::default()),
        })
    }

    fn cluster(&self) -> u64 {
        1 << self.cluster_bits
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entries of the L2 table of L1 entry `index`, or `None` if it has none.
    fn l2_table(&self, index: u64) -> Result<Option<Arc<Vec<u64>>>> {
        let offset = self.l1[index as usize] & OFFSET_MASK;
        if offset == 0 {
            return Ok(None);
        }
        if let Some((cached, entries)) = &self.lock().l2 {
            if *cached == index {
                return Ok(Some(Arc::clone(entries)));
            }
        }
        let mut raw = vec![0u8; self.cluster() as usize];
        self.file.read(
            format_args!("the qcow2 L2 table of L1 entry {index}"),
            &mut raw,
            offset,
        )?;
        let entries: Arc<Vec<u64>> = Arc::new(
            raw.chunks_exact(8)
                .map(|e| u64::from_be_bytes(e.try_into().expect("8 bytes")))
                .collect(),
        );
        self.lock().l2 = Some((index, Arc::clone(&entries)));
        Ok(Some(entries))
    }

    /// What L2 entry `entry` of guest cluster `guest` means, checked against the file.
    fn classify(&self, entry: u64, guest: u64) -> Result<Cluster> {
        let cluster = self.cluster();
        let at = guest << self.cluster_bits;
        if entry & COMPRESSED != 0 {
            let shift = compressed_sector_shift(self.cluster_bits);
            let offset = entry & ((1 << shift) - 1);
            let sectors = ((entry >> shift) & ((1 << (self.cluster_bits - 8)) - 1)) + 1;
            self.file.check(
                format_args!("the qcow2 compressed cluster for guest offset {at:#x}"),
                offset,
                1,
            )?;
            // The stream may end in the file's last, partial sector.
            let len = ((offset & !511) + sectors * 512 - offset).min(self.file.len() - offset);
            return Ok(Cluster::Compressed { offset, len });
        }
        if entry & L2_RESERVED != 0 {
            return Err(corrupt(format!(
                "qcow2 L2 entry for guest offset {at:#x} ({entry:#018x}) has reserved bits set"
            )));
        }
        let offset = entry & OFFSET_MASK;
        if entry & ZERO_FLAG != 0 || offset == 0 {
            return Ok(Cluster::Zero);
        }
        if offset % cluster != 0 {
            return Err(corrupt(format!(
                "qcow2 data cluster for guest offset {at:#x} is at {offset:#x}, not cluster aligned"
            )));
        }
        self.file.check(
            format_args!("the qcow2 data cluster for guest offset {at:#x}"),
            offset,
            cluster,
        )?;
        Ok(Cluster::Data(offset))
    }

    /// What guest cluster `guest` holds.
    fn lookup(&self, guest: u64) -> Result<Cluster> {
        let per_table = self.cluster() / 8;
        match self.l2_table(guest / per_table)? {
            None => Ok(Cluster::Zero),
            Some(table) => self.classify(table[(guest % per_table) as usize], guest),
        }
    }

    /// The bytes of compressed guest cluster `guest`.
    fn inflate(&self, guest: u64, offset: u64, len: u64) -> Result<Arc<Vec<u8>>> {
        if let Some((cached, bytes)) = &self.lock().inflated {
            if *cached == guest {
                return Ok(Arc::clone(bytes));
            }
        }
        let mut packed = vec![0u8; len as usize];
        self.file
            .read("a compressed qcow2 cluster", &mut packed, offset)?;
        let cluster = self.cluster() as usize;
        let bad = |why: String| {
            corrupt(format!(
                "qcow2 compressed cluster for guest offset {:#x} at {offset:#x} does not inflate to a cluster: {why}",
                guest << self.cluster_bits
            ))
        };
        let bytes = match self.compression {
            Compression::Deflate => {
                let mut out = Vec::with_capacity(cluster);
                let mut inflate = Decompress::new(false);
                match inflate.decompress_vec(&packed, &mut out, FlushDecompress::Finish) {
                    Ok(Status::StreamEnd) | Ok(Status::Ok) | Ok(Status::BufError)
                        if out.len() == cluster =>
                    {
                        out
                    }
                    Ok(_) => return Err(bad(format!("{} bytes", out.len()))),
                    Err(e) => return Err(bad(e.to_string())),
                }
            }
            Compression::Zstd => {
                let mut out = vec![0u8; cluster];
                let mut decoder = zstd::stream::read::Decoder::new(&packed[..])
                    .map_err(|e| bad(e.to_string()))?
                    .single_frame();
                decoder
                    .read_exact(&mut out)
                    .map_err(|e| bad(e.to_string()))?;
                out
            }
        };
        let bytes = Arc::new(bytes);
        self.lock().inflated = Some((guest, Arc::clone(&bytes)));
        Ok(bytes)
    }
}

impl UnitMap for Qcow2Reader {
    fn image_format(&self) -> Format {
        Format::Qcow2
    }

    fn file(&self) -> &ImageFile {
        &self.file
    }

    fn unit_size(&self) -> u64 {
        self.cluster()
    }

    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn unit(&self, index: u64) -> Result<Unit> {
        Ok(match self.lookup(index)? {
            Cluster::Zero => Unit::Zero,
            Cluster::Data(host) => Unit::Stored(host),
            Cluster::Compressed { offset, len } => {
                Unit::Inflated(self.inflate(index, offset, len)?)
            }
        })
    }

    fn stored_units(&self, stored: &mut dyn FnMut(u64) -> Result<()>) -> Result<()> {
        let per_table = self.cluster() / 8;
        for index in 0..self.l1.len() as u64 {
            let Some(table) = self.l2_table(index)? else {
                continue;
            };
            for (i, &entry) in table.iter().enumerate() {
                let guest = index * per_table + i as u64;
                if guest << self.cluster_bits >= self.size {
                    break;
                }
                if self.classify(entry, guest)? != Cluster::Zero {
                    stored(guest)?;
                }
            }
        }
        Ok(())
    }
}
