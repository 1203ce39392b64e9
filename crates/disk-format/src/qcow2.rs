//! qcow2 version 3 (QEMU's docs/interop/qcow2.txt), written with 64 KiB clusters.
//!
//! Layout: the header in cluster 0; data clusters from cluster 1 on, in the order they were
//! first written; then, at `finish`, the L2 tables of the 512 MiB ranges that hold data, the
//! L1 table, the refcount blocks and the refcount table. Every cluster has refcount 1 (so
//! the L1 and L2 entries carry the COPIED flag), except that several compressed clusters may
//! share a host cluster. Nothing needs the virtual size before the end.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use d2l_disk::VirtualDisk;

use crate::cluster_map::{Allocation, ClusterMap, SlotLayout};
use crate::compress::{deflate_grains, Codec, Grain};
use crate::seq::SeqWriter;
use crate::{Error, ImageWriter, Result, MIB};

/// log2 of the cluster size we write.
pub(crate) const CLUSTER_BITS: u32 = 16;
/// Cluster size: 64 KiB, QEMU's default.
pub(crate) const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// Entries in an L2 table (one cluster of u64).
pub(crate) const L2_ENTRIES: u64 = CLUSTER / 8;
/// Guest bytes one L2 table maps: 512 MiB.
pub(crate) const L2_SPAN: u64 = L2_ENTRIES * CLUSTER;
/// "QFI\xfb".
pub(crate) const MAGIC: u32 = 0x5146_49fb;
/// Header version written.
pub(crate) const VERSION: u32 = 3;
/// Header length written: the version 3 fields and the compression type byte, padded to 8
/// (qcow2.txt, "Header": bytes 0..112).
pub(crate) const HEADER_LENGTH: u32 = 112;
/// refcount_order 4: 16-bit refcounts (qcow2.txt; QEMU's default).
pub(crate) const REFCOUNT_ORDER: u32 = 4;
/// Refcounts in one refcount block.
pub(crate) const REFCOUNTS_PER_BLOCK: u64 = CLUSTER / 2;
/// L1/L2 entry bit 63: the cluster's refcount is exactly one (may be written in place).
pub(crate) const COPIED: u64 = 1 << 63;
/// L2 entry bit 62: the cluster is compressed.
pub(crate) const COMPRESSED: u64 = 1 << 62;
/// Bits 9..55 of a standard L1/L2 entry: the host offset.
pub(crate) const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// For compressed clusters, the host offset takes bits 0..x-1 with x = 62 - (cluster_bits
/// - 8); the number of additional 512-byte sectors takes bits x..61.
pub(crate) const fn compressed_sector_shift(cluster_bits: u32) -> u32 {
    62 - (cluster_bits - 8)
}

/// Largest virtual size written: far beyond any filesystem d2l makes (QEMU caps at 32 MiB of
/// L1 table, 2 PiB with 64 KiB clusters).
const MAX_SIZE: u64 = 1 << 50;

/// The header fields d2l sets (all others are zero: no backing file, no encryption, no
/// snapshots, no feature bits, compression type deflate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Virtual size in bytes.
    pub size: u64,
    /// Entries in the L1 table.
    pub l1_size: u32,
    /// Host offset of the L1 table.
    pub l1_table_offset: u64,
    /// Host offset of the refcount table.
    pub refcount_table_offset: u64,
    /// Clusters of the refcount table.
    pub refcount_table_clusters: u32,
}

impl Header {
    /// The header's bytes (big-endian fields, qcow2.txt "Header"), followed by the empty
    /// header extension area's end marker (8 zero bytes).
    pub fn encode(&self) -> [u8; HEADER_LENGTH as usize + 8] {
        let mut b = [0u8; HEADER_LENGTH as usize + 8];
        let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &MAGIC.to_be_bytes());
        put(4, &VERSION.to_be_bytes());
        // 8: backing_file_offset, 16: backing_file_size: none.
        put(20, &CLUSTER_BITS.to_be_bytes());
        put(24, &self.size.to_be_bytes());
        // 32: crypt_method 0.
        put(36, &self.l1_size.to_be_bytes());
        put(40, &self.l1_table_offset.to_be_bytes());
        put(48, &self.refcount_table_offset.to_be_bytes());
        put(56, &self.refcount_table_clusters.to_be_bytes());
        // 60: nb_snapshots, 64: snapshots_offset, 72/80/88: feature bits: none.
        put(96, &REFCOUNT_ORDER.to_be_bytes());
        put(100, &HEADER_LENGTH.to_be_bytes());
        // 104: compression_type 0 (deflate), then padding; 112: end of extensions.
        b
    }
}

