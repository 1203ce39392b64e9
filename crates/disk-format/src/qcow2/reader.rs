//! Reading qcow2 images (versions 2 and 3) by their tables, for `d2l convert`.
//!
//! Every offset is checked against the file before it is used: the header's fields, the L1
//! table's place and size, each L2 table and each data cluster; a damaged or truncated image
//! is a one-line error saying which structure points where. Backing files, encryption,
//! external data files and extended L2 entries are refused; compressed clusters (deflate or
//! zstd) are inflated.

use std::fs::File;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, MutexGuard};

use flate2::{Decompress, FlushDecompress, Status};

use d2l_disk::bytes::{FromBytes, IntoBytes};

use super::header::{
    compressed_sector_shift, Entry, Header, COMPRESSED, COMPRESSION_DEFLATE, COMPRESSION_ZSTD,
    INCOMPAT_COMPRESSION, INCOMPAT_CORRUPT, INCOMPAT_DATA_FILE, INCOMPAT_DIRTY, INCOMPAT_EXTL2,
    L1_RESERVED, L2_RESERVED, MAGIC, OFFSET_MASK, QCOW2_MAX_CLUSTER_BITS, QCOW2_MAX_L1_BYTES,
    QCOW2_MAX_REFCOUNT_ORDER, QCOW2_MAX_REFCOUNT_TABLE_BYTES, QCOW2_MIN_CLUSTER_BITS,
    REFCOUNT_ORDER, V2_HEADER_LENGTH, V3_HEADER_LENGTH, ZERO_FLAG,
};
#[cfg(test)]
use super::header::{CLUSTER, CLUSTER_BITS, COPIED, L2_SPAN};
use crate::cluster_map::read_up_to;
use crate::image_file::{corrupt, ImageFile};
use crate::unit_map::{Unit, UnitMap};
use crate::{Error, Format, Result};

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

/// The host clusters that hold metadata, which no other structure may point into: the
/// header's cluster, the L1 table, the refcount table and every L2 table. All are cluster
/// aligned, so a cluster overlaps one of them when its offset falls inside it.
#[derive(Debug, Default)]
struct Metadata {
    /// (start, end, name) of the header, L1 and refcount tables.
    regions: Vec<(u64, u64, &'static str)>,
    /// Offsets of the L2 tables, sorted, no two equal.
    l2_tables: Vec<u64>,
}

impl Metadata {
    /// What metadata the byte at `offset` belongs to, if any.
    fn at(&self, offset: u64, cluster: u64) -> Option<&'static str> {
        if let Some(&(_, _, name)) = self
            .regions
            .iter()
            .find(|&&(start, end, _)| (start..end).contains(&offset))
        {
            return Some(name);
        }
        let table = offset & !(cluster - 1);
        self.l2_tables
            .binary_search(&table)
            .is_ok()
            .then_some("L2 table")
    }

    /// Errors if `start..end` (named `what`) overlaps a region already recorded.
    fn claim(&mut self, what: &'static str, start: u64, end: u64) -> Result<()> {
        if start == end {
            return Ok(());
        }
        if let Some(&(s, e, name)) = self.regions.iter().find(|&&(s, e, _)| start < e && s < end) {
            return Err(corrupt(format!(
                "qcow2 {what} ({start:#x}..{end:#x}) overlaps the {name} ({s:#x}..{e:#x})"
            )));
        }
        self.regions.push((start, end, what));
        Ok(())
    }
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
    /// Where the metadata is, for the data clusters to be checked against.
    metadata: Metadata,
    compression: Compression,
    cache: Mutex<Cache>,
}

