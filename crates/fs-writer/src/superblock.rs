//! The superblock and group descriptors (ext4 docs, "Super Block" and "Block Group
//! Descriptors"), with their metadata_csum checksums.

use crate::csum::ext4_chksum;
use crate::layout::{
    BLOCKS_PER_GROUP, EXTRA_ISIZE, FIRST_INO, GROUP_DESC_SIZE, INODE_SIZE, JOURNAL_INO,
    LOG_BLOCK_SIZE, LOG_GROUPS_PER_FLEX, SUPERBLOCK_SIZE,
};

/// `s_magic`.
const EXT4_MAGIC: u16 = 0xEF53;
/// `s_state`: cleanly unmounted.
const STATE_CLEAN: u16 = 1;
/// `s_errors`: continue on errors (mke2fs default).
const ERRORS_CONTINUE: u16 = 1;
/// `s_rev_level`: dynamic inode sizes.
const DYNAMIC_REV: u32 = 1;

/// `s_feature_compat` bits.
const COMPAT_HAS_JOURNAL: u32 = 0x4;
const COMPAT_EXT_ATTR: u32 = 0x8;
const COMPAT_RESIZE_INODE: u32 = 0x10;
const COMPAT_DIR_INDEX: u32 = 0x20;
/// `s_feature_incompat` bits.
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_FLEX_BG: u32 = 0x200;
/// `s_feature_ro_compat` bits.
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const RO_COMPAT_LARGE_FILE: u32 = 0x2;
const RO_COMPAT_HUGE_FILE: u32 = 0x8;
const RO_COMPAT_DIR_NLINK: u32 = 0x20;
const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

/// `s_def_hash_version`: half MD4.
const HASH_HALF_MD4: u8 = 1;
/// `s_flags`: directory hashes use signed chars (what mke2fs sets on x86).
const FLAGS_SIGNED_HASH: u32 = 0x1;
/// `s_default_mount_opts`: user_xattr and acl, as mke2fs.conf's default_mntopts.
const DEFM_XATTR_USER_ACL: u32 = 0x0004 | 0x0008;
/// `s_jnl_backup_type`: s_jnl_blocks holds a copy of the journal inode's i_block.
const JNL_BACKUP_BLOCKS: u8 = 1;
/// `s_checksum_type`: crc32c.
const CHECKSUM_CRC32C: u8 = 1;
/// Offset of `s_checksum`, the last field.
const CHECKSUM_OFFSET: usize = 0x3FC;

/// What the superblock says, beyond the fixed geometry constants.
#[derive(Debug, Clone)]
pub(crate) struct SuperblockFields {
    pub inodes_count: u32,
    pub blocks_count: u32,
    pub free_blocks: u32,
    pub free_inodes: u32,
    pub inodes_per_group: u32,
    pub reserved_gdt_blocks: u16,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub hash_seed: [u32; 4],
    /// Creation / write / check time.
    pub time: u32,
    /// The journal inode's `i_block`, then `i_size_high`, `i_size` (s_jnl_blocks).
    pub journal_backup: [u32; 17],
}