/// Writes an uncompressed qcow2 image: clusters allocated on first non-zero write.
#[derive(Debug)]
pub(crate) struct Qcow2Writer {
    map: ClusterMap,
}

impl Qcow2Writer {
    pub fn new(file: File) -> Self {
        let layout = SlotLayout {
            unit: CLUSTER,
            first: CLUSTER,
            stride: CLUSTER,
            data: 0,
        };
        Qcow2Writer {
            map: ClusterMap::new(file, layout, "qcow2", MAX_SIZE),
        }
    }
}

impl ImageWriter for Qcow2Writer {
    fn as_disk(&self) -> &dyn VirtualDisk {
        &self.map
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let alloc = self.map.into_allocation()?;
        let size = alloc.size.next_multiple_of(MIB);
        let data_clusters = u64::from(alloc.slots);
        let l2 = L2Source::Allocation(&alloc);
        // Header + data clusters, each referenced once.
        let refcounts = vec![1u16; 1 + data_clusters as usize];
        write_tables(&alloc.file, size, &l2, refcounts)
    }
}

/// Where the L2 entries come from.
pub(crate) enum L2Source<'a> {
    /// The cluster map of an uncompressed image: slot `s` is host cluster `s + 1`.
    Allocation(&'a Allocation),
    /// Tables built by the compressed writer, by L1 index.
    Tables(&'a BTreeMap<u64, Vec<u64>>),
}

impl L2Source<'_> {
    /// The L2 entries of the table covering guest clusters `first..first + L2_ENTRIES`,
    /// or `None` if none is allocated.
    fn table(&self, first: u64) -> Option<Vec<u64>> {
        let entries: Vec<u64> = match self {
            L2Source::Allocation(alloc) => (first..first + L2_ENTRIES)
                .map(|cluster| {
                    alloc
                        .slot(cluster)
                        .map_or(0, |slot| alloc.layout.data_offset(slot) | COPIED)
                })
                .collect(),
            L2Source::Tables(tables) => tables.get(&(first / L2_ENTRIES))?.clone(),
        };
        entries.iter().any(|&e| e != 0).then_some(entries)
    }
}

/// Writes a compressed qcow2 image into `out` from the first `size` bytes of `scratch` (a
/// sparse raw disk): every cluster holding data is deflated (kept as it is when that does not
/// shrink it), packed one after another from cluster 1 on; the tables follow.
pub(crate) fn write_compressed(out: &File, scratch: &File, size: u64) -> Result<()> {
    Error::check_size("qcow2", size, MAX_SIZE)?;
    let shift = compressed_sector_shift(CLUSTER_BITS);
    let mut tables: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    // The header's cluster, then one count per host cluster of data.
    let mut refcounts: Vec<u16> = vec![1];
    let mut writer = SeqWriter::new(out, CLUSTER);
    deflate_grains(scratch, size, CLUSTER, Codec::Qcow2, &mut |index, grain| {
        let entry = match grain {
            Grain::Deflated(bytes) => {
                let at = writer.pos();
                let first_sector = at >> 9;
                let last_sector = (at + bytes.len() as u64 - 1) >> 9;
                // The sectors the descriptor names are what QEMU counts references for.
                reference(
                    &mut refcounts,
                    (first_sector << 9) >> CLUSTER_BITS
                        ..=((last_sector << 9) + 511) >> CLUSTER_BITS,
                )?;
                writer.write(&bytes)?;
                COMPRESSED | ((last_sector - first_sector) << shift) | at
            }
            Grain::Plain(bytes) => {
                writer.pad_to(CLUSTER)?;
                let at = writer.pos();
                reference(&mut refcounts, at >> CLUSTER_BITS..=at >> CLUSTER_BITS)?;
                writer.write(&bytes)?;
                at | COPIED
            }
        };
        tables
            .entry(index / L2_ENTRIES)
            .or_insert_with(|| vec![0; L2_ENTRIES as usize])[(index % L2_ENTRIES) as usize] = entry;
        Ok(())
    })?;
    writer.pad_to(CLUSTER)?;
    writer.flush()?;
    refcounts.resize((writer.pos() / CLUSTER) as usize, 0);
    write_tables(out, size, &L2Source::Tables(&tables), refcounts)
}

