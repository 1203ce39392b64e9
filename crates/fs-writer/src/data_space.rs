//! The blocks file data may take before the filesystem's size is known.
//!
//! File data goes straight into the disk while layers are applied, when neither the block
//! count nor the inode count is known. What must then be left free is only what has a fixed
//! place whatever the size: the superblock copy, group descriptors and reserved GDT blocks at
//! the start of group 0 and of every sparse_super backup group. Together they never exceed
//! [`BACKUP_AREA_BLOCKS`] (1 + 1024 GDT blocks describe 2^32 blocks, the most a filesystem
//! without 64bit has), so that many blocks are skipped at each such group's start. Bitmaps
//! and inode tables may sit anywhere with flex_bg: they go after the data, into free space.
//!
//! "Data space" numbers the blocks that remain, in order; a store hands out data-space
//! offsets and this module maps them to filesystem blocks.

use crate::geometry::Range;
use crate::layout::{has_superblock, BLOCKS_PER_GROUP};

/// Blocks at the start of a backup group that file data never takes: the superblock copy and
/// at most 1024 blocks of group descriptors and reserved GDT blocks.
pub(crate) const BACKUP_AREA_BLOCKS: u32 = 1 + 1024;

/// Most groups a 32-bit filesystem has (2^32 blocks of 4 KiB).
const MAX_GROUPS: u32 = 1 << 17;

/// The mapping from data-space blocks to filesystem blocks.
pub(crate) struct DataSpace {
    /// Data-space block at which each group's data blocks start.
    group_starts: Vec<u64>,
}

impl DataSpace {
    pub fn new() -> DataSpace {
        let mut group_starts = Vec::with_capacity(MAX_GROUPS as usize);
        let mut next = 0u64;
        for g in 0..MAX_GROUPS {
            group_starts.push(next);
            next += u64::from(BLOCKS_PER_GROUP - skipped(g));
        }
        DataSpace { group_starts }
    }

    /// The filesystem block of data-space block `s` (None past a 32-bit filesystem).
    pub fn block(&self, s: u64) -> Option<u32> {
        let group = self.group_starts.partition_point(|&start| start <= s) - 1;
        let within = s - self.group_starts[group];
        let group = u32::try_from(group).ok()?; // below MAX_GROUPS
        let block =
            u64::from(group) * u64::from(BLOCKS_PER_GROUP) + u64::from(skipped(group)) + within;
        if within >= u64::from(BLOCKS_PER_GROUP - skipped(group)) {
            return None;
        }
        u32::try_from(block).ok()
    }

    /// Filesystem block runs of data-space blocks `[s, s + count)`, in order (split where a
    /// backup area lies between them).
    pub fn runs(&self, s: u64, count: u64) -> Option<Vec<Range>> {
        let mut out: Vec<Range> = Vec::new();
        let mut s = s;
        let mut left = count;
        while left > 0 {
            let start = self.block(s)?;
            let group_end = (start / BLOCKS_PER_GROUP + 1) * BLOCKS_PER_GROUP;
            let len = (group_end - start).min(u32::try_from(left).unwrap_or(u32::MAX));
            match out.last_mut() {
                Some(last) if last.end() == start => last.len += len,
                _ => out.push(Range { start, len }),
            }
            s += u64::from(len);
            left -= u64::from(len);
        }
        Some(out)
    }
}

impl DataSpace {
    /// The disk byte ranges of data-space bytes `[at, at + len)` for a filesystem at disk
    /// byte `base`, as (disk offset, offset into the range, length).
    pub fn pieces(&self, base: u64, at: u64, len: u64) -> Option<Vec<(u64, usize, usize)>> {
        let bs = u64::from(crate::layout::BLOCK_SIZE);
        let first = at / bs;
        let blocks = (at + len).div_ceil(bs) - first;
        // `len` is the length of a buffer (or of a run of one file) in memory: a usize.
        let mut out = Vec::new();
        let mut done = 0u64;
        let mut skip = at % bs;
        for run in self.runs(first, blocks)? {
            let bytes = (u64::from(run.len) * bs - skip).min(len - done);
            out.push((
                base + u64::from(run.start) * bs + skip,
                usize::try_from(done).ok()?,
                usize::try_from(bytes).ok()?,
            ));
            done += bytes;
            skip = 0;
        }
        Some(out)
    }
}

/// Blocks skipped at the start of group `g`.
fn skipped(g: u32) -> u32 {
    if has_superblock(g) {
        BACKUP_AREA_BLOCKS
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_backup_areas() {
        let space = DataSpace::new();
        let first_group_data = u64::from(BLOCKS_PER_GROUP - BACKUP_AREA_BLOCKS);
        assert_eq!(space.block(0), Some(BACKUP_AREA_BLOCKS));
        assert_eq!(
            space.block(first_group_data - 1),
            Some(BLOCKS_PER_GROUP - 1)
        );
        // Group 1 has a backup, group 2 none.
        assert_eq!(
            space.block(first_group_data),
            Some(BLOCKS_PER_GROUP + BACKUP_AREA_BLOCKS)
        );
        let group2 = 2 * first_group_data;
        assert_eq!(space.block(group2), Some(2 * BLOCKS_PER_GROUP));
        // A run across group 0's end is split around group 1's backup area.
        assert_eq!(
            space.runs(first_group_data - 2, 4).unwrap(),
            vec![
                Range {
                    start: BLOCKS_PER_GROUP - 2,
                    len: 2
                },
                Range {
                    start: BLOCKS_PER_GROUP + BACKUP_AREA_BLOCKS,
                    len: 2
                }
            ]
        );
        // Across group 2's end into group 3 (a backup group) and from group 3 to 4 (none):
        // the second boundary joins up.
        let runs = space.runs(group2, u64::from(BLOCKS_PER_GROUP) * 2).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].start, 2 * BLOCKS_PER_GROUP);
        assert_eq!(runs[1].start, 3 * BLOCKS_PER_GROUP + BACKUP_AREA_BLOCKS);
        assert_eq!(
            runs.iter().map(|r| r.len).sum::<u32>(),
            2 * BLOCKS_PER_GROUP
        );
    }

    #[test]
    fn ends_with_32_bit_block_numbers() {
        let space = DataSpace::new();
        assert!(space.block(u64::from(u32::MAX)).is_none());
    }
}
