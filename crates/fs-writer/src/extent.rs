//! Extent trees (ext4 docs, "Extent Tree"): up to four extents in the inode, more through
//! leaf and index blocks, each block checksummed with the inode's seed.

use d2l_disk::bytes::IntoBytes;

use crate::csum::ext4_chksum;
use crate::layout::BLOCK_SIZE;
use crate::ondisk::{ExtentHeader, ExtentIdx, ExtentLeaf};

/// `eh_magic` (Documentation/filesystems/ext4/ifork.rst, "Extent Tree").
const EXTENT_MAGIC: u16 = 0xF30A;
/// Size of the header and of each entry.
const ENTRY_SIZE: usize = size_of::<ExtentHeader>();
const _: () =
    assert!(size_of::<ExtentLeaf>() == ENTRY_SIZE && size_of::<ExtentIdx>() == ENTRY_SIZE);
/// Entries in the inode's 60-byte `i_block` after the header.
const ROOT_ENTRIES: usize = 4;
/// Entries in a tree block: (4096 - header) / 12, leaving the 4-byte checksum tail.
const BLOCK_ENTRIES: usize = (BLOCK_SIZE as usize - ENTRY_SIZE) / ENTRY_SIZE;
/// Offset of the tail checksum in a tree block.
const TAIL_OFFSET: usize = ENTRY_SIZE + BLOCK_ENTRIES * ENTRY_SIZE;
/// Longest initialized extent.
pub(crate) const MAX_EXTENT_LEN: u32 = 32768;

/// A run of blocks: `len` blocks of the file from `logical` are at `physical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    pub logical: u32,
    pub physical: u32,
    pub len: u32,
}

/// A tree block to write: its block number and contents.
pub(crate) type TreeBlock = (u32, Box<[u8; BLOCK_SIZE as usize]>);

/// Tree blocks needed for `extents` extents (0 when they fit in the inode).
pub(crate) fn tree_blocks(extents: usize) -> usize {
    let mut total = 0;
    let mut level = extents;
    while level > ROOT_ENTRIES {
        level = level.div_ceil(BLOCK_ENTRIES);
        total += level;
    }
    total
}

/// The inode's `i_block` and the tree blocks, given the physical numbers of the
/// [`tree_blocks`] blocks the caller allocated for them (used leaves first, then upwards).
/// Extents must be sorted, at most [`MAX_EXTENT_LEN`] long.
pub(crate) fn build(
    extents: &[Extent],
    blocks: &[u32],
    inode_seed: u32,
) -> ([u8; 60], Vec<TreeBlock>) {
    assert_eq!(
        blocks.len(),
        tree_blocks(extents.len()),
        "caller allocated the tree blocks"
    );
    let mut written = Vec::with_capacity(blocks.len());
    let mut next_block = blocks.iter().copied();
    // Level entries as (first logical block, encoded entry).
    let mut entries: Vec<(u32, [u8; ENTRY_SIZE])> =
        extents.iter().map(|e| (e.logical, leaf_entry(e))).collect();
    let mut depth = 0u16;
    while entries.len() > ROOT_ENTRIES {
        let mut parents = Vec::with_capacity(entries.len().div_ceil(BLOCK_ENTRIES));
        for chunk in entries.chunks(BLOCK_ENTRIES) {
            let nr = next_block.next().expect("enough tree blocks");
            let mut block = Box::new([0u8; BLOCK_SIZE as usize]);
            header(&mut block[..ENTRY_SIZE], chunk.len(), BLOCK_ENTRIES, depth);
            for (i, (_, entry)) in chunk.iter().enumerate() {
                block[ENTRY_SIZE * (i + 1)..ENTRY_SIZE * (i + 2)].copy_from_slice(entry);
            }
            let csum = ext4_chksum(inode_seed, &block[..TAIL_OFFSET]);
            block[TAIL_OFFSET..].copy_from_slice(&csum.to_le_bytes());
            parents.push((chunk[0].0, index_entry(chunk[0].0, nr)));
            written.push((nr, block));
        }
        entries = parents;
        depth += 1;
    }
    let mut root = [0u8; 60];
    header(&mut root[..ENTRY_SIZE], entries.len(), ROOT_ENTRIES, depth);
    for (i, (_, entry)) in entries.iter().enumerate() {
        root[ENTRY_SIZE * (i + 1)..ENTRY_SIZE * (i + 2)].copy_from_slice(entry);
    }
    (root, written)
}