/// Adds a reference to each cluster of `clusters`.
fn reference(refcounts: &mut Vec<u16>, clusters: std::ops::RangeInclusive<u64>) -> Result<()> {
    for cluster in clusters {
        let cluster = cluster as usize;
        if refcounts.len() <= cluster {
            refcounts.resize(cluster + 1, 0);
        }
        refcounts[cluster] = refcounts[cluster].checked_add(1).ok_or_else(|| {
            Error::Corrupt(format!("more than 65535 references to cluster {cluster}"))
        })?;
    }
    Ok(())
}

/// The plan of the metadata after the data: how many clusters each part takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TailPlan {
    /// First cluster after the data (where the L2 tables start).
    pub first: u64,
    /// L2 tables.
    pub l2_tables: u64,
    /// Clusters of the L1 table.
    pub l1_clusters: u64,
    /// Refcount blocks.
    pub refcount_blocks: u64,
    /// Clusters of the refcount table.
    pub refcount_table_clusters: u64,
}

impl TailPlan {
    /// Plans the metadata for `l2_tables` L2 tables and `l1_size` L1 entries after
    /// `first` clusters: the refcount blocks and table must count themselves too.
    pub fn new(first: u64, l2_tables: u64, l1_size: u64) -> TailPlan {
        let l1_clusters = (l1_size * 8).div_ceil(CLUSTER);
        let before = first + l2_tables + l1_clusters;
        let (mut blocks, mut table) = (0u64, 0u64);
        loop {
            let total = before + blocks + table;
            let need_blocks = total.div_ceil(REFCOUNTS_PER_BLOCK);
            let need_table = (need_blocks * 8).div_ceil(CLUSTER);
            if need_blocks == blocks && need_table == table {
                break;
            }
            (blocks, table) = (need_blocks, need_table);
        }
        TailPlan {
            first,
            l2_tables,
            l1_clusters,
            refcount_blocks: blocks,
            refcount_table_clusters: table,
        }
    }

    /// Clusters in the whole file.
    pub fn total(&self) -> u64 {
        self.first
            + self.l2_tables
            + self.l1_clusters
            + self.refcount_blocks
            + self.refcount_table_clusters
    }
}

