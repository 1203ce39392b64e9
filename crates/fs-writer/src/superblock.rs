//! The superblock and group descriptors (ext4 docs, "Super Block" and "Block Group
//! Descriptors"), with their metadata_csum checksums.

use std::mem::offset_of;

use d2l_disk::bytes::{FromZeros, IntoBytes};

use crate::csum::ext4_chksum;
use crate::layout::{
    BLOCKS_PER_GROUP, EXTRA_ISIZE, FIRST_INO, GROUP_DESC_SIZE, INODE_SIZE, JOURNAL_INO,
    LOG_BLOCK_SIZE, LOG_GROUPS_PER_FLEX, SUPERBLOCK_SIZE,
};
use crate::ondisk::{GroupDescRaw, Superblock};

// Values below: Documentation/filesystems/ext4/super.rst ("Super Block").

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
/// `s_max_mnt_count` = -1: no forced checks (mke2fs's default).
const MAX_MNT_COUNT_NONE: u16 = 0xFFFF;
/// `s_inode_size` (256 fits 16 bits).
#[allow(clippy::cast_possible_truncation)] // checked below
const INODE_SIZE_U16: u16 = INODE_SIZE as u16;
const _: () = assert!(INODE_SIZE <= u16::MAX as u32);
/// `s_desc_size` (32).
#[allow(clippy::cast_possible_truncation)] // checked below
const GROUP_DESC_SIZE_U16: u16 = GROUP_DESC_SIZE as u16;
const _: () = assert!(GROUP_DESC_SIZE <= u16::MAX as u32);
/// `s_log_groups_per_flex` (4).
#[allow(clippy::cast_possible_truncation)] // checked below
const LOG_GROUPS_PER_FLEX_U8: u8 = LOG_GROUPS_PER_FLEX as u8;
const _: () = assert!(LOG_GROUPS_PER_FLEX <= u8::MAX as u32);

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
    /// Whether there is a journal: not on a filesystem too small for jbd2's minimum, where
    /// mke2fs makes none either.
    pub has_journal: bool,
}

/// Encodes the superblock for the copy in `group` (its `s_block_group_nr`).
pub(crate) fn encode_superblock(f: &SuperblockFields, group: u16) -> [u8; SUPERBLOCK_SIZE] {
    let mut sb = Superblock::new_zeroed();
    sb.s_inodes_count = f.inodes_count.into();
    sb.s_blocks_count_lo = f.blocks_count.into();
    // s_r_blocks_count_lo 0: no blocks reserved for root.
    sb.s_free_blocks_count_lo = f.free_blocks.into();
    sb.s_free_inodes_count = f.free_inodes.into();
    // s_first_data_block 0: with 4 KiB blocks.
    sb.s_log_block_size = LOG_BLOCK_SIZE.into();
    sb.s_log_cluster_size = LOG_BLOCK_SIZE.into();
    sb.s_blocks_per_group = BLOCKS_PER_GROUP.into();
    sb.s_clusters_per_group = BLOCKS_PER_GROUP.into();
    sb.s_inodes_per_group = f.inodes_per_group.into();
    // s_mtime 0: never mounted; s_mnt_count 0.
    sb.s_wtime = f.time.into();
    sb.s_max_mnt_count = MAX_MNT_COUNT_NONE.into();
    sb.s_magic = EXT4_MAGIC.into();
    sb.s_state = STATE_CLEAN.into();
    sb.s_errors = ERRORS_CONTINUE.into();
    sb.s_lastcheck = f.time.into();
    // s_checkinterval 0; s_creator_os 0: Linux.
    sb.s_rev_level = DYNAMIC_REV.into();
    sb.s_first_ino = FIRST_INO.into();
    sb.s_inode_size = INODE_SIZE_U16.into();
    sb.s_block_group_nr = group.into();
    let journal = if f.has_journal { COMPAT_HAS_JOURNAL } else { 0 };
    sb.s_feature_compat =
        (journal | COMPAT_EXT_ATTR | COMPAT_RESIZE_INODE | COMPAT_DIR_INDEX).into();
    sb.s_feature_incompat = (INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_FLEX_BG).into();
    sb.s_feature_ro_compat = (RO_COMPAT_SPARSE_SUPER
        | RO_COMPAT_LARGE_FILE
        | RO_COMPAT_HUGE_FILE
        | RO_COMPAT_DIR_NLINK
        | RO_COMPAT_EXTRA_ISIZE
        | RO_COMPAT_METADATA_CSUM)
        .into();
    sb.s_uuid = f.uuid;
    sb.s_volume_name = f.volume_name;
    sb.s_reserved_gdt_blocks = f.reserved_gdt_blocks.into();
    if f.has_journal {
        sb.s_journal_inum = JOURNAL_INO.into();
    }
    sb.s_hash_seed = f.hash_seed.map(Into::into);
    sb.s_def_hash_version = HASH_HALF_MD4;
    if f.has_journal {
        sb.s_jnl_backup_type = JNL_BACKUP_BLOCKS;
    }
    sb.s_desc_size = GROUP_DESC_SIZE_U16.into();
    sb.s_default_mount_opts = DEFM_XATTR_USER_ACL.into();
    sb.s_mkfs_time = f.time.into();
    sb.s_jnl_blocks = f.journal_backup.map(Into::into);
    sb.s_min_extra_isize = EXTRA_ISIZE.into();
    sb.s_want_extra_isize = EXTRA_ISIZE.into();
    sb.s_flags = FLAGS_SIGNED_HASH.into();
    sb.s_log_groups_per_flex = LOG_GROUPS_PER_FLEX_U8;
    sb.s_checksum_type = CHECKSUM_CRC32C;
    let csum = ext4_chksum(!0, &sb.as_bytes()[..offset_of!(Superblock, s_checksum)]);
    sb.s_checksum = csum.into();
    let mut b = [0u8; SUPERBLOCK_SIZE];
    b.copy_from_slice(sb.as_bytes());
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
    let mut raw = GroupDescRaw {
        bg_block_bitmap_lo: d.block_bitmap.into(),
        bg_inode_bitmap_lo: d.inode_bitmap.into(),
        bg_inode_table_lo: d.inode_table.into(),
        bg_free_blocks_count_lo: d.free_blocks.into(),
        bg_free_inodes_count_lo: d.free_inodes.into(),
        bg_used_dirs_count_lo: d.used_dirs.into(),
        bg_flags: d.flags.into(),
        bg_block_bitmap_csum_lo: d.block_bitmap_csum.into(),
        bg_inode_bitmap_csum_lo: d.inode_bitmap_csum.into(),
        bg_itable_unused_lo: d.itable_unused.into(),
        ..GroupDescRaw::default()
    };
    let csum = ext4_chksum(ext4_chksum(fs_seed, &group.to_le_bytes()), raw.as_bytes());
    // The low 16 bits of the crc32c (group_descr.rst, bg_checksum).
    #[allow(clippy::cast_possible_truncation)] // the low 16 bits, masked
    let low = (csum & 0xFFFF) as u16;
    raw.bg_checksum = low.into();
    let mut b = [0u8; 32];
    b.copy_from_slice(raw.as_bytes());
    b
}
