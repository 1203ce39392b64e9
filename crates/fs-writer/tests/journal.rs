//! The journal d2l writes against the one mke2fs writes: its size for each filesystem size,
//! and its superblock byte for byte.

mod common;

use common::mke2fs::{differing_bytes, Image, UUID};
use d2l_fs_writer::internals::{default_journal_blocks, journal_superblock};

/// The journal inode (ext4 docs, "Special inodes").
const JOURNAL_INO: u32 = 8;

/// mke2fs's journal size and superblock, for filesystems from 64 MiB (a 1024-block
/// journal) to 200 GiB (the 1 GiB maximum).
#[test]
fn journal_matches_mke2fs() {
    for size_mib in [64, 1024, 5 * 1024, 40 * 1024, 200 * 1024] {
        let image = Image::new(size_mib << 20);
        let blocks_count = image.header_u64("Block count");
        let journal_blocks = default_journal_blocks(blocks_count).unwrap();
        assert_eq!(
            u64::from(journal_blocks),
            image.header_u64("Total journal blocks"),
            "{size_mib} MiB: journal size"
        );
        assert_eq!(image.header("Journal features"), "(none)", "{size_mib} MiB");
        let first = image.bmap(JOURNAL_INO, 0);
        let theirs = image.block(first);
        let ours = journal_superblock(journal_blocks, &UUID);
        assert!(
            theirs[..] == ours[..],
            "{size_mib} MiB: journal superblock (block {first}) differs at bytes {:?}",
            differing_bytes(&theirs[..], &ours[..])
        );
    }
}
