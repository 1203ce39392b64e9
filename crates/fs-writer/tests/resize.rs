//! The resize inode d2l writes against the one mke2fs writes: reserved GDT block count,
//! the inode's fields, its double-indirect block and every reserved GDT block.

mod common;

use common::mke2fs::{differing_bytes, Image};
use d2l_disk::bytes::{le16, le32};
use d2l_fs_writer::internals::{
    reserved_gdt_blocks, resize_inode, RESIZE_INODE_FLAGS, RESIZE_INODE_LINKS, RESIZE_INODE_MODE,
};

/// The resize inode (ext4 docs, "Special inodes").
const RESIZE_INO: u32 = 7;
/// Blocks per group with 4 KiB blocks.
const BLOCKS_PER_GROUP: u32 = 32768;
/// 32-byte group descriptors per 4 KiB block.
const DESCS_PER_BLOCK: u32 = 128;
/// `EXT2_DIND_BLOCK`: the double-indirect slot of `i_block`.
const DIND_BLOCK: usize = 13;

/// Groups 1 and powers of 3, 5 and 7 hold backups (sparse_super).
fn has_superblock(group: u32) -> bool {
    let power_of = |mut n: u32, base: u32| {
        while n > 1 && n.is_multiple_of(base) {
            n /= base;
        }
        n == 1
    };
    group <= 1 || power_of(group, 3) || power_of(group, 5) || power_of(group, 7)
}

/// The resize inode, its double-indirect block and every reserved GDT block, against
/// mke2fs: one group (no backups) up to 1600 groups (13 GDT blocks, 15 backup groups,
/// the 1024-block cap).
#[test]
fn resize_inode_matches_mke2fs() {
    for size_mib in [64, 1024, 5 * 1024, 40 * 1024, 200 * 1024] {
        let image = Image::new(size_mib << 20);
        let blocks_count = u32::try_from(image.header_u64("Block count")).unwrap();
        let reserved = reserved_gdt_blocks(blocks_count);
        assert_eq!(
            u64::from(reserved),
            image.header_u64("Reserved GDT blocks"),
            "{size_mib} MiB: reserved GDT blocks"
        );
        let groups = blocks_count.div_ceil(BLOCKS_PER_GROUP);
        let gdt_blocks = groups.div_ceil(DESCS_PER_BLOCK);

        let raw = image.inode(RESIZE_INO);
        let le32 = |at: usize| le32(&raw, at);
        let le16 = |at: usize| le16(&raw, at);
        let dind_block_nr = le32(40 + 4 * DIND_BLOCK);
        let ours = resize_inode(blocks_count, groups, gdt_blocks, reserved, dind_block_nr);

        let what = format!("{size_mib} MiB ({groups} groups, dind {dind_block_nr})");
        assert_eq!(le16(0), RESIZE_INODE_MODE, "{what}: i_mode");
        assert_eq!(le16(26), RESIZE_INODE_LINKS, "{what}: i_links_count");
        assert_eq!(le32(32), RESIZE_INODE_FLAGS, "{what}: i_flags");
        let i_block: Vec<u32> = (0..15).map(|i| le32(40 + 4 * i)).collect();
        assert_eq!(i_block, ours.i_block, "{what}: i_block");
        let size = u64::from(le32(4)) | u64::from(le32(108)) << 32;
        assert_eq!(size, ours.size, "{what}: i_size");
        let blocks = u64::from(le32(28)) | u64::from(le16(116)) << 32;
        assert_eq!(blocks, ours.blocks_512, "{what}: i_blocks");
        assert_eq!(le16(128), 32, "{what}: i_extra_isize");

        for (nr, contents) in ours.blocks() {
            let theirs = image.block(u64::from(nr));
            assert!(
                theirs[..] == contents[..],
                "{what}: block {nr} differs at bytes {:?}",
                differing_bytes(&theirs[..], &contents[..])
            );
        }
        assert_eq!(ours.primary_reserved.len(), reserved as usize);
        for g in (1..groups).filter(|&g| has_superblock(g)) {
            for r in 0..reserved {
                let nr = u64::from(g * BLOCKS_PER_GROUP + 1 + gdt_blocks + r);
                assert!(
                    image.block(nr).iter().all(|&b| b == 0),
                    "{what}: backup reserved GDT block {nr} (group {g}) is not zero"
                );
            }
        }
        // debugfs agrees on what the inode owns.
        let stat = image.debugfs(&format!("stat <{RESIZE_INO}>"));
        assert!(
            stat.contains(&format!("(DIND):{dind_block_nr}")),
            "{what}: {stat:.300}"
        );
    }
}