impl Qcow2Reader {
    /// Opens and checks the header, the place of the refcount table, the L1 table and the
    /// place of every L2 table.
    pub fn open(file: File) -> Result<Self> {
        let file = ImageFile::new(file)?;
        let len = file.len();
        if len < V2_HEADER_LENGTH {
            return Err(corrupt(format!(
                "qcow2 header truncated: the file is {len} bytes, a header needs {V2_HEADER_LENGTH}"
            )));
        }
        let mut h = [0u8; size_of::<Header>()];
        let n = read_up_to(file.file(), &mut h, 0)
            .map_err(Error::input("reading the qcow2 header", 0))?;
        let (h, _) = Header::read_from_prefix(&h).expect("a buffer of the header's size");
        debug_assert_eq!(h.magic, MAGIC);
        let version = h.version.get();
        if version != 2 && version != 3 {
            return Err(Error::Unsupported(format!(
                "qcow2 version {version} (d2l reads 2 and 3)"
            )));
        }
        let cluster_bits = h.cluster_bits.get();
        if !(QCOW2_MIN_CLUSTER_BITS..=QCOW2_MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(corrupt(format!(
                "qcow2 header: cluster_bits {cluster_bits} is outside {QCOW2_MIN_CLUSTER_BITS}..={QCOW2_MAX_CLUSTER_BITS}"
            )));
        }
        let cluster = 1u64 << cluster_bits;
        if h.backing_file_offset.get() != 0 {
            return Err(Error::Unsupported(
                "the qcow2 image has a backing file; convert the whole chain with qemu-img first"
                    .into(),
            ));
        }
        if h.crypt_method.get() != 0 {
            return Err(Error::Unsupported("the qcow2 image is encrypted".into()));
        }
        let size = h.size.get();
        let l1_size = u64::from(h.l1_size.get());
        let l1_offset = h.l1_table_offset.get();
        let mut compression = Compression::Deflate;
        let mut header_length = V2_HEADER_LENGTH;
        if version == 3 {
            if (n as u64) < V3_HEADER_LENGTH {
                return Err(corrupt(format!(
                    "qcow2 header truncated: the file is {len} bytes, a version 3 header needs {V3_HEADER_LENGTH}"
                )));
            }
            header_length = u64::from(h.header_length.get());
            if header_length < V3_HEADER_LENGTH
                || header_length > cluster
                || !header_length.is_multiple_of(8)
            {
                return Err(corrupt(format!(
                    "qcow2 header: header_length {header_length} is not a multiple of 8 in {V3_HEADER_LENGTH}..={cluster}"
                )));
            }
            let refcount_order = h.refcount_order.get();
            if refcount_order > QCOW2_MAX_REFCOUNT_ORDER {
                return Err(corrupt(format!(
                    "qcow2 header: refcount_order {refcount_order} is outside 0..={QCOW2_MAX_REFCOUNT_ORDER}"
                )));
            }
            let incompatible = h.incompatible_features.get();
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
                    match (header_length > V3_HEADER_LENGTH, h.compression_type) {
                        (true, COMPRESSION_DEFLATE) => Compression::Deflate,
                        (true, COMPRESSION_ZSTD) => Compression::Zstd,
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
        } else {
            debug_assert_eq!(REFCOUNT_ORDER, 4, "version 2's implied refcount order");
        }
        let mut metadata = Metadata::default();
        metadata.claim("header", 0, cluster.max(header_length))?;

        // The refcount table is not needed to read, but a file cut before it is truncated.
        let refcount_table = h.refcount_table_offset.get();
        let refcount_clusters = u64::from(h.refcount_table_clusters.get());
        let refcount_bytes = refcount_clusters << cluster_bits;
        if refcount_bytes > QCOW2_MAX_REFCOUNT_TABLE_BYTES {
            return Err(corrupt(format!(
                "qcow2 refcount table of {refcount_clusters} clusters ({refcount_bytes} bytes) is larger than the {QCOW2_MAX_REFCOUNT_TABLE_BYTES} bytes QEMU allows"
            )));
        }
        let refcount_end = refcount_table.saturating_add(refcount_bytes);
        if refcount_table % cluster != 0 || refcount_end > len {
            return Err(corrupt(format!(
                "qcow2 refcount table ({refcount_clusters} clusters at {refcount_table:#x}) is misplaced or ends past the end of the file ({len:#x} bytes): the image is truncated or damaged"
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
        let l1_bytes = l1_size * 8;
        if l1_bytes > QCOW2_MAX_L1_BYTES {
            return Err(corrupt(format!(
                "qcow2 L1 table of {l1_size} entries ({l1_bytes} bytes) is larger than the {QCOW2_MAX_L1_BYTES} bytes QEMU allows"
            )));
        }
        if l1_size > 0 && l1_offset % cluster != 0 {
            return Err(corrupt(format!(
                "qcow2 L1 table offset {l1_offset:#x} is not cluster aligned"
            )));
        }
        // At most QCOW2_MAX_L1_BYTES: fits a usize.
        let mut raw = vec![0u8; usize::try_from(l1_bytes).expect("at most 32 MiB")];
        file.read(
            format_args!("the qcow2 L1 table ({l1_size} entries)"),
            &mut raw,
            l1_offset,
        )?;
        metadata.claim("L1 table", l1_offset, l1_offset + l1_bytes)?;
        metadata.claim("refcount table", refcount_table, refcount_end)?;
        // Entries past the virtual size are never used.
        let entries = <[Entry]>::ref_from_bytes(&raw).expect("a whole number of entries");
        let l1: Vec<u64> = entries
            .iter()
            .take(usize::try_from(needed).expect("at most the L1 size"))
            .map(|e| e.get())
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
            if !offset.is_multiple_of(cluster) {
                return Err(corrupt(format!(
                    "qcow2 L2 table of L1 entry {index} is at {offset:#x}, not cluster aligned"
                )));
            }
            file.check(
                format_args!("the qcow2 L2 table of L1 entry {index}"),
                offset,
                cluster,
            )?;
            if let Some(name) = metadata.at(offset, cluster) {
                return Err(corrupt(format!(
                    "qcow2 L2 table of L1 entry {index} at {offset:#x} overlaps the {name}"
                )));
            }
            metadata.l2_tables.push(offset);
        }
        metadata.l2_tables.sort_unstable();
        if let Some(pair) = metadata.l2_tables.windows(2).find(|w| w[0] == w[1]) {
            return Err(corrupt(format!(
                "qcow2 L1 table names the L2 table at {:#x} twice",
                pair[0]
            )));
        }
        Ok(Qcow2Reader {
            file,
            size,
            cluster_bits,
            l1,
            metadata,
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
        let offset = self.l1[usize::try_from(index).expect("an L1 index")] & OFFSET_MASK;
        if offset == 0 {
            return Ok(None);
        }
        if let Some((cached, entries)) = &self.lock().l2 {
            if *cached == index {
                return Ok(Some(Arc::clone(entries)));
            }
        }
        let mut raw =
            vec![Entry::ZERO; usize::try_from(self.cluster() / 8).expect("at most 2 MiB")];
        self.file.read(
            format_args!("the qcow2 L2 table of L1 entry {index}"),
            raw.as_mut_bytes(),
            offset,
        )?;
        let entries: Arc<Vec<u64>> = Arc::new(raw.iter().map(|e| e.get()).collect());
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
            self.check_not_metadata("compressed cluster", at, offset)?;
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
        if !offset.is_multiple_of(cluster) {
            return Err(corrupt(format!(
                "qcow2 data cluster for guest offset {at:#x} is at {offset:#x}, not cluster aligned"
            )));
        }
        self.file.check(
            format_args!("the qcow2 data cluster for guest offset {at:#x}"),
            offset,
            cluster,
        )?;
        self.check_not_metadata("data cluster", at, offset)?;
        Ok(Cluster::Data(offset))
    }

    /// Errors if the `what` of guest offset `at`, at host `offset`, lies in metadata.
    fn check_not_metadata(&self, what: &str, at: u64, offset: u64) -> Result<()> {
        match self.metadata.at(offset, self.cluster()) {
            None => Ok(()),
            Some(name) => Err(corrupt(format!(
                "qcow2 {what} for guest offset {at:#x} at {offset:#x} overlaps the {name}"
            ))),
        }
    }

    /// What guest cluster `guest` holds.
    fn lookup(&self, guest: u64) -> Result<Cluster> {
        let per_table = self.cluster() / 8;
        match self.l2_table(guest / per_table)? {
            None => Ok(Cluster::Zero),
            // Below the table's length, a cluster's worth of entries.
            #[allow(clippy::cast_possible_truncation)]
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
        // At most 2^(cluster_bits - 8) sectors: 4 MiB.
        let mut packed = vec![0u8; usize::try_from(len).expect("at most 4 MiB")];
        self.file
            .read("a compressed qcow2 cluster", &mut packed, offset)?;
        let cluster = usize::try_from(self.cluster()).expect("at most 2 MiB");
        let bad = |source: io::Error| Error::Inflate {
            unit: "cluster",
            what: format!(
                "qcow2 compressed cluster for guest offset {:#x} at {offset:#x}",
                guest << self.cluster_bits
            ),
            expected: self.cluster(),
            source,
        };
        let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, e);
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
                    Ok(_) => {
                        return Err(bad(invalid(format!("it inflates to {} bytes", out.len()))))
                    }
                    Err(e) => return Err(bad(invalid(e.to_string()))),
                }
            }
            Compression::Zstd => {
                let mut out = vec![0u8; cluster];
                let mut decoder = zstd::stream::read::Decoder::new(&packed[..])
                    .map_err(bad)?
                    .single_frame();
                decoder.read_exact(&mut out).map_err(bad)?;
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use d2l_disk::bytes::IntoBytes;

    use super::*;

    /// A qcow2 image with no data: the header in cluster 0 (`edit` changes it), then
    /// `tail` zero bytes (sparse) for the tables it points to.
    fn image(edit: impl FnOnce(&mut Header), tail: u64) -> File {
        let mut h = Header::new(0, 0, 0, 0, 0);
        edit(&mut h);
        let cluster = 1u64 << h.cluster_bits.get().min(30);
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(h.as_bytes(), 0).unwrap();
        file.set_len(cluster.max(4096) + tail).unwrap();
        file
    }

    /// The error opening `file`, or "" if it opens.
    fn open(file: File) -> String {
        match Qcow2Reader::open(file) {
            Ok(_) => String::new(),
            Err(e) => {
                let message = e.to_string();
                assert!(!message.contains('\n'), "one line: {message}");
                message
            }
        }
    }

    #[test]
    fn cluster_bits_from_9_to_21() {
        for bits in [QCOW2_MIN_CLUSTER_BITS, QCOW2_MAX_CLUSTER_BITS] {
            assert_eq!(
                open(image(|h| h.cluster_bits = bits.into(), 0)),
                "",
                "{bits}"
            );
        }
        for bits in [QCOW2_MIN_CLUSTER_BITS - 1, QCOW2_MAX_CLUSTER_BITS + 1] {
            let err = open(image(|h| h.cluster_bits = bits.into(), 0));
            assert_eq!(
                err,
                format!("qcow2 header: cluster_bits {bits} is outside 9..=21"),
            );
        }
    }

    #[test]
    fn refcount_order_up_to_6() {
        let order = |o: u32| image(|h| h.refcount_order = o.into(), 0);
        assert_eq!(open(order(QCOW2_MAX_REFCOUNT_ORDER)), "");
        assert_eq!(open(order(0)), "");
        assert_eq!(
            open(order(QCOW2_MAX_REFCOUNT_ORDER + 1)),
            "qcow2 header: refcount_order 7 is outside 0..=6"
        );
    }

    #[test]
    fn header_length_a_multiple_of_8_from_104_to_a_cluster() {
        let length = |l: u32| image(|h| h.header_length = l.into(), 0);
        assert_eq!(open(length(104)), "");
        assert_eq!(open(length(1 << CLUSTER_BITS)), "");
        for bad in [96, 108, (1 << CLUSTER_BITS) + 8] {
            assert_eq!(
                open(length(bad)),
                format!("qcow2 header: header_length {bad} is not a multiple of 8 in 104..=65536")
            );
        }
    }

    #[test]
    fn l1_table_up_to_32_mib() {
        let entries = QCOW2_MAX_L1_BYTES / 8;
        let l1 = |n: u64| {
            image(
                |h| {
                    h.l1_size = u32::try_from(n).unwrap().into();
                    h.l1_table_offset = CLUSTER.into();
                },
                QCOW2_MAX_L1_BYTES + CLUSTER,
            )
        };
        assert_eq!(open(l1(entries)), "");
        assert_eq!(
            open(l1(entries + 1)),
            "qcow2 L1 table of 4194305 entries (33554440 bytes) is larger than the 33554432 bytes QEMU allows"
        );
    }

    #[test]
    fn refcount_table_up_to_8_mib() {
        let clusters = QCOW2_MAX_REFCOUNT_TABLE_BYTES / CLUSTER;
        let table = |n: u64| {
            image(
                |h| {
                    h.refcount_table_clusters = u32::try_from(n).unwrap().into();
                    h.refcount_table_offset = CLUSTER.into();
                },
                QCOW2_MAX_REFCOUNT_TABLE_BYTES + CLUSTER,
            )
        };
        assert_eq!(open(table(clusters)), "");
        assert_eq!(
            open(table(clusters + 1)),
            "qcow2 refcount table of 129 clusters (8454144 bytes) is larger than the 8388608 bytes QEMU allows"
        );
    }

    /// An image of one 512 MiB L2 span: L1 at cluster 1, refcount table at cluster 2, the L2
    /// table at cluster 3, data at cluster 4; `edit` then bends the header or the tables.
    fn mapped(edit: impl FnOnce(&File)) -> String {
        let file = image(
            |h| {
                h.size = L2_SPAN.into();
                h.l1_size = 1.into();
                h.l1_table_offset = CLUSTER.into();
                h.refcount_table_offset = (2 * CLUSTER).into();
                h.refcount_table_clusters = 1.into();
            },
            4 * CLUSTER,
        );
        let entry = |at: u64, value: u64| file.write_all_at(&(value | COPIED).to_be_bytes(), at);
        entry(CLUSTER, 3 * CLUSTER).unwrap();
        entry(3 * CLUSTER, 4 * CLUSTER).unwrap();
        edit(&file);
        match Qcow2Reader::open(file) {
            Err(e) => e.to_string(),
            Ok(reader) => match crate::unit_map::read_at(&reader, &mut [0u8; 16], 0) {
                Ok(()) => String::new(),
                Err(e) => e.to_string(),
            },
        }
    }

    #[test]
    fn metadata_overlaps_are_refused() {
        assert_eq!(mapped(|_| {}), "");
        let be64 =
            |f: &File, at: u64, value: u64| f.write_all_at(&value.to_be_bytes(), at).unwrap();
        assert_eq!(
            mapped(|f| be64(f, 40, 0)),
            "qcow2 L1 table (0x0..0x8) overlaps the header (0x0..0x10000)"
        );
        assert_eq!(
            mapped(|f| be64(f, 48, CLUSTER)),
            "qcow2 refcount table (0x10000..0x20000) overlaps the L1 table (0x10000..0x10008)"
        );
        assert_eq!(
            mapped(|f| be64(f, CLUSTER, (2 * CLUSTER) | COPIED)),
            "qcow2 L2 table of L1 entry 0 at 0x20000 overlaps the refcount table"
        );
        assert_eq!(
            mapped(|f| be64(f, 3 * CLUSTER, CLUSTER | COPIED)),
            "qcow2 data cluster for guest offset 0x0 at 0x10000 overlaps the L1 table"
        );
        assert_eq!(
            mapped(|f| be64(f, 3 * CLUSTER, (3 * CLUSTER) | COPIED)),
            "qcow2 data cluster for guest offset 0x0 at 0x30000 overlaps the L2 table"
        );
    }
}
