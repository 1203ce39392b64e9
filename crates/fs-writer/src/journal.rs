//! The internal jbd2 journal (inode 8), as mke2fs 1.47 creates it: its size, and its first
//! block, the journal superblock. Every other journal block is zero, which d2l gets for free
//! by leaving them unwritten (the output is sparse).
//!
//! The journal superblock is big endian (kernel `include/linux/jbd2.h`, e2fsprogs
//! `lib/ext2fs/kernel-jbd.h`, `journal_superblock_t`). mke2fs writes a version 2 superblock
//! with no journal features at all: even on a metadata_csum filesystem it sets neither
//! `csum_v2` nor `csum_v3`, so `s_checksum_type` and `s_checksum` stay zero. The kernel turns
//! journal checksums on at mount time if the mount options ask for them.
//!
//! The journal is clean and empty: `s_start` = 0 means there is nothing to replay, and
//! `s_sequence` = 1 is the first transaction the kernel will write.

use d2l_disk::bytes::{FromZeros, IntoBytes};

use crate::layout::BLOCK_SIZE;
use crate::ondisk::JournalSuperblock;

// Values below: Documentation/filesystems/ext4/journal.rst ("Block Header", "Super Block").

/// `JBD2_MAGIC_NUMBER`, the first word of every journal metadata block.
const JBD2_MAGIC_NUMBER: u32 = 0xC03B_3998;
/// `JBD2_SUPERBLOCK_V2`: block type of a version 2 journal superblock.
const JBD2_SUPERBLOCK_V2: u32 = 4;
/// `JBD2_MIN_JOURNAL_BLOCKS`: the smallest journal jbd2 (and mke2fs) accepts.
pub(crate) const MIN_JOURNAL_BLOCKS: u32 = 1024;

const _: () = assert!(size_of::<JournalSuperblock>() <= BLOCK_SIZE as usize);

/// Journal size in blocks mke2fs picks for a filesystem of `fs_blocks` blocks
/// (`ext2fs_default_journal_size` of e2fsprogs 1.47, `lib/ext2fs/mkjournal.c`); None below its
/// minimum of 2048 filesystem blocks, where mke2fs makes no journal.
///
/// With 4 KiB blocks: a 4 MiB journal for a filesystem under 128 MiB, 16 MiB under 1 GiB,
/// 32 MiB under 2 GiB, 64 MiB under 16 GiB, 128 MiB under 32 GiB, 256 MiB under 64 GiB,
/// 512 MiB under 128 GiB, and 1 GiB from there on.
pub fn default_journal_blocks(fs_blocks: u64) -> Option<u32> {
    const KI: u64 = 1024;
    /// (filesystem blocks below which, journal blocks).
    const TABLE: [(u64, u32); 8] = [
        (32 * KI, 1024),
        (256 * KI, 4096),
        (512 * KI, 8192),
        (4096 * KI, 16384),
        (8192 * KI, 32768),
        (16384 * KI, 65536),
        (32768 * KI, 131_072),
        (u64::MAX, 262_144),
    ];
    if fs_blocks < 2048 {
        return None;
    }
    TABLE
        .iter()
        .find(|&&(below, _)| fs_blocks < below)
        .map(|&(_, blocks)| blocks)
}

