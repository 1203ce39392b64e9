//! The resize inode (inode 7), as mke2fs 1.47 builds it (`lib/ext2fs/res_gdt.c`,
//! `lib/ext2fs/initialize.c`): how many GDT blocks to reserve for online growth, and the
//! double-indirect map through which the kernel finds them.
//!
//! Every group with a superblock copy keeps `reserved_gdt_blocks` blocks after its GDT, where
//! growing the filesystem adds GDT blocks. The resize inode owns all of them through one
//! double-indirect block. Its entry `(gdt_blocks + r) % 1024` points at primary reserved GDT
//! block `r` (in group 0), used as an indirect block: it lists, group by group, the matching
//! reserved block of every backup group (`g * 32768 + 1 + gdt_blocks + r`). The kernel's
//! `ext4_add_new_descs` walks those lists when it turns a reserved block into a GDT block.
//!
//! The inode's logical offsets mean nothing; only the map matters. mke2fs writes the
//! double-indirect block and the primary reserved blocks, and never writes the backup
//! reserved blocks: they stay zero (nothing reads them until a resize copies a new GDT block
//! over them).

use d2l_disk::bytes::put_le32;

use crate::layout::{has_superblock, BLOCKS_PER_GROUP, BLOCK_SIZE, GROUP_DESC_SIZE};

/// Block numbers per indirect block (`EXT2_ADDR_PER_BLOCK`): 32-bit entries.
const ADDR_PER_BLOCK: u32 = BLOCK_SIZE / 4;
/// Group descriptors per GDT block (`EXT2_DESC_PER_BLOCK`), without the 64bit feature.
const DESCS_PER_BLOCK: u32 = BLOCK_SIZE / GROUP_DESC_SIZE;
/// mke2fs reserves GDT room for a filesystem this many times larger (`calc_reserved_gdt_blocks`).
const GROWTH_FACTOR: u64 = 1024;
/// `EXT2_NDIR_BLOCKS`: direct block slots in `i_block`.
const NDIR_BLOCKS: u64 = 12;
/// `EXT2_DIND_BLOCK`: the double-indirect slot of `i_block`.
const DIND_BLOCK: usize = 13;
/// `i_blocks` counts 512-byte sectors (no `EXT4_HUGE_FILE_FL` on the resize inode).
const SECTORS_PER_BLOCK: u64 = BLOCK_SIZE as u64 / 512;

/// The resize inode's `i_mode`: a regular file, 0600 (`S_IFREG | 0600`).
pub const RESIZE_INODE_MODE: u16 = 0o100_600;
/// The resize inode's `i_links_count`.
pub const RESIZE_INODE_LINKS: u16 = 1;
/// The resize inode's `i_flags`: none. In particular no `EXT4_EXTENTS_FL`: it keeps the old
/// indirect block map even on an extent filesystem.
pub const RESIZE_INODE_FLAGS: u32 = 0;

/// Number of reserved GDT blocks mke2fs reserves so the filesystem can grow to 1024 times
/// `blocks_count` blocks, or to 2^32 blocks if that is less (the most a filesystem without
/// 64bit can have); never more than one indirect block's worth (1024).
pub fn reserved_gdt_blocks(blocks_count: u32) -> u32 {
    let blocks = u64::from(blocks_count);
    let limit = u64::from(u32::MAX);
    let max_blocks = if blocks < limit / GROWTH_FACTOR {
        blocks * GROWTH_FACTOR
    } else {
        limit
    };
    let gdt_blocks_for = |blocks: u64| {
        blocks
            .div_ceil(u64::from(BLOCKS_PER_GROUP))
            .div_ceil(u64::from(DESCS_PER_BLOCK))
    };
    let reserved = gdt_blocks_for(max_blocks).saturating_sub(gdt_blocks_for(blocks));
    // At most 1024 by construction (2^32 blocks need 1024 GDT blocks).
    u32::try_from(reserved.min(u64::from(ADDR_PER_BLOCK))).unwrap_or(ADDR_PER_BLOCK)
}

