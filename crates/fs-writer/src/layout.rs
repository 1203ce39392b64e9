//! On-disk constants of ext4 (kernel.org "ext4 Data Structures and Algorithms", and
//! e2fsprogs' `lib/ext2fs/ext2_fs.h`), for the one geometry d2l writes.

/// Bytes per block.
pub(crate) const BLOCK_SIZE: u32 = 4096;
/// log2(BLOCK_SIZE) - 10, as `s_log_block_size` stores it.
pub(crate) const LOG_BLOCK_SIZE: u32 = 2;
/// Blocks per block group (one block bitmap block of 4096 * 8 bits).
pub(crate) const BLOCKS_PER_GROUP: u32 = 32768;
/// Bytes per inode.
pub(crate) const INODE_SIZE: u32 = 256;
/// Bytes of the inode beyond the original 128 that d2l uses (`i_extra_isize`): up to and
/// including `i_projid`.
pub(crate) const EXTRA_ISIZE: u16 = 32;
/// Size of a group descriptor without the 64bit feature.
pub(crate) const GROUP_DESC_SIZE: u32 = 32;
/// Groups per flex group (`s_log_groups_per_flex` = 4), as mke2fs.
pub(crate) const LOG_GROUPS_PER_FLEX: u32 = 4;
/// The superblock's byte offset on disk (and its size).
pub(crate) const SUPERBLOCK_OFFSET: u64 = 1024;
/// Superblock size.
pub(crate) const SUPERBLOCK_SIZE: usize = 1024;

/// Reserved inode numbers (ext4 docs, "Special inodes").
pub(crate) const ROOT_INO: u32 = 2;
/// The resize inode: reserved GDT blocks for online growth.
pub(crate) const RESIZE_INO: u32 = 7;
/// The journal inode.
pub(crate) const JOURNAL_INO: u32 = 8;
/// lost+found, the first non-reserved inode.
pub(crate) const LOST_FOUND_INO: u32 = 11;
/// First inode number ordinary files may use (`s_first_ino`).
pub(crate) const FIRST_INO: u32 = 11;

/// Whether group `g` holds a backup superblock and GDT (sparse_super: groups 0, 1 and powers
/// of 3, 5 and 7).
pub(crate) fn has_superblock(group: u32) -> bool {
    fn power_of(mut n: u32, base: u32) -> bool {
        while n > 1 && n.is_multiple_of(base) {
            n /= base;
        }
        n == 1
    }
    group == 0 || group == 1 || power_of(group, 3) || power_of(group, 5) || power_of(group, 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_groups() {
        let groups: Vec<u32> = (0..100).filter(|&g| has_superblock(g)).collect();
        assert_eq!(groups, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
    }
}
