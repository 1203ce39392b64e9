//! Every ext4 on-disk structure d2l writes, once: `#[repr(C)]` structs of little-endian
//! fields (big-endian for the jbd2 journal), with their sizes pinned. The encoders fill them;
//! the tests that decode what was written read them back with the same definitions.
//!
//! Field names and offsets are the kernel's (Documentation/filesystems/ext4/*.rst, sections
//! named on each struct; `fs/ext4/ext4.h`, `ext4_extents.h`, `include/linux/jbd2.h`).

use d2l_disk::bytes::{be, le, FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `struct ext4_super_block` (super.rst, "Super Block"). Fields d2l does not use are kept as
/// reserved bytes past `s_kbytes_written`.
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Superblock {
    pub s_inodes_count: le::U32,
    pub s_blocks_count_lo: le::U32,
    pub s_r_blocks_count_lo: le::U32,
    pub s_free_blocks_count_lo: le::U32,
    pub s_free_inodes_count: le::U32,
    pub s_first_data_block: le::U32,
    pub s_log_block_size: le::U32,
    pub s_log_cluster_size: le::U32,
    pub s_blocks_per_group: le::U32,
    pub s_clusters_per_group: le::U32,
    pub s_inodes_per_group: le::U32,
    pub s_mtime: le::U32,
    pub s_wtime: le::U32,
    pub s_mnt_count: le::U16,
    pub s_max_mnt_count: le::U16,
    pub s_magic: le::U16,
    pub s_state: le::U16,
    pub s_errors: le::U16,
    pub s_minor_rev_level: le::U16,
    pub s_lastcheck: le::U32,
    pub s_checkinterval: le::U32,
    pub s_creator_os: le::U32,
    pub s_rev_level: le::U32,
    pub s_def_resuid: le::U16,
    pub s_def_resgid: le::U16,
    pub s_first_ino: le::U32,
    pub s_inode_size: le::U16,
    pub s_block_group_nr: le::U16,
    pub s_feature_compat: le::U32,
    pub s_feature_incompat: le::U32,
    pub s_feature_ro_compat: le::U32,
    pub s_uuid: [u8; 16],
    pub s_volume_name: [u8; 16],
    pub s_last_mounted: [u8; 64],
    pub s_algorithm_usage_bitmap: le::U32,
    pub s_prealloc_blocks: u8,
    pub s_prealloc_dir_blocks: u8,
    pub s_reserved_gdt_blocks: le::U16,
    pub s_journal_uuid: [u8; 16],
    pub s_journal_inum: le::U32,
    pub s_journal_dev: le::U32,
    pub s_last_orphan: le::U32,
    pub s_hash_seed: [le::U32; 4],
    pub s_def_hash_version: u8,
    pub s_jnl_backup_type: u8,
    pub s_desc_size: le::U16,
    pub s_default_mount_opts: le::U32,
    pub s_first_meta_bg: le::U32,
    pub s_mkfs_time: le::U32,
    pub s_jnl_blocks: [le::U32; 17],
    pub s_blocks_count_hi: le::U32,
    pub s_r_blocks_count_hi: le::U32,
    pub s_free_blocks_count_hi: le::U32,
    pub s_min_extra_isize: le::U16,
    pub s_want_extra_isize: le::U16,
    pub s_flags: le::U32,
    pub s_raid_stride: le::U16,
    pub s_mmp_interval: le::U16,
    pub s_mmp_block: le::U64,
    pub s_raid_stripe_width: le::U32,
    pub s_log_groups_per_flex: u8,
    pub s_checksum_type: u8,
    pub s_reserved_pad: le::U16,
    pub s_kbytes_written: le::U64,
    /// `s_snapshot_inum` .. `s_reserved`: all zero in what d2l writes.
    pub s_rest: [u8; 0x3FC - 0x180],
    /// crc32c of the bytes before it.
    pub s_checksum: le::U32,
}
const _: () = assert!(size_of::<Superblock>() == 1024);
const _: () = assert!(std::mem::offset_of!(Superblock, s_reserved_gdt_blocks) == 0xCE);
const _: () = assert!(std::mem::offset_of!(Superblock, s_jnl_blocks) == 0x10C);
const _: () = assert!(std::mem::offset_of!(Superblock, s_log_groups_per_flex) == 0x174);

/// `struct ext4_group_desc` without the 64bit feature (group_descr.rst, "Block Group
/// Descriptors"): 32 bytes.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct GroupDescRaw {
    pub bg_block_bitmap_lo: le::U32,
    pub bg_inode_bitmap_lo: le::U32,
    pub bg_inode_table_lo: le::U32,
    pub bg_free_blocks_count_lo: le::U16,
    pub bg_free_inodes_count_lo: le::U16,
    pub bg_used_dirs_count_lo: le::U16,
    pub bg_flags: le::U16,
    pub bg_exclude_bitmap_lo: le::U32,
    pub bg_block_bitmap_csum_lo: le::U16,
    pub bg_inode_bitmap_csum_lo: le::U16,
    pub bg_itable_unused_lo: le::U16,
    pub bg_checksum: le::U16,
}
const _: () = assert!(size_of::<GroupDescRaw>() == 32);

