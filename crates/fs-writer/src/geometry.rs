//! Where everything goes: the pure layout step. Given the filesystem size and inode count it
//! places superblock copies, group descriptor tables, reserved GDT blocks, bitmaps and inode
//! tables (flex_bg: each flex group's bitmaps and tables packed at its start, as mke2fs does),
//! and answers which blocks are metadata. No I/O.

use crate::layout::{
    has_superblock, BLOCKS_PER_GROUP, BLOCK_SIZE, GROUP_DESC_SIZE, INODE_SIZE, LOG_GROUPS_PER_FLEX,
};
use crate::resize;

/// Inodes per inode-table block.
const INODES_PER_BLOCK: u32 = BLOCK_SIZE / INODE_SIZE;
/// Most inodes a group can have: its inode bitmap is one block.
const MAX_INODES_PER_GROUP: u32 = BLOCK_SIZE * 8;
/// Group descriptors per GDT block.
const DESCS_PER_BLOCK: u32 = BLOCK_SIZE / GROUP_DESC_SIZE;

/// A range of blocks `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Range {
    pub start: u32,
    pub len: u32,
}

impl Range {
    pub fn end(self) -> u32 {
        self.start + self.len
    }
}

/// The layout of one block group.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// First block of the group.
    pub start: u32,
    /// Blocks in the group (the last group may be shorter).
    pub blocks: u32,
    /// Superblock copy, GDT and reserved GDT blocks at the group's start, if any.
    pub backup: Option<Range>,
    pub block_bitmap: u32,
    pub inode_bitmap: u32,
    pub inode_table: u32,
}

/// The filesystem's geometry.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    pub blocks_count: u32,
    pub inodes_per_group: u32,
    pub gdt_blocks: u32,
    pub reserved_gdt_blocks: u32,
    pub groups: Vec<Group>,
    /// Every metadata range, sorted and merged: what data allocation must skip.
    pub metadata: Vec<Range>,
}

impl Geometry {
    /// Lays out a filesystem of `blocks_count` blocks with room for at least `min_inodes`
    /// inodes, keeping bitmaps and inode tables off the `occupied` blocks (sorted; file data
    /// already on the disk). None when the groups cannot hold their own metadata.
    pub fn new(blocks_count: u32, min_inodes: u64, occupied: &[Range]) -> Option<Geometry> {
        let group_count = blocks_count.div_ceil(BLOCKS_PER_GROUP);
        let per_group = min_inodes.div_ceil(u64::from(group_count));
        let inodes_per_group =
            u32::try_from(per_group.next_multiple_of(u64::from(INODES_PER_BLOCK)))
                .ok()?
                .max(INODES_PER_BLOCK);
        if inodes_per_group > MAX_INODES_PER_GROUP {
            return None;
        }
        let gdt_blocks = group_count.div_ceil(DESCS_PER_BLOCK);
        let reserved_gdt_blocks = resize::reserved_gdt_blocks(blocks_count);
        let table_blocks = inodes_per_group / INODES_PER_BLOCK;

        let mut groups: Vec<Group> = (0..group_count)
            .map(|g| {
                let start = g * BLOCKS_PER_GROUP;
                let blocks = (blocks_count - start).min(BLOCKS_PER_GROUP);
                let backup = has_superblock(g).then_some(Range {
                    start,
                    len: 1 + gdt_blocks + reserved_gdt_blocks,
                });
                Group {
                    start,
                    blocks,
                    backup,
                    block_bitmap: 0,
                    inode_bitmap: 0,
                    inode_table: 0,
                }
            })
            .collect();
        let mut metadata: Vec<Range> = groups.iter().filter_map(|g| g.backup).collect();

        // flex_bg: a flex group's block bitmaps, then its inode bitmaps, then its inode
        // tables, packed from the start of its first group.
        let flex = 1u32 << LOG_GROUPS_PER_FLEX;
        for first in (0..group_count).step_by(flex as usize) {
            let members = first..(first + flex).min(group_count);
            let mut cursor = groups[first as usize].start;
            for g in members.clone() {
                let r = take(&mut metadata, occupied, &mut cursor, 1, blocks_count)?;
                groups[g as usize].block_bitmap = r.start;
            }
            for g in members.clone() {
                let r = take(&mut metadata, occupied, &mut cursor, 1, blocks_count)?;
                groups[g as usize].inode_bitmap = r.start;
            }
            for g in members {
                let r = take(
                    &mut metadata,
                    occupied,
                    &mut cursor,
                    table_blocks,
                    blocks_count,
                )?;
                groups[g as usize].inode_table = r.start;
            }
        }
        metadata.sort();
        let metadata = merge(metadata);
        Some(Geometry {
            blocks_count,
            inodes_per_group,
            gdt_blocks,
            reserved_gdt_blocks,
            groups,
            metadata,
        })
    }

    /// Total inodes.
    pub fn inodes_count(&self) -> u32 {
        #[allow(clippy::cast_possible_truncation)] // at most 2^17 groups (32-bit block numbers)
        let groups = self.groups.len() as u32;
        self.inodes_per_group * groups
    }

