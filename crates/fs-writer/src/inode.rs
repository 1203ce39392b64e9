//! The 256-byte on-disk inode (ext4 docs, "Index Nodes") and its checksum.

use d2l_rootfs::Timestamp;

use crate::csum::ext4_chksum;
use crate::layout::{EXTRA_ISIZE, INODE_SIZE};

/// `i_flags`: the inode uses extents.
pub(crate) const FLAG_EXTENTS: u32 = 0x0008_0000;
/// `i_flags`: the directory has an htree index.
pub(crate) const FLAG_INDEX: u32 = 0x0000_1000;
/// Offset of the in-inode xattr area: after the 128-byte base and `i_extra_isize` bytes.
pub(crate) const IBODY_XATTR_OFFSET: usize = 128 + EXTRA_ISIZE as usize;
/// Earliest and latest second ext4's 32 bits plus 2 epoch bits can hold (the kernel's
/// EXT4_EXTRA_TIMESTAMP_MIN and _MAX).
const TIME_MIN: i64 = i32::MIN as i64;
const TIME_MAX: i64 = (1 << 34) - 1 + i32::MIN as i64;
/// Offsets of the two checksum halves.
const CHECKSUM_LO: usize = 0x7C;
const CHECKSUM_HI: usize = 0x82;

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
    let low = t.seconds as i32;
    let epoch = ((t.seconds - i64::from(low)) >> 32) as u32 & 0x3;
    (low as u32, epoch | (t.nanoseconds << 2))
}

/// Encodes inode number `ino` with its checksum (generation 0).
pub(crate) fn encode_inode(f: &InodeFields, ino: u32, fs_seed: u32) -> [u8; INODE_SIZE as usize] {
    let mut b = [0u8; INODE_SIZE as usize];
    let (secs, extra) = encode_time(f.time);
    let put16 =
        |b: &mut [u8], off: usize, v: u16| b[off..off + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |b: &mut [u8], off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put16(&mut b, 0x00, f.mode);
    put16(&mut b, 0x02, f.uid as u16);
    put32(&mut b, 0x04, f.size as u32);
    put32(&mut b, 0x08, secs); // atime
    put32(&mut b, 0x0C, secs); // ctime
    put32(&mut b, 0x10, secs); // mtime
    put16(&mut b, 0x18, f.gid as u16);
    put16(&mut b, 0x1A, f.links);
    put32(&mut b, 0x1C, f.blocks_512 as u32);
    put32(&mut b, 0x20, f.flags);
    b[0x28..0x64].copy_from_slice(&f.block);
    put32(&mut b, 0x68, f.file_acl);
    put32(&mut b, 0x6C, (f.size >> 32) as u32);
    put16(&mut b, 0x74, (f.blocks_512 >> 32) as u16);
    put16(&mut b, 0x78, (f.uid >> 16) as u16);
    put16(&mut b, 0x7A, (f.gid >> 16) as u16);
    put16(&mut b, 0x80, EXTRA_ISIZE);
    put32(&mut b, 0x84, extra); // ctime_extra
    put32(&mut b, 0x88, extra); // mtime_extra
    put32(&mut b, 0x8C, extra); // atime_extra
    put32(&mut b, 0x90, secs); // crtime
    put32(&mut b, 0x94, extra); // crtime_extra
    b[IBODY_XATTR_OFFSET..].copy_from_slice(&f.ibody_xattrs);
    // Checksum over the whole inode with both checksum fields zero, seeded per inode.
    let seed = crate::csum::inode_seed(fs_seed, ino, 0);
    let csum = ext4_chksum(seed, &b);
    put16(&mut b, CHECKSUM_LO, csum as u16);
    put16(&mut b, CHECKSUM_HI, (csum >> 16) as u16);
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