/// `struct ext4_inode` (inodes.rst, "Index Nodes") with `i_extra_isize` = 32 and the
/// in-inode xattr area after it: 256 bytes.
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct InodeRaw {
    pub i_mode: le::U16,
    pub i_uid: le::U16,
    pub i_size_lo: le::U32,
    pub i_atime: le::U32,
    pub i_ctime: le::U32,
    pub i_mtime: le::U32,
    pub i_dtime: le::U32,
    pub i_gid: le::U16,
    pub i_links_count: le::U16,
    pub i_blocks_lo: le::U32,
    pub i_flags: le::U32,
    pub i_version: le::U32,
    /// Extent tree root, fast symlink target or device numbers.
    pub i_block: [u8; 60],
    pub i_generation: le::U32,
    pub i_file_acl_lo: le::U32,
    pub i_size_high: le::U32,
    pub i_obso_faddr: le::U32,
    pub l_i_blocks_high: le::U16,
    pub l_i_file_acl_high: le::U16,
    pub l_i_uid_high: le::U16,
    pub l_i_gid_high: le::U16,
    pub l_i_checksum_lo: le::U16,
    pub l_i_reserved: le::U16,
    pub i_extra_isize: le::U16,
    pub i_checksum_hi: le::U16,
    pub i_ctime_extra: le::U32,
    pub i_mtime_extra: le::U32,
    pub i_atime_extra: le::U32,
    pub i_crtime: le::U32,
    pub i_crtime_extra: le::U32,
    pub i_version_hi: le::U32,
    pub i_projid: le::U32,
    /// In-inode extended attributes ("Extended Attributes", "Inline Data" area).
    pub i_xattrs: [u8; 96],
}
const _: () = assert!(size_of::<InodeRaw>() == 256);
const _: () = assert!(std::mem::offset_of!(InodeRaw, l_i_checksum_lo) == 0x7C);
const _: () = assert!(std::mem::offset_of!(InodeRaw, i_xattrs) == 128 + 32);

/// `struct ext4_extent_header` (ifork.rst, "Extent Tree").
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct ExtentHeader {
    pub eh_magic: le::U16,
    pub eh_entries: le::U16,
    pub eh_max: le::U16,
    pub eh_depth: le::U16,
    pub eh_generation: le::U32,
}
const _: () = assert!(size_of::<ExtentHeader>() == 12);

/// `struct ext4_extent_idx`: an interior node's entry.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct ExtentIdx {
    pub ei_block: le::U32,
    pub ei_leaf_lo: le::U32,
    pub ei_leaf_hi: le::U16,
    pub ei_unused: le::U16,
}
const _: () = assert!(size_of::<ExtentIdx>() == 12);

/// `struct ext4_extent`: a leaf's entry.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct ExtentLeaf {
    pub ee_block: le::U32,
    pub ee_len: le::U16,
    pub ee_start_hi: le::U16,
    pub ee_start_lo: le::U32,
}
const _: () = assert!(size_of::<ExtentLeaf>() == 12);

/// `struct ext4_dir_entry_2`'s header (directory.rst, "Linear (Classic) Directories"); the
/// name follows.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct DirEntryHeader {
    pub inode: le::U32,
    pub rec_len: le::U16,
    pub name_len: u8,
    pub file_type: u8,
}
const _: () = assert!(size_of::<DirEntryHeader>() == 8);