/// Contents of the resize inode (inode 7) and of the blocks it owns that are not zero.
///
/// The lead fills inode 7 as mke2fs does:
/// - `i_mode` [`RESIZE_INODE_MODE`], `i_links_count` [`RESIZE_INODE_LINKS`], `i_flags`
///   [`RESIZE_INODE_FLAGS`] (block map, not extents), uid, gid, generation 0;
/// - `i_block` from [`i_block`](Self::i_block): only slot 13, the double-indirect block;
/// - `i_size_lo`/`i_size_high` from [`size`](Self::size) (above 4 GiB: needs large_file);
/// - `i_blocks_lo` from [`blocks_512`](Self::blocks_512), `l_i_blocks_hi` 0;
/// - `i_atime`, `i_ctime`, `i_mtime`, `i_crtime`: the creation time, `*_extra` 0;
///   `i_extra_isize` 32; then the inode checksum.
///
/// `i_blocks` counts the double-indirect block, every primary reserved GDT block and every
/// backup reserved GDT block. All of them (and the GDT area as a whole) must be marked in use
/// in the block bitmaps; the double-indirect block is the only one outside that area.
///
/// Blocks to write: [`dind_block`](Self::dind_block) at `dind_block_nr`, and
/// [`primary_reserved`](Self::primary_reserved)`[r]` at `1 + gdt_blocks + r` (see
/// [`blocks`](Self::blocks)). The backup reserved GDT blocks, `g * 32768 + 1 + gdt_blocks + r`
/// for every backup group `g`, are all zero: mke2fs leaves them unwritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResizeInode {
    /// The inode's `i_block`: zero but for the double-indirect slot.
    pub i_block: [u32; 15],
    /// `i_size`: what the double-indirect map could address, (1024² + 1024 + 12) blocks.
    pub size: u64,
    /// `i_blocks`, in 512-byte units.
    pub blocks_512: u64,
    /// Where the double-indirect block goes.
    pub dind_block_nr: u32,
    /// The double-indirect block: little-endian pointers to the primary reserved GDT blocks.
    pub dind_block: Box<[u8; 4096]>,
    /// Block number of primary reserved GDT block 0 (`1 + gdt_blocks`).
    pub first_primary_reserved: u32,
    /// Primary reserved GDT block `r`: the little-endian numbers of its backups, one per
    /// backup group in increasing group order, then zeros. All zero with a single group.
    pub primary_reserved: Vec<Box<[u8; 4096]>>,
}

impl ResizeInode {
    /// Every block to write, as (block number, contents): the double-indirect block, then the
    /// primary reserved GDT blocks in order.
    pub fn blocks(&self) -> impl Iterator<Item = (u32, &[u8; 4096])> {
        let primaries =
            (self.first_primary_reserved..).zip(self.primary_reserved.iter().map(|b| &**b));
        std::iter::once((self.dind_block_nr, &*self.dind_block)).chain(primaries)
    }
}