/// The journal's first block (its superblock, jbd2 v2, big endian), for a clean empty journal
/// of `journal_blocks` blocks, with the filesystem's uuid: byte for byte what mke2fs 1.47
/// writes for an internal journal.
///
/// Fields set: magic, block type 4 (v2), `s_blocksize` 4096, `s_maxlen` = `journal_blocks`,
/// `s_first` = 1, `s_sequence` = 1, `s_uuid` = `fs_uuid`, `s_nr_users` = 1. Zero: `s_start`
/// (clean), `s_errno`, all three feature sets, `s_max_transaction`, `s_max_trans_data`,
/// `s_checksum_type`, `s_num_fc_blks`, `s_checksum`, `s_users`.
///
/// # Panics
///
/// If `journal_blocks` is below [`MIN_JOURNAL_BLOCKS`] (mke2fs refuses such a journal).
pub fn journal_superblock(journal_blocks: u32, fs_uuid: &[u8; 16]) -> Box<[u8; 4096]> {
    assert!(
        journal_blocks >= MIN_JOURNAL_BLOCKS,
        "journal of {journal_blocks} blocks is below jbd2's minimum of {MIN_JOURNAL_BLOCKS}"
    );
    let mut sb = JournalSuperblock::new_zeroed();
    sb.h_magic = JBD2_MAGIC_NUMBER.into();
    sb.h_blocktype = JBD2_SUPERBLOCK_V2.into();
    // s_blocksize: the filesystem's.
    sb.s_blocksize = BLOCK_SIZE.into();
    // s_maxlen: blocks in the journal, superblock included.
    sb.s_maxlen = journal_blocks.into();
    // s_first: the first block of log information, the one after the superblock.
    sb.s_first = 1.into();
    // s_sequence: the first commit ID expected in the log.
    sb.s_sequence = 1.into();
    // s_uuid: mke2fs copies the filesystem's UUID here.
    sb.s_uuid = *fs_uuid;
    // s_nr_users: one filesystem, an internal journal.
    sb.s_nr_users = 1.into();
    let mut block = Box::new([0u8; BLOCK_SIZE as usize]);
    block[..size_of::<JournalSuperblock>()].copy_from_slice(sb.as_bytes());
    block
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // fixtures: small, known values
mod tests {
    use super::*;
    use d2l_disk::bytes::FromBytes;

    #[test]
    fn default_size_table_edges() {
        assert_eq!(default_journal_blocks(0), None);
        assert_eq!(default_journal_blocks(2047), None);
        assert_eq!(default_journal_blocks(2048), Some(1024));
        assert_eq!(default_journal_blocks(32767), Some(1024));
        assert_eq!(default_journal_blocks(32768), Some(4096));
        assert_eq!(default_journal_blocks(262_143), Some(4096));
        assert_eq!(default_journal_blocks(262_144), Some(8192));
        assert_eq!(default_journal_blocks(524_288), Some(16384));
        assert_eq!(default_journal_blocks(4_194_304), Some(32768));
        assert_eq!(default_journal_blocks(8_388_608), Some(65536));
        assert_eq!(default_journal_blocks(16_777_216), Some(131_072));
        assert_eq!(default_journal_blocks(33_554_431), Some(131_072));
        assert_eq!(default_journal_blocks(33_554_432), Some(262_144));
        assert_eq!(default_journal_blocks(u64::from(u32::MAX)), Some(262_144));
    }

    #[test]
    fn superblock_fields() {
        let uuid: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
        let sb = journal_superblock(4096, &uuid);
        #[rustfmt::skip]
        let head: [u8; 0x50] = [
            0xC0, 0x3B, 0x39, 0x98, // h_magic
            0, 0, 0, 4,             // h_blocktype: v2 superblock
            0, 0, 0, 0,             // h_sequence
            0, 0, 0x10, 0,          // s_blocksize 4096
            0, 0, 0x10, 0,          // s_maxlen 4096
            0, 0, 0, 1,             // s_first
            0, 0, 0, 1,             // s_sequence
            0, 0, 0, 0,             // s_start: clean
            0, 0, 0, 0,             // s_errno
            0, 0, 0, 0,             // s_feature_compat
            0, 0, 0, 0,             // s_feature_incompat
            0, 0, 0, 0,             // s_feature_ro_compat
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, // s_uuid
            0, 0, 0, 1,             // s_nr_users
            0, 0, 0, 0,             // s_dynsuper
            0, 0, 0, 0,             // s_max_transaction
            0, 0, 0, 0,             // s_max_trans_data
        ];
        assert_eq!(sb[..0x50], head);
        let (read, _) = JournalSuperblock::read_from_prefix(&sb[..]).unwrap();
        assert_eq!(read.s_maxlen.get(), 4096);
        assert_eq!(read.s_uuid, uuid);
        assert!(
            sb[0x50..].iter().all(|&b| b == 0),
            "checksum type, fc blocks, checksum, users"
        );
    }

    #[test]
    #[should_panic(expected = "below jbd2's minimum")]
    fn superblock_refuses_a_tiny_journal() {
        journal_superblock(1023, &[0; 16]);
    }
}