    /// Blocks of metadata (everything in `metadata`).
    pub fn metadata_blocks(&self) -> u64 {
        self.metadata.iter().map(|r| u64::from(r.len)).sum()
    }
}

/// Takes `len` contiguous blocks at or after `cursor` that overlap no range in `used` or
/// `occupied` (sorted), adds them to `used`, and moves the cursor past them.
fn take(
    used: &mut Vec<Range>,
    occupied: &[Range],
    cursor: &mut u32,
    len: u32,
    limit: u32,
) -> Option<Range> {
    loop {
        let candidate = Range {
            start: *cursor,
            len,
        };
        if candidate.end() > limit {
            return None;
        }
        let overlaps = |r: &&Range| r.start < candidate.end() && candidate.start < r.end();
        let first_occupied = occupied.partition_point(|r| r.end() <= candidate.start);
        match used
            .iter()
            .filter(overlaps)
            .chain(occupied[first_occupied..].iter().take(1).filter(overlaps))
            .map(|r| r.end())
            .max()
        {
            Some(end) => *cursor = end,
            None => {
                used.push(candidate);
                *cursor = candidate.end();
                return Some(candidate);
            }
        }
    }
}

/// Merges sorted, possibly adjacent ranges.
pub(crate) fn merge(sorted: Vec<Range>) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if last.end() >= r.start => {
                last.len = last.len.max(r.end() - last.start);
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // fixtures: small, known values
mod tests {
    use super::*;

    #[test]
    fn small_filesystem_layout() {
        // 64 MiB: 16384 blocks, one group.
        let g = Geometry::new(16384, 1000, &[]).unwrap();
        assert_eq!(g.groups.len(), 1);
        assert_eq!(g.inodes_per_group, 1008);
        assert_eq!(g.gdt_blocks, 1);
        let backup = g.groups[0].backup.unwrap();
        assert_eq!(backup.start, 0);
        assert_eq!(g.groups[0].block_bitmap, backup.end());
        assert_eq!(g.groups[0].inode_bitmap, backup.end() + 1);
        assert_eq!(g.groups[0].inode_table, backup.end() + 2);
        assert_eq!(
            g.metadata,
            vec![Range {
                start: 0,
                len: backup.end() + 2 + 1008 / 16
            }]
        );
    }

    #[test]
    fn flex_groups_pack_their_metadata_and_skip_backups() {
        // 40 groups: flex groups of 16 start at groups 0, 16 and 32.
        let g = Geometry::new(40 * BLOCKS_PER_GROUP, 40 * 8192, &[]).unwrap();
        assert_eq!(g.groups.len(), 40);
        let first = &g.groups[0];
        let backup_end = first.backup.unwrap().end();
        for (i, group) in g.groups[..16].iter().enumerate() {
            assert_eq!(group.block_bitmap, backup_end + i as u32);
            assert_eq!(group.inode_bitmap, backup_end + 16 + i as u32);
            assert_eq!(group.inode_table, backup_end + 32 + i as u32 * 512);
        }
        // Group 16 has no backup; group 25 and 27 do, and nothing overlaps them.
        assert_eq!(g.groups[16].block_bitmap, 16 * BLOCKS_PER_GROUP);
        for window in g.metadata.windows(2) {
            assert!(window[0].end() < window[1].start, "merged and sorted");
        }
        // Every group's tables lie inside the filesystem and outside every backup area.
        for group in &g.groups {
            for backup in g.groups.iter().filter_map(|g| g.backup) {
                let table = Range {
                    start: group.inode_table,
                    len: 512,
                };
                assert!(table.end() <= backup.start || table.start >= backup.end());
            }
        }
    }

    #[test]
    fn tables_go_around_data_already_on_the_disk() {
        // Data from the end of group 0's backup area to the middle of group 1, with a hole.
        let occupied = [
            Range {
                start: 1025,
                len: 20_000,
            },
            Range {
                start: 30_000,
                len: 20_000,
            },
        ];
        let g = Geometry::new(4 * BLOCKS_PER_GROUP, 4 * 8192, &occupied).unwrap();
        for group in &g.groups {
            for r in &occupied {
                for (start, len) in [
                    (group.block_bitmap, 1),
                    (group.inode_bitmap, 1),
                    (group.inode_table, 512),
                ] {
                    assert!(start + len <= r.start || start >= r.end(), "{group:?}");
                }
            }
        }
        // Metadata fills the free blocks before the data first (the backup area is smaller
        // than the 1025 blocks data leaves it), then the hole in the data.
        assert_eq!(g.groups[0].block_bitmap, g.groups[0].backup.unwrap().end());
        assert!((21_025..30_000 - 512).contains(&g.groups[3].inode_table));
    }

    #[test]
    fn too_many_inodes_for_the_groups() {
        assert!(Geometry::new(BLOCKS_PER_GROUP, 40_000, &[]).is_none());
    }
}
