//! The 256-byte on-disk inode (ext4 docs, "Index Nodes") and its checksum.

use d2l_rootfs::Timestamp;

use d2l_disk::bytes::IntoBytes;

use crate::csum::ext4_chksum;
use crate::layout::{EXTRA_ISIZE, INODE_SIZE};
use crate::ondisk::InodeRaw;

// Values below: Documentation/filesystems/ext4/inodes.rst ("Index Nodes", i_flags).

/// `i_flags`: the inode uses extents.
pub(crate) const FLAG_EXTENTS: u32 = 0x0008_0000;
/// `i_flags`: the directory has an htree index.
pub(crate) const FLAG_INDEX: u32 = 0x0000_1000;
/// Offset of the in-inode xattr area: after the 128-byte base and `i_extra_isize` bytes.
pub(crate) const IBODY_XATTR_OFFSET: usize = std::mem::offset_of!(InodeRaw, i_xattrs);
const _: () = assert!(IBODY_XATTR_OFFSET == 128 + EXTRA_ISIZE as usize);
/// Earliest and latest second ext4's 32 bits plus 2 epoch bits can hold (the kernel's
/// EXT4_EXTRA_TIMESTAMP_MIN and _MAX).
const TIME_MIN: i64 = i32::MIN as i64;
const TIME_MAX: i64 = (1 << 34) - 1 + i32::MIN as i64;

/// Everything d2l puts in an inode.
#[derive(Debug, Clone)]
pub(crate) struct InodeFields {
    /// File type and permission bits.
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// atime, ctime, mtime and crtime.
    pub time: Timestamp,
    pub links: u16,
    /// 512-byte units (huge_file, without the per-inode HUGE_FILE flag).
    pub blocks_512: u64,
    pub flags: u32,
    /// `i_block`: extent tree root, fast symlink target or device numbers.
    pub block: [u8; 60],
    pub file_acl: u32,
    /// In-inode xattr area (bytes 160..256).
    pub ibody_xattrs: [u8; INODE_SIZE as usize - IBODY_XATTR_OFFSET],
}

impl Default for InodeFields {
    fn default() -> Self {
        InodeFields {
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            time: Timestamp::default(),
            links: 0,
            blocks_512: 0,
            flags: 0,
            block: [0; 60],
            file_acl: 0,
            ibody_xattrs: [0; INODE_SIZE as usize - IBODY_XATTR_OFFSET],
        }
    }
}

/// Seconds truncated to 32 bits, and the `_extra` word: 2 epoch bits (so times before 1970
/// and after 2038 survive) and the nanoseconds shifted left by 2.
fn encode_time(t: Timestamp) -> (u32, u32) {
    // ext4 holds 1901-12-13 .. 2446-05-10; like the kernel, clamp what is outside.
    let (seconds, nanoseconds) = if t.seconds < TIME_MIN {
        (TIME_MIN, 0)
    } else if t.seconds > TIME_MAX {
        (TIME_MAX, 0)
    } else {
        (t.seconds, t.nanoseconds)
    };
    let t = Timestamp {
        seconds,
        nanoseconds,
    };
    // The low 32 bits, as the kernel's ext4_encode_extra_time keeps them; the epoch bits
    // carry the rest (clamped above to 34 bits).
    #[allow(clippy::cast_possible_truncation)]
    let low = t.seconds as i32;
    #[allow(clippy::cast_possible_truncation)]
    let epoch = ((t.seconds - i64::from(low)) >> 32) as u32 & 0x3;
    (low as u32, epoch | (t.nanoseconds << 2))
}

/// Encodes inode number `ino` with its checksum (generation 0).
pub(crate) fn encode_inode(f: &InodeFields, ino: u32, fs_seed: u32) -> [u8; INODE_SIZE as usize] {
    let (secs, extra) = encode_time(f.time);
    // The 64-bit size and block count and the 32-bit ids are split into low and high
    // halves (inodes.rst): each cast below keeps the half it names.
    #[allow(clippy::cast_possible_truncation)]
    let mut raw = InodeRaw {
        i_mode: f.mode.into(),
        i_uid: (f.uid as u16).into(),
        i_size_lo: (f.size as u32).into(),
        i_atime: secs.into(),
        i_ctime: secs.into(),
        i_mtime: secs.into(),
        i_dtime: 0.into(),
        i_gid: (f.gid as u16).into(),
        i_links_count: f.links.into(),
        i_blocks_lo: (f.blocks_512 as u32).into(),
        i_flags: f.flags.into(),
        i_version: 0.into(),
        i_block: f.block,
        i_generation: 0.into(),
        i_file_acl_lo: f.file_acl.into(),
        i_size_high: ((f.size >> 32) as u32).into(),
        i_obso_faddr: 0.into(),
        l_i_blocks_high: ((f.blocks_512 >> 32) as u16).into(),
        l_i_file_acl_high: 0.into(),
        l_i_uid_high: ((f.uid >> 16) as u16).into(),
        l_i_gid_high: ((f.gid >> 16) as u16).into(),
        l_i_checksum_lo: 0.into(),
        l_i_reserved: 0.into(),
        i_extra_isize: EXTRA_ISIZE.into(),
        i_checksum_hi: 0.into(),
        i_ctime_extra: extra.into(),
        i_mtime_extra: extra.into(),
        i_atime_extra: extra.into(),
        i_crtime: secs.into(),
        i_crtime_extra: extra.into(),
        i_version_hi: 0.into(),
        i_projid: 0.into(),
        i_xattrs: f.ibody_xattrs,
    };
    // Checksum over the whole inode with both checksum fields zero, seeded per inode.
    let seed = crate::csum::inode_seed(fs_seed, ino, 0);
    let csum = ext4_chksum(seed, raw.as_bytes());
    #[allow(clippy::cast_possible_truncation)] // the two 16-bit halves of the crc32c
    {
        raw.l_i_checksum_lo = (csum as u16).into();
        raw.i_checksum_hi = ((csum >> 16) as u16).into();
    }
    let mut b = [0u8; INODE_SIZE as usize];
    b.copy_from_slice(raw.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_epoch_bits_and_nanoseconds() {
        assert_eq!(
            encode_time(Timestamp {
                seconds: 1,
                nanoseconds: 5
            }),
            (1, 5 << 2)
        );
        // Just before 1970: a negative 32-bit value, epoch bits 0.
        let (low, extra) = encode_time(Timestamp {
            seconds: -1,
            nanoseconds: 0,
        });
        assert_eq!(low, u32::MAX);
        assert_eq!(extra & 3, 0);
        // 2040: past i32::MAX, epoch bit 1.
        let (low, extra) = encode_time(Timestamp {
            seconds: 1 << 31,
            nanoseconds: 0,
        });
        assert_eq!(low, 1 << 31);
        assert_eq!(extra & 3, 1);
    }
}