/// Builds the resize inode of a filesystem of `blocks_count` blocks in `groups` groups, with
/// `gdt_blocks` GDT blocks and `reserved_gdt_blocks` reserved ones after them, whose
/// double-indirect block is `dind_block_nr`.
///
/// mke2fs allocates that block as the first free block at or after `1 + gdt_blocks +
/// reserved_gdt_blocks + 2 + inode_blocks_per_group`, once the bitmaps, inode tables, root
/// directory and lost+found have their blocks, and before the journal: on a 40 GiB
/// filesystem the root directory gets block 9249, lost+found 9250..=9253, this block 9254.
///
/// # Panics
///
/// If the geometry is inconsistent: `groups` not covering `blocks_count`, or the
/// double-indirect block outside the filesystem.
pub fn resize_inode(
    blocks_count: u32,
    groups: u32,
    gdt_blocks: u32,
    reserved_gdt_blocks: u32,
    dind_block_nr: u32,
) -> ResizeInode {
    assert_eq!(
        groups,
        blocks_count.div_ceil(BLOCKS_PER_GROUP),
        "group count"
    );
    assert!(
        dind_block_nr > 0 && dind_block_nr < blocks_count,
        "dind block {dind_block_nr}"
    );
    assert!(
        reserved_gdt_blocks <= ADDR_PER_BLOCK,
        "{reserved_gdt_blocks} reserved GDT blocks"
    );

    let backups: Vec<u32> = (1..groups).filter(|&g| has_superblock(g)).collect();
    let first_primary_reserved = 1 + gdt_blocks;

    let mut dind_block = Box::new([0u8; BLOCK_SIZE as usize]);
    let mut primary_reserved = Vec::with_capacity(reserved_gdt_blocks as usize);
    for r in 0..reserved_gdt_blocks {
        let primary = first_primary_reserved + r;
        let slot = ((gdt_blocks + r) % ADDR_PER_BLOCK) as usize;
        put_entry(&mut dind_block[..], slot, primary);
        let mut block = Box::new([0u8; BLOCK_SIZE as usize]);
        for (i, &g) in backups.iter().enumerate() {
            put_entry(&mut block[..], i, g * BLOCKS_PER_GROUP + primary);
        }
        primary_reserved.push(block);
    }

    let mut i_block = [0; 15];
    i_block[DIND_BLOCK] = dind_block_nr;
    let apb = u64::from(ADDR_PER_BLOCK);
    let owned = 1 + u64::from(reserved_gdt_blocks) * (1 + backups.len() as u64);
    ResizeInode {
        i_block,
        size: (apb * apb + apb + NDIR_BLOCKS) * u64::from(BLOCK_SIZE),
        blocks_512: owned * SECTORS_PER_BLOCK,
        dind_block_nr,
        dind_block,
        first_primary_reserved,
        primary_reserved,
    }
}

/// Stores `value` as the `index`th little-endian 32-bit entry of `block` (a block map:
/// `__le32` block numbers, ext4 docs "Direct/Indirect Block Addressing").
fn put_entry(block: &mut [u8], index: usize, value: u32) {
    put_le32(block, index * 4, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_gdt_blocks_edges() {
        // One group: room for 1024 groups = 8 GDT blocks, one of which exists.
        assert_eq!(reserved_gdt_blocks(16384), 3);
        assert_eq!(reserved_gdt_blocks(32768), 7);
        // 1 GiB: 8 groups, growth to 8192 groups = 64 GDT blocks.
        assert_eq!(reserved_gdt_blocks(262_144), 63);
        // From 2^32 / 1024 blocks on, growth stops at 2^32 blocks = 1024 GDT blocks.
        assert_eq!(reserved_gdt_blocks(4_194_302), 1023);
        assert_eq!(reserved_gdt_blocks(4_194_303), 1023);
        assert_eq!(reserved_gdt_blocks(52_428_800), 1011);
        assert_eq!(reserved_gdt_blocks(u32::MAX), 0);
    }

    #[test]
    fn three_groups_map() {
        // 3 groups: backups in group 1 only; 1 GDT block, 2 reserved.
        let inode = resize_inode(3 * 32768, 3, 1, 2, 300);
        assert_eq!(
            inode.i_block,
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 300, 0]
        );
        assert_eq!(inode.size, 4_299_210_752);
        // dind + 2 primaries + 2 backups.
        assert_eq!(inode.blocks_512, 5 * 8);
        #[rustfmt::skip]
        let dind_head: [u8; 12] = [
            0, 0, 0, 0, // slot 0: the GDT block itself is not owned
            2, 0, 0, 0, // slot 1 = gdt_blocks + 0: primary reserved block 2
            3, 0, 0, 0, // slot 2: primary reserved block 3
        ];
        assert_eq!(inode.dind_block[..12], dind_head);
        assert!(inode.dind_block[12..].iter().all(|&b| b == 0));
        assert_eq!(inode.primary_reserved.len(), 2);
        assert_eq!(inode.primary_reserved[0][..4], (32768u32 + 2).to_le_bytes());
        assert_eq!(inode.primary_reserved[1][..4], (32768u32 + 3).to_le_bytes());
        assert!(inode
            .primary_reserved
            .iter()
            .all(|b| b[4..].iter().all(|&x| x == 0)));
        let numbers: Vec<u32> = inode.blocks().map(|(nr, _)| nr).collect();
        assert_eq!(numbers, [300, 2, 3]);
    }
}