/// Encodes the superblock for the copy in `group` (its `s_block_group_nr`).
pub(crate) fn encode_superblock(f: &SuperblockFields, group: u16) -> [u8; SUPERBLOCK_SIZE] {
    let mut b = [0u8; SUPERBLOCK_SIZE];
    let mut put32 = |off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put32(0x00, f.inodes_count);
    put32(0x04, f.blocks_count);
    put32(0x08, 0); // s_r_blocks_count: no blocks reserved for root
    put32(0x0C, f.free_blocks);
    put32(0x10, f.free_inodes);
    put32(0x14, 0); // s_first_data_block: 0 with 4 KiB blocks
    put32(0x18, LOG_BLOCK_SIZE);
    put32(0x1C, LOG_BLOCK_SIZE); // s_log_cluster_size
    put32(0x20, BLOCKS_PER_GROUP);
    put32(0x24, BLOCKS_PER_GROUP); // s_clusters_per_group
    put32(0x28, f.inodes_per_group);
    put32(0x2C, 0); // s_mtime: never mounted
    put32(0x30, f.time); // s_wtime
    put32(0x40, f.time); // s_lastcheck
    put32(0x44, 0); // s_checkinterval
    put32(0x48, 0); // s_creator_os: Linux
    put32(0x4C, DYNAMIC_REV);
    put32(0x54, FIRST_INO);
    put32(
        0x5C,
        COMPAT_HAS_JOURNAL | COMPAT_EXT_ATTR | COMPAT_RESIZE_INODE | COMPAT_DIR_INDEX,
    );
    put32(
        0x60,
        INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_FLEX_BG,
    );
    put32(
        0x64,
        RO_COMPAT_SPARSE_SUPER
            | RO_COMPAT_LARGE_FILE
            | RO_COMPAT_HUGE_FILE
            | RO_COMPAT_DIR_NLINK
            | RO_COMPAT_EXTRA_ISIZE
            | RO_COMPAT_METADATA_CSUM,
    );
    put32(0xE0, JOURNAL_INO);
    for (i, word) in f.hash_seed.iter().enumerate() {
        put32(0xEC + 4 * i, *word);
    }
    put32(0x100, DEFM_XATTR_USER_ACL);
    put32(0x108, f.time); // s_mkfs_time
    for (i, word) in f.journal_backup.iter().enumerate() {
        put32(0x10C + 4 * i, *word);
    }
    put32(0x160, FLAGS_SIGNED_HASH);
    let mut put16 = |off: usize, v: u16| b[off..off + 2].copy_from_slice(&v.to_le_bytes());
    put16(0x34, 0); // s_mnt_count
    put16(0x36, 0xFFFF); // s_max_mnt_count = -1: no forced checks
    put16(0x38, EXT4_MAGIC);
    put16(0x3A, STATE_CLEAN);
    put16(0x3C, ERRORS_CONTINUE);
    put16(0x58, INODE_SIZE as u16);
    put16(0x5A, group);
    put16(0xCE, f.reserved_gdt_blocks);
    put16(0xFE, GROUP_DESC_SIZE as u16); // s_desc_size
    put16(0x15C, EXTRA_ISIZE); // s_min_extra_isize
    put16(0x15E, EXTRA_ISIZE); // s_want_extra_isize
    b[0x68..0x78].copy_from_slice(&f.uuid);
    b[0x78..0x88].copy_from_slice(&f.volume_name);
    b[0xFC] = HASH_HALF_MD4;
    b[0xFD] = JNL_BACKUP_BLOCKS;
    b[0x174] = LOG_GROUPS_PER_FLEX as u8;
    b[0x175] = CHECKSUM_CRC32C;
    let csum = ext4_chksum(!0, &b[..CHECKSUM_OFFSET]);
    b[CHECKSUM_OFFSET..].copy_from_slice(&csum.to_le_bytes());
    b
}

/// One group descriptor's contents.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GroupDesc {
    pub block_bitmap: u32,
    pub inode_bitmap: u32,
    pub inode_table: u32,
    pub free_blocks: u16,
    pub free_inodes: u16,
    pub used_dirs: u16,
    pub flags: u16,
    pub block_bitmap_csum: u16,
    pub inode_bitmap_csum: u16,
    pub itable_unused: u16,
}

/// `bg_flags`: the inode table is zeroed (d2l never leaves stale inodes: unwritten blocks of
/// the output read as zero).
pub(crate) const BG_INODE_ZEROED: u16 = 0x4;

/// Encodes a 32-byte group descriptor with its checksum: the low 16 bits of
/// `ext4_chksum(fs_seed, le32(group) + descriptor with bg_checksum zeroed)`.
pub(crate) fn encode_group_desc(d: &GroupDesc, group: u32, fs_seed: u32) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0x00..0x04].copy_from_slice(&d.block_bitmap.to_le_bytes());
    b[0x04..0x08].copy_from_slice(&d.inode_bitmap.to_le_bytes());
    b[0x08..0x0C].copy_from_slice(&d.inode_table.to_le_bytes());
    b[0x0C..0x0E].copy_from_slice(&d.free_blocks.to_le_bytes());
    b[0x0E..0x10].copy_from_slice(&d.free_inodes.to_le_bytes());
    b[0x10..0x12].copy_from_slice(&d.used_dirs.to_le_bytes());
    b[0x12..0x14].copy_from_slice(&d.flags.to_le_bytes());
    b[0x18..0x1A].copy_from_slice(&d.block_bitmap_csum.to_le_bytes());
    b[0x1A..0x1C].copy_from_slice(&d.inode_bitmap_csum.to_le_bytes());
    b[0x1C..0x1E].copy_from_slice(&d.itable_unused.to_le_bytes());
    let csum = ext4_chksum(ext4_chksum(fs_seed, &group.to_le_bytes()), &b);
    b[0x1E..0x20].copy_from_slice(&(csum as u16).to_le_bytes());
    b
}