/// Writes the L2 tables, L1 table, refcount blocks, refcount table and header after the data
/// clusters, whose refcounts (`refcounts[c]` for host cluster `c`, the header's included)
/// the caller gives; every cluster this adds has refcount 1.
pub(crate) fn write_tables(
    file: &File,
    size: u64,
    l2: &L2Source<'_>,
    mut refcounts: Vec<u16>,
) -> Result<()> {
    let first = refcounts.len() as u64;
    let l1_size = size.div_ceil(L2_SPAN);
    // Which L1 entries get a table: built one at a time, written as they come.
    let mut l1 = vec![0u64; l1_size as usize];
    let mut next = first;
    for (index, entry) in l1.iter_mut().enumerate() {
        let Some(table) = l2.table(index as u64 * L2_ENTRIES) else {
            continue;
        };
        let bytes: Vec<u8> = table.iter().flat_map(|e| e.to_be_bytes()).collect();
        let at = next * CLUSTER;
        file.write_all_at(&bytes, at)
            .map_err(Error::io("writing an L2 table", at))?;
        *entry = at | COPIED;
        next += 1;
    }
    let plan = TailPlan::new(first, next - first, l1_size);
    let l1_offset = next * CLUSTER;
    let l1_bytes: Vec<u8> = l1.iter().flat_map(|e| e.to_be_bytes()).collect();
    file.write_all_at(&l1_bytes, l1_offset)
        .map_err(Error::io("writing the L1 table", l1_offset))?;

    let blocks_at = plan.first + plan.l2_tables + plan.l1_clusters;
    let table_at = blocks_at + plan.refcount_blocks;
    refcounts.resize(plan.total() as usize, 1);
    for block in 0..plan.refcount_blocks {
        let start = (block * REFCOUNTS_PER_BLOCK) as usize;
        let end = (start + REFCOUNTS_PER_BLOCK as usize).min(refcounts.len());
        let mut bytes: Vec<u8> = refcounts[start..end]
            .iter()
            .flat_map(|r| r.to_be_bytes())
            .collect();
        bytes.resize(CLUSTER as usize, 0);
        let at = (blocks_at + block) * CLUSTER;
        file.write_all_at(&bytes, at)
            .map_err(Error::io("writing a refcount block", at))?;
    }
    let table: Vec<u8> = (0..plan.refcount_blocks)
        .flat_map(|block| ((blocks_at + block) * CLUSTER).to_be_bytes())
        .collect();
    file.write_all_at(&table, table_at * CLUSTER)
        .map_err(Error::io("writing the refcount table", table_at * CLUSTER))?;

    let header = Header {
        size,
        l1_size: u32::try_from(l1_size).map_err(|_| Error::TooLarge {
            format: "qcow2",
            size,
            max: MAX_SIZE,
        })?,
        l1_table_offset: l1_offset,
        refcount_table_offset: table_at * CLUSTER,
        refcount_table_clusters: plan.refcount_table_clusters as u32,
    };
    file.write_all_at(&header.encode(), 0)
        .map_err(Error::io("writing the qcow2 header", 0))?;
    // Every cluster lies inside the file, the last data cluster's unwritten tail included.
    file.set_len(plan.total() * CLUSTER)
        .map_err(Error::io("sizing the image", plan.total() * CLUSTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_field_by_field() {
        let h = Header {
            size: 0x5000_0000,
            l1_size: 2,
            l1_table_offset: 0x30000,
            refcount_table_offset: 0x50000,
            refcount_table_clusters: 1,
        };
        let b = h.encode();
        assert_eq!(&b[0..4], b"QFI\xfb");
        assert_eq!(&b[4..8], &[0, 0, 0, 3], "version 3");
        assert_eq!(&b[20..24], &[0, 0, 0, 16], "cluster_bits");
        assert_eq!(&b[24..32], &[0, 0, 0, 0, 0x50, 0, 0, 0], "size");
        assert_eq!(&b[36..40], &[0, 0, 0, 2], "l1_size");
        assert_eq!(&b[40..48], &[0, 0, 0, 0, 0, 3, 0, 0], "l1_table_offset");
        assert_eq!(
            &b[48..56],
            &[0, 0, 0, 0, 0, 5, 0, 0],
            "refcount_table_offset"
        );
        assert_eq!(&b[56..60], &[0, 0, 0, 1], "refcount_table_clusters");
        assert_eq!(&b[96..100], &[0, 0, 0, 4], "refcount_order");
        assert_eq!(&b[100..104], &[0, 0, 0, 112], "header_length");
        assert!(b[104..].iter().all(|&x| x == 0), "deflate, no extensions");
    }

    #[test]
    fn the_refcount_structures_count_themselves() {
        // Small: everything fits one refcount block.
        let p = TailPlan::new(10, 1, 1);
        assert_eq!(
            (p.l1_clusters, p.refcount_blocks, p.refcount_table_clusters),
            (1, 1, 1)
        );
        assert_eq!(p.total(), 14);
        // Exactly at a block boundary, the blocks themselves need one more.
        let p = TailPlan::new(REFCOUNTS_PER_BLOCK - 3, 1, 1);
        assert_eq!(p.refcount_blocks, 2);
        assert!(p.total() <= p.refcount_blocks * REFCOUNTS_PER_BLOCK);
    }
}
