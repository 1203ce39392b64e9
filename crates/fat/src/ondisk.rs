//! Every FAT on-disk structure d2l writes and reads, once: `#[repr(C)]` structs of
//! little-endian fields with their sizes pinned, and the constants of the format.
//!
//! Names and offsets follow Microsoft's "FAT: General Overview of On-Disk Format"
//! (fatgen103, version 1.03), sections named on each item.

use d2l_disk::bytes::{le, FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes per sector of every volume d2l writes (the only size all firmware reads).
pub(crate) const SECTOR_BYTES: u32 = 512;
/// Size of one directory entry, short or long ("FAT Directory Structure").
pub(crate) const DIR_ENTRY_BYTES: u32 = 32;
/// A directory holds at most 65536 entries: 2 MiB ("FAT Directory Structure").
pub(crate) const MAX_DIR_ENTRIES: u64 = 65536;

/// The boot sector's last two bytes ("Boot Sector and BPB Structure", offset 510).
pub(crate) const BOOT_SIGNATURE: [u8; 2] = [0x55, 0xAA];
/// `BS_jmpBoot` of FAT12/16: a short jump over the 62 bytes of BPB to the boot code.
pub(crate) const JUMP_FAT16: [u8; 3] = [0xEB, 0x3C, 0x90];
/// `BS_jmpBoot` of FAT32: a short jump over the 90 bytes of BPB.
pub(crate) const JUMP_FAT32: [u8; 3] = [0xEB, 0x58, 0x90];
/// `BS_OEMName`: fatgen103 recommends "MSWIN4.1" as the value drivers least often mistrust.
pub(crate) const OEM_NAME: [u8; 8] = *b"MSWIN4.1";
/// `BPB_Media` of a fixed (non-removable) disk; FAT[0]'s low byte repeats it.
pub(crate) const MEDIA_FIXED_DISK: u8 = 0xF8;
/// `BS_DrvNum` of a hard disk (INT 13h drive 0x80).
pub(crate) const DRIVE_NUMBER_HARD_DISK: u8 = 0x80;
/// `BS_BootSig`: the volume ID, label and type fields that follow are present.
pub(crate) const EXTENDED_BOOT_SIGNATURE: u8 = 0x29;
/// `BS_VolLab` of a volume without a label.
pub(crate) const NO_LABEL: [u8; 11] = *b"NO NAME    ";
/// `BS_FilSysType` (informational only: the cluster count decides the type).
pub(crate) const FS_TYPE_FAT16: [u8; 8] = *b"FAT16   ";
/// `BS_FilSysType` of FAT32.
pub(crate) const FS_TYPE_FAT32: [u8; 8] = *b"FAT32   ";
/// Hard disk geometry the BPB reports (`BPB_SecPerTrk`, `BPB_NumHeads`): the LBA-assist
/// translation every BIOS and mkfs.fat use; nothing reads it on an LBA disk.
pub(crate) const SECTORS_PER_TRACK: u16 = 63;
/// See [`SECTORS_PER_TRACK`].
pub(crate) const HEADS: u16 = 255;

/// `FSI_LeadSig` ("FAT32 FSInfo Sector Structure").
pub(crate) const FSINFO_LEAD_SIGNATURE: u32 = 0x4161_5252;
/// `FSI_StrucSig`.
pub(crate) const FSINFO_STRUCT_SIGNATURE: u32 = 0x6141_7272;
/// `FSI_TrailSig`.
pub(crate) const FSINFO_TRAIL_SIGNATURE: u32 = 0xAA55_0000;
/// `FSI_Nxt_Free` when there is no hint (a full volume).
pub(crate) const FSINFO_UNKNOWN: u32 = 0xFFFF_FFFF;

/// Fewer clusters than this is FAT12 ("FAT Type Determination").
pub(crate) const MIN_FAT16_CLUSTERS: u32 = 4085;
/// Fewer clusters than this is FAT16, at least this many FAT32.
pub(crate) const MIN_FAT32_CLUSTERS: u32 = 65525;
/// Cluster numbers above 0x0FFFFFF6 are reserved, bad or end of chain: a FAT32 volume has
/// at most 0x0FFFFFF5 clusters (numbered from 2).
pub(crate) const MAX_FAT32_CLUSTERS: u32 = 0x0FFF_FFF5;
/// The first data cluster; entries 0 and 1 of the FAT are reserved ("FAT Data Structure").
pub(crate) const FIRST_CLUSTER: u32 = 2;
/// FAT32 entries are 28 bits; the high four are reserved and kept as found.
pub(crate) const FAT32_ENTRY_MASK: u32 = 0x0FFF_FFFF;
/// End of chain as written (any value from 0xFFF8 / 0x0FFFFFF8 up reads as one).
pub(crate) const FAT16_END_OF_CHAIN: u32 = 0xFFFF;
/// See [`FAT16_END_OF_CHAIN`].
pub(crate) const FAT32_END_OF_CHAIN: u32 = 0x0FFF_FFFF;
/// The smallest end-of-chain value of FAT16.
pub(crate) const FAT16_MIN_END_OF_CHAIN: u32 = 0xFFF8;
/// The smallest end-of-chain value of FAT32.
pub(crate) const FAT32_MIN_END_OF_CHAIN: u32 = 0x0FFF_FFF8;
/// Bad-cluster mark of FAT16.
pub(crate) const FAT16_BAD_CLUSTER: u32 = 0xFFF7;
/// Bad-cluster mark of FAT32.
pub(crate) const FAT32_BAD_CLUSTER: u32 = 0x0FFF_FFF7;

/// `DIR_Attr` bits ("FAT 32 Byte Directory Entry Structure").
pub(crate) const ATTR_READ_ONLY: u8 = 0x01;
/// See [`ATTR_READ_ONLY`].
pub(crate) const ATTR_HIDDEN: u8 = 0x02;
/// See [`ATTR_READ_ONLY`].
pub(crate) const ATTR_SYSTEM: u8 = 0x04;
/// The volume label's entry in the root directory.
pub(crate) const ATTR_VOLUME_ID: u8 = 0x08;
/// See [`ATTR_READ_ONLY`].
pub(crate) const ATTR_DIRECTORY: u8 = 0x10;
/// Set on files as they are created, as every FAT driver does.
pub(crate) const ATTR_ARCHIVE: u8 = 0x20;
/// A long-name entry ("FAT Long Directory Entries").
pub(crate) const ATTR_LONG_NAME: u8 = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID;
/// The bits that tell a long-name entry from a short one.
pub(crate) const ATTR_LONG_NAME_MASK: u8 = ATTR_LONG_NAME | ATTR_DIRECTORY | ATTR_ARCHIVE;

/// `DIR_Name[0]` of a free entry after which no entry is in use.
pub(crate) const ENTRY_END: u8 = 0x00;
/// `DIR_Name[0]` of a deleted entry.
pub(crate) const ENTRY_DELETED: u8 = 0xE5;
/// `DIR_Name[0]` standing for a real 0xE5 first byte (a Kanji lead byte).
pub(crate) const ENTRY_KANJI_E5: u8 = 0x05;
/// `DIR_NTRes` bits Windows NT uses for an all-lower-case base name or extension.
pub(crate) const NT_LOWER_BASE: u8 = 0x08;
/// See [`NT_LOWER_BASE`].
pub(crate) const NT_LOWER_EXT: u8 = 0x10;
/// `LDIR_Ord` bit marking the last (first stored) entry of a long name.
pub(crate) const LFN_LAST: u8 = 0x40;
/// `LDIR_Ord` values are 1..=20: a long name is at most 255 UCS-2 characters.
pub(crate) const LFN_MAX_ORDER: u8 = 20;
/// UCS-2 characters per long-name entry (5 + 6 + 2).
pub(crate) const LFN_CHARS: usize = 13;
/// A long name's length limit, in UCS-2 characters.
pub(crate) const MAX_LONG_NAME: usize = 255;

/// The BIOS Parameter Block common to FAT12/16/32: bytes 0..36 of the boot sector
/// ("Boot Sector and BPB Structure").
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Bpb {
    pub bs_jmp_boot: [u8; 3],
    pub bs_oem_name: [u8; 8],
    pub bpb_byts_per_sec: le::U16,
    pub bpb_sec_per_clus: u8,
    pub bpb_rsvd_sec_cnt: le::U16,
    pub bpb_num_fats: u8,
    /// Entries of the fixed root directory (FAT12/16); 0 on FAT32.
    pub bpb_root_ent_cnt: le::U16,
    /// Total sectors when below 65536, else 0 and `bpb_tot_sec32` holds it.
    pub bpb_tot_sec16: le::U16,
    pub bpb_media: u8,
    /// Sectors per FAT on FAT12/16; 0 on FAT32.
    pub bpb_fat_sz16: le::U16,
    pub bpb_sec_per_trk: le::U16,
    pub bpb_num_heads: le::U16,
    /// Sectors before the volume on the disk: the partition's start LBA.
    pub bpb_hidd_sec: le::U32,
    pub bpb_tot_sec32: le::U32,
}
const _: () = assert!(size_of::<Bpb>() == 36);

/// The fields after the BPB that FAT16 and FAT32 share, at offset 36 and 64 respectively
/// (`BS_DrvNum` .. `BS_FilSysType`).
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct ExtendedBootRecord {
    pub bs_drv_num: u8,
    pub bs_reserved1: u8,
    pub bs_boot_sig: u8,
    pub bs_vol_id: le::U32,
    pub bs_vol_lab: [u8; 11],
    pub bs_fil_sys_type: [u8; 8],
}
const _: () = assert!(size_of::<ExtendedBootRecord>() == 26);

/// The boot sector of FAT12/16 ("Fat12 and Fat16 Structure Starting at Offset 36").
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct BootSector16 {
    pub bpb: Bpb,
    pub ext: ExtendedBootRecord,
    /// Zero: the volume is never booted through its boot sector (UEFI reads files).
    pub boot_code: [u8; 448],
    pub signature: [u8; 2],
}
const _: () = assert!(size_of::<BootSector16>() == 512);
const _: () = assert!(std::mem::offset_of!(BootSector16, boot_code) == 0x3E);

/// The boot sector of FAT32 ("FAT32 Structure Starting at Offset 36").
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct BootSector32 {
    pub bpb: Bpb,
    pub bpb_fat_sz32: le::U32,
    /// 0: the FATs are mirrored at runtime.
    pub bpb_ext_flags: le::U16,
    /// Version 0.0, the only one.
    pub bpb_fs_ver: le::U16,
    pub bpb_root_clus: le::U32,
    pub bpb_fs_info: le::U16,
    pub bpb_bk_boot_sec: le::U16,
    pub bpb_reserved: [u8; 12],
    pub ext: ExtendedBootRecord,
    /// Zero, as on FAT16.
    pub boot_code: [u8; 420],
    pub signature: [u8; 2],
}
const _: () = assert!(size_of::<BootSector32>() == 512);
const _: () = assert!(std::mem::offset_of!(BootSector32, ext) == 64);
const _: () = assert!(std::mem::offset_of!(BootSector32, boot_code) == 0x5A);

/// The FAT32 FSInfo sector ("FAT32 FSInfo Sector Structure and Backup Boot Sector").
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct FsInfo {
    pub fsi_lead_sig: le::U32,
    pub fsi_reserved1: [u8; 480],
    pub fsi_struc_sig: le::U32,
    /// Free clusters, or 0xFFFFFFFF when unknown.
    pub fsi_free_count: le::U32,
    /// Where to start looking for a free cluster, or 0xFFFFFFFF.
    pub fsi_nxt_free: le::U32,
    pub fsi_reserved2: [u8; 12],
    pub fsi_trail_sig: le::U32,
}
const _: () = assert!(size_of::<FsInfo>() == 512);
const _: () = assert!(std::mem::offset_of!(FsInfo, fsi_free_count) == 488);

/// A short directory entry ("FAT 32 Byte Directory Entry Structure").
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct DirEntry {
    /// Base name (8) and extension (3), space padded, upper case.
    pub dir_name: [u8; 11],
    pub dir_attr: u8,
    /// Windows NT's lower-case flags ([`NT_LOWER_BASE`], [`NT_LOWER_EXT`]).
    pub dir_nt_res: u8,
    /// Hundredths of a second (0..=199) past `dir_crt_time`, whose unit is 2 seconds
    /// (fatgen103 names the field after tenths; Linux and Windows read hundredths).
    pub dir_crt_time_tenth: u8,
    pub dir_crt_time: le::U16,
    pub dir_crt_date: le::U16,
    pub dir_lst_acc_date: le::U16,
    pub dir_fst_clus_hi: le::U16,
    pub dir_wrt_time: le::U16,
    pub dir_wrt_date: le::U16,
    pub dir_fst_clus_lo: le::U16,
    pub dir_file_size: le::U32,
}
const _: () = assert!(size_of::<DirEntry>() == DIR_ENTRY_BYTES as usize);

/// One piece of a long name: 13 UCS-2 characters ("FAT Long Directory Entries").
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct LfnEntry {
    /// Position of the piece (1-based), with [`LFN_LAST`] on the last one.
    pub ldir_ord: u8,
    pub ldir_name1: [le::U16; 5],
    /// Always [`ATTR_LONG_NAME`].
    pub ldir_attr: u8,
    /// 0: a piece of a long name.
    pub ldir_type: u8,
    /// Checksum of the short name the long name belongs to.
    pub ldir_chksum: u8,
    pub ldir_name2: [le::U16; 6],
    /// Always 0.
    pub ldir_fst_clus_lo: le::U16,
    pub ldir_name3: [le::U16; 2],
}
const _: () = assert!(size_of::<LfnEntry>() == DIR_ENTRY_BYTES as usize);