/// `struct ext4_dir_entry_tail`: the checksum entry ending every leaf block.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct DirEntryTail {
    pub det_reserved_zero1: le::U32,
    pub det_rec_len: le::U16,
    pub det_reserved_zero2: u8,
    pub det_reserved_ft: u8,
    pub det_checksum: le::U32,
}
const _: () = assert!(size_of::<DirEntryTail>() == 12);

/// `struct dx_root_info` (directory.rst, "Hash Tree Directories"), after the root's fake
/// `.` and `..`.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct DxRootInfo {
    pub reserved_zero: le::U32,
    pub hash_version: u8,
    pub info_length: u8,
    pub indirect_levels: u8,
    pub unused_flags: u8,
}
const _: () = assert!(size_of::<DxRootInfo>() == 8);

/// `struct dx_countlimit`: in the hash slot of an index block's first `dx_entry`.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct DxCountLimit {
    pub limit: le::U16,
    pub count: le::U16,
}
const _: () = assert!(size_of::<DxCountLimit>() == 4);

/// `struct dx_entry`: a hash and the logical block of the leaf or node it starts.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct DxEntry {
    pub hash: le::U32,
    pub block: le::U32,
}
const _: () = assert!(size_of::<DxEntry>() == 8);

/// `struct dx_tail`: after an index block's `limit` entries (metadata_csum).
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct DxTail {
    pub dt_reserved: le::U32,
    pub dt_checksum: le::U32,
}
const _: () = assert!(size_of::<DxTail>() == 8);

/// `struct ext4_xattr_header` (attributes.rst, "Extended Attributes": the header of an
/// external xattr block).
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
#[allow(missing_docs)] // the kernel's field names
pub struct XattrBlockHeader {
    pub h_magic: le::U32,
    pub h_refcount: le::U32,
    pub h_blocks: le::U32,
    pub h_hash: le::U32,
    pub h_checksum: le::U32,
    pub h_reserved: [le::U32; 3],
}
const _: () = assert!(size_of::<XattrBlockHeader>() == 32);

/// `struct ext4_xattr_ibody_header`: the magic before the in-inode entries.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
#[allow(missing_docs)] // the kernel's field names
pub struct XattrIbodyHeader {
    pub h_magic: le::U32,
}
const _: () = assert!(size_of::<XattrIbodyHeader>() == 4);

/// `struct ext4_xattr_entry`; the name follows, padded to 4 bytes.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
#[allow(missing_docs)] // the kernel's field names
pub struct XattrEntry {
    pub e_name_len: u8,
    pub e_name_index: u8,
    pub e_value_offs: le::U16,
    pub e_value_inum: le::U32,
    pub e_value_size: le::U32,
    pub e_hash: le::U32,
}
const _: () = assert!(size_of::<XattrEntry>() == 16);

/// `journal_superblock_t`, version 2 (journal.rst, "Super Block"; `include/linux/jbd2.h`):
/// big-endian, 1024 bytes.
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct JournalSuperblock {
    pub h_magic: be::U32,
    pub h_blocktype: be::U32,
    pub h_sequence: be::U32,
    pub s_blocksize: be::U32,
    pub s_maxlen: be::U32,
    pub s_first: be::U32,
    pub s_sequence: be::U32,
    pub s_start: be::U32,
    pub s_errno: be::U32,
    pub s_feature_compat: be::U32,
    pub s_feature_incompat: be::U32,
    pub s_feature_ro_compat: be::U32,
    pub s_uuid: [u8; 16],
    pub s_nr_users: be::U32,
    pub s_dynsuper: be::U32,
    pub s_max_transaction: be::U32,
    pub s_max_trans_data: be::U32,
    pub s_checksum_type: u8,
    pub s_padding2: [u8; 3],
    pub s_num_fc_blks: be::U32,
    pub s_head: be::U32,
    pub s_padding: [be::U32; 40],
    pub s_checksum: be::U32,
    /// Ids of the filesystems sharing the journal (16 bytes each).
    pub s_users: [u8; 16 * 48],
}
const _: () = assert!(size_of::<JournalSuperblock>() == 1024);
const _: () = assert!(std::mem::offset_of!(JournalSuperblock, s_users) == 0x100);