fn header(out: &mut [u8], entries: usize, max: usize, depth: u16) {
    // At most BLOCK_ENTRIES (340) entries: both fit 16 bits.
    let (Ok(entries), Ok(max)) = (u16::try_from(entries), u16::try_from(max)) else {
        unreachable!("at most {BLOCK_ENTRIES} entries per node");
    };
    let header = ExtentHeader {
        eh_magic: EXTENT_MAGIC.into(),
        eh_entries: entries.into(),
        eh_max: max.into(),
        eh_depth: depth.into(),
        eh_generation: 0.into(),
    };
    out.copy_from_slice(header.as_bytes());
}

fn leaf_entry(e: &Extent) -> [u8; ENTRY_SIZE] {
    debug_assert!(e.len > 0 && e.len <= MAX_EXTENT_LEN);
    let Ok(len) = u16::try_from(e.len) else {
        unreachable!("extents are at most MAX_EXTENT_LEN long");
    };
    let leaf = ExtentLeaf {
        ee_block: e.logical.into(),
        ee_len: len.into(),
        ee_start_hi: 0.into(), // no 64bit
        ee_start_lo: e.physical.into(),
    };
    let mut b = [0u8; ENTRY_SIZE];
    b.copy_from_slice(leaf.as_bytes());
    b
}

fn index_entry(logical: u32, block: u32) -> [u8; ENTRY_SIZE] {
    let index = ExtentIdx {
        ei_block: logical.into(),
        ei_leaf_lo: block.into(),
        ..ExtentIdx::default()
    };
    let mut b = [0u8; ENTRY_SIZE];
    b.copy_from_slice(index.as_bytes());
    b
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // fixtures: small, known values
mod tests {
    use super::*;
    use d2l_disk::bytes::FromBytes;

    #[test]
    fn tree_block_counts() {
        assert_eq!(tree_blocks(0), 0);
        assert_eq!(tree_blocks(4), 0);
        assert_eq!(tree_blocks(5), 1);
        assert_eq!(tree_blocks(340 * 4), 4);
        assert_eq!(tree_blocks(340 * 4 + 1), 5 + 1);
    }

    #[test]
    fn small_tree_lives_in_the_inode() {
        let extents = [
            Extent {
                logical: 0,
                physical: 1000,
                len: 3,
            },
            Extent {
                logical: 10,
                physical: 2000,
                len: 1,
            },
        ];
        let (root, blocks) = build(&extents, &[], 0);
        assert!(blocks.is_empty());
        // Header: magic 0xF30A, 2 entries, max 4, depth 0.
        assert_eq!(root[..8], [0x0A, 0xF3, 2, 0, 4, 0, 0, 0]);
        // First extent: logical 0, len 3, start_hi 0, start_lo 1000.
        assert_eq!(root[12..24], [0, 0, 0, 0, 3, 0, 0, 0, 0xE8, 0x03, 0, 0]);
        let (header, rest) = ExtentHeader::read_from_prefix(&root).unwrap();
        assert_eq!(header.eh_magic.get(), EXTENT_MAGIC);
        assert_eq!(header.eh_entries.get(), 2);
        let (_, rest) = ExtentLeaf::read_from_prefix(rest).unwrap();
        let second = ExtentLeaf::read_from_prefix(rest).unwrap().0;
        assert_eq!(
            (
                second.ee_block.get(),
                second.ee_len.get(),
                second.ee_start_lo.get()
            ),
            (10, 1, 2000)
        );
    }

    #[test]
    fn two_levels_when_needed() {
        let extents: Vec<Extent> = (0..2000)
            .map(|i| Extent {
                logical: i * 2,
                physical: 10_000 + i * 2,
                len: 1,
            })
            .collect();
        let n = tree_blocks(extents.len());
        // 2000 extents: 6 leaves (340 each), too many for the inode's 4 slots, so one index
        // block above them.
        assert_eq!(n, 6 + 1);
        let blocks: Vec<u32> = (0..n as u32).map(|i| 500 + i).collect();
        let (root, written) = build(&extents, &blocks, 0x1234);
        let root_header = ExtentHeader::read_from_prefix(&root).unwrap().0;
        assert_eq!(root_header.eh_depth.get(), 2, "depth 2");
        assert_eq!(
            root_header.eh_entries.get(),
            1,
            "one index block under the root"
        );
        assert_eq!(written.len(), 7);
        // The index block (written last) points at the 6 leaves, in order.
        let index = &written[6].1;
        let (header, entries) = ExtentHeader::read_from_prefix(&index[..]).unwrap();
        assert_eq!(header.eh_entries.get(), 6);
        assert_eq!(header.eh_depth.get(), 1, "depth 1");
        let first = ExtentIdx::read_from_prefix(entries).unwrap().0;
        assert_eq!(first.ei_leaf_lo.get(), 500);
        let tail = &written[0].1[TAIL_OFFSET..];
        assert_eq!(
            tail,
            ext4_chksum(0x1234, &written[0].1[..TAIL_OFFSET]).to_le_bytes()
        );
    }
}
