//! Writing qcow2 images: plain (clusters allocated as written) or compressed (in order).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use d2l_disk::bytes::IntoBytes;
use d2l_disk::VirtualDisk;

use crate::cluster_map::{Allocation, ClusterMap, SlotLayout};
use crate::compress::{deflate_grains, Codec, Grain};
use crate::seq::SeqWriter;
use crate::usize_from;
use crate::{Error, ImageWriter, Result, MIB};

use super::header::{
    compressed_sector_shift, Entry, Header, Refcount, CLUSTER, CLUSTER_BITS, COMPRESSED, COPIED,
    L2_ENTRIES, L2_SPAN, REFCOUNTS_PER_BLOCK,
};

/// Largest virtual size written: far beyond any filesystem d2l makes (QEMU caps at 32 MiB of
/// L1 table, 2 PiB with 64 KiB clusters).
const MAX_SIZE: u64 = 1 << 50;

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
        let refcounts = vec![1u16; 1 + usize_from(data_clusters)];
        let len = write_tables(&alloc.file, 0, size, &l2, refcounts)?;
        set_len(&alloc.file, len)
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
    let len = write_in_order(out, 0, scratch, size, Codec::Qcow2)?;
    set_len(out, len)
}

/// Writes a qcow2 image whose first byte is at `base` in `out` (inside an archive member),
/// from the first `size` bytes of `scratch`: the clusters holding data in disk order,
/// deflated by `codec` ([`Codec::Store`]: as they are), then the tables. Returns the image's
/// length; the file is not truncated to it.
pub(crate) fn write_in_order(
    out: &File,
    base: u64,
    scratch: &File,
    size: u64,
    codec: Codec,
) -> Result<u64> {
    Error::check_size("qcow2", size, MAX_SIZE)?;
    let shift = compressed_sector_shift(CLUSTER_BITS);
    let mut tables: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    // The header's cluster, then one count per host cluster of data.
    let mut refcounts: Vec<u16> = vec![1];
    let mut writer = SeqWriter::within(out, base, CLUSTER);
    deflate_grains(scratch, size, CLUSTER, codec, &mut |index, grain| {
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
            .or_insert_with(|| vec![0; usize_from(L2_ENTRIES)])[(index % L2_ENTRIES) as usize] =
            entry;
        Ok(())
    })?;
    writer.pad_to(CLUSTER)?;
    let (end, _) = writer.finish()?;
    refcounts.resize((end / CLUSTER) as usize, 0);
    write_tables(out, base, size, &L2Source::Tables(&tables), refcounts)
}

/// Truncates (or extends) `file` to the image's length `len`.
fn set_len(file: &File, len: u64) -> Result<()> {
    file.set_len(len)
        .map_err(Error::output("sizing the image", len))
}

/// Adds a reference to each cluster of `clusters`.
fn reference(refcounts: &mut Vec<u16>, clusters: std::ops::RangeInclusive<u64>) -> Result<()> {
    for cluster in clusters {
        let cluster = usize_from(cluster);
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
/// the caller gives; every cluster this adds has refcount 1. The image starts at `base` in
/// `file`; returns its length (every cluster lies inside it, the last data cluster's
/// unwritten tail included).
pub(crate) fn write_tables(
    file: &File,
    base: u64,
    size: u64,
    l2: &L2Source<'_>,
    mut refcounts: Vec<u16>,
) -> Result<u64> {
    let first = refcounts.len() as u64;
    let l1_size = size.div_ceil(L2_SPAN);
    // Which L1 entries get a table: built one at a time, written as they come.
    let mut l1 = vec![0u64; usize_from(l1_size)];
    let mut next = first;
    for (index, entry) in l1.iter_mut().enumerate() {
        let Some(table) = l2.table(index as u64 * L2_ENTRIES) else {
            continue;
        };
        let table: Vec<Entry> = table.into_iter().map(Entry::new).collect();
        let at = next * CLUSTER;
        file.write_all_at(table.as_bytes(), base + at)
            .map_err(Error::output("writing an L2 table", base + at))?;
        *entry = at | COPIED;
        next += 1;
    }
    let plan = TailPlan::new(first, next - first, l1_size);
    let l1_offset = next * CLUSTER;
    let l1: Vec<Entry> = l1.into_iter().map(Entry::new).collect();
    file.write_all_at(l1.as_bytes(), base + l1_offset)
        .map_err(Error::output("writing the L1 table", base + l1_offset))?;

    let blocks_at = plan.first + plan.l2_tables + plan.l1_clusters;
    let table_at = blocks_at + plan.refcount_blocks;
    refcounts.resize(usize_from(plan.total()), 1);
    for block in 0..plan.refcount_blocks {
        let start = usize_from(block * REFCOUNTS_PER_BLOCK);
        let end = (start + usize_from(REFCOUNTS_PER_BLOCK)).min(refcounts.len());
        let mut block_counts: Vec<Refcount> = refcounts[start..end]
            .iter()
            .map(|&r| Refcount::new(r))
            .collect();
        block_counts.resize(usize_from(REFCOUNTS_PER_BLOCK), Refcount::ZERO);
        let at = base + (blocks_at + block) * CLUSTER;
        file.write_all_at(block_counts.as_bytes(), at)
            .map_err(Error::output("writing a refcount block", at))?;
    }
    let table: Vec<Entry> = (0..plan.refcount_blocks)
        .map(|block| Entry::new((blocks_at + block) * CLUSTER))
        .collect();
    file.write_all_at(table.as_bytes(), base + table_at * CLUSTER)
        .map_err(Error::output(
            "writing the refcount table",
            base + table_at * CLUSTER,
        ))?;

    let too_large = |_| Error::TooLarge {
        format: "qcow2",
        size,
        max: MAX_SIZE,
    };
    let header = Header::new(
        size,
        u32::try_from(l1_size).map_err(too_large)?,
        l1_offset,
        table_at * CLUSTER,
        u32::try_from(plan.refcount_table_clusters).map_err(too_large)?,
    );
    file.write_all_at(&header.encode(), base)
        .map_err(Error::output("writing the qcow2 header", base))?;
    Ok(plan.total() * CLUSTER)
}

#[cfg(test)]
mod tests {
    use super::*;

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
