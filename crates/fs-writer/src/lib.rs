//! Writes a rootfs [`Tree`] as an ext4 filesystem, in userspace.
//!
//! The filesystem has 4 KiB blocks, 256-byte inodes, a clean journal, extents, htree
//! directories, flex_bg, sparse_super, reserved GDT blocks for online growth and metadata
//! checksums; not 64bit, inline_data, meta_bg or other features the extlinux boot loader
//! cannot read. The output is sparse: blocks that hold nothing are never written, and only
//! file data that is live in the tree reaches it: written once by a [`DiskStore`] while the
//! layers are applied ([`write_ext4_placed`]), or copied from a spill file ([`write_ext4`]).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (tree, data): (d2l_rootfs::Tree, d2l_rootfs::SpillReader) = todo!();
//! let out = std::fs::File::create("rootfs.ext4")?;
//! let options = d2l_fs_writer::Ext4Options::deterministic(&[7; 32]);
//! let report = d2l_fs_writer::write_ext4(&tree, &data, &out, &options)?;
//! println!("{} bytes", report.size_bytes);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![warn(clippy::cast_possible_truncation)]

mod alloc;
mod csum;
mod data_space;
mod dir;
mod disk_store;
mod dx_hash;
mod error;
mod extent;
mod file_data;
mod geometry;
mod holes;
mod inode;
mod journal;
mod layout;
mod numbering;
mod ondisk;
mod resize;
mod sizing;
mod superblock;
mod writer;
mod xattr;

use d2l_rootfs::{SpillReader, Tree};

/// Encoders that the tests in `tests/` compare with e2fsprogs' output, byte for byte; not an
/// API (feature `internals`, on only for this crate's tests).
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::csum::fs_seed;
    pub use crate::journal::{default_journal_blocks, journal_superblock};
    pub use crate::ondisk::{XattrBlockHeader, XattrEntry, XattrIbodyHeader};
    pub use crate::resize::{
        reserved_gdt_blocks, resize_inode, ResizeInode, RESIZE_INODE_FLAGS, RESIZE_INODE_LINKS,
        RESIZE_INODE_MODE,
    };
    pub use crate::xattr::{
        block_hash, finish_block, place_xattrs, stored_name, XattrPlacement, IBODY_LEN,
        XATTR_BLOCK_LEN, XATTR_MAGIC,
    };
}

pub use dir::MAX_DIRECTORY_ENTRY_BYTES;
pub use disk_store::{DiskStore, PlacedData};
pub use error::{Error, Result};
pub use sizing::{
    MAX_DEVICE_MAJOR, MAX_DEVICE_MINOR, MAX_FILE_SIZE, MAX_HARD_LINKS, MAX_SYMLINK_TARGET,
};

use d2l_disk::VirtualDisk;

/// How big the filesystem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSpec {
    /// Content + metadata + free space of max(25% of the content, 512 MiB).
    Auto,
    /// Exactly this many bytes (an error if the content does not fit).
    Exact(u64),
    /// Content + metadata + this many bytes free.
    Extra(u64),
}

impl SizeSpec {
    /// Length of the output file for a filesystem of `fs_bytes`.
    fn file_len(self, fs_bytes: u64) -> u64 {
        match self {
            SizeSpec::Exact(bytes) => bytes,
            _ => fs_bytes,
        }
    }
}

impl std::str::FromStr for SizeSpec {
    type Err = String;

    /// `auto`, `4G`, `+2G`, `512M`, `100000K`, or plain bytes (binary units: K = 1024).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(SizeSpec::Auto);
        }
        let (extra, rest) = match s.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let split = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, unit) = rest.split_at(split);
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("invalid size {s:?}: expected auto, SIZE or +SIZE like 4G"))?;
        let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
            "" => 0,
            "K" => 10,
            "M" => 20,
            "G" => 30,
            "T" => 40,
            _ => return Err(format!("invalid size unit in {s:?}: use K, M, G or T")),
        };
        let bytes = number
            .checked_mul(1 << shift)
            .ok_or_else(|| format!("size {s:?} is too large"))?;
        Ok(if extra {
            SizeSpec::Extra(bytes)
        } else {
            SizeSpec::Exact(bytes)
        })
    }
}

/// Choices for the filesystem.
#[derive(Debug, Clone)]
pub struct Ext4Options {
    /// Size of the filesystem.
    pub size: SizeSpec,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
    /// Seed of the directory hash (htree).
    pub hash_seed: [u32; 4],
    /// Volume label (`s_volume_name`), NUL-padded.
    pub label: [u8; 16],
    /// Creation time recorded in the superblock (and on inodes d2l creates).
    pub timestamp: u32,
    /// Byte offset of the filesystem in the output file (a partition's start); 0 for a bare
    /// filesystem.
    pub offset: u64,
    /// Regular files (paths from the root, e.g. `boot/syslinux/ldlinux.sys`) to place in one
    /// contiguous run of blocks with no holes: boot code reads them by sector number. Their
    /// blocks are reported in [`Ext4Report::contiguous_files`].
    pub contiguous: Vec<Vec<u8>>,
}

impl Ext4Options {
    /// Options whose UUID and directory hash seed come from `digest` (the image's config
    /// digest: 32 uniformly distributed bytes), so the same image gives the same filesystem.
    pub fn deterministic(digest: &[u8; 32]) -> Ext4Options {
        let mut uuid: [u8; 16] = digest[..16].try_into().expect("16 bytes");
        // RFC 4122 version 4 layout, as mke2fs's random UUIDs.
        uuid[6] = (uuid[6] & 0x0f) | 0x40;
        uuid[8] = (uuid[8] & 0x3f) | 0x80;
        let mut hash_seed = [0u32; 4];
        for (i, word) in hash_seed.iter_mut().enumerate() {
            let at = 16 + i * 4;
            *word = u32::from_le_bytes(digest[at..at + 4].try_into().expect("4 bytes"));
        }
        Ext4Options {
            size: SizeSpec::Auto,
            uuid,
            hash_seed,
            label: [0; 16],
            timestamp: 0,
            offset: 0,
            contiguous: Vec::new(),
        }
    }
}

/// Parses a UUID in its usual text form (`01234567-89ab-cdef-0123-456789abcdef`).
pub fn parse_uuid(text: &str) -> std::result::Result<[u8; 16], String> {
    let hex: String = text.chars().filter(|&c| c != '-').collect();
    let groups: Vec<usize> = text.split('-').map(str::len).collect();
    if hex.len() != 32 || groups != [8, 4, 4, 4, 12] {
        return Err(format!(
            "invalid UUID {text:?}: expected 8-4-4-4-12 hex digits"
        ));
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16)
            .map_err(|_| format!("invalid UUID {text:?}: not hexadecimal"))?;
    }
    Ok(out)
}

/// The usual text form of a UUID (`01234567-89ab-cdef-0123-456789abcdef`).
pub fn format_uuid(uuid: &[u8; 16]) -> String {
    let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Ext4Report {
    /// Size of the filesystem in bytes.
    pub size_bytes: u64,
    /// Blocks in the filesystem.
    pub blocks_count: u32,
    /// Free blocks.
    pub free_blocks: u64,
    /// Inodes in the filesystem.
    pub inodes_count: u32,
    /// Inodes in use (the highest inode number).
    pub used_inodes: u32,
    /// Where each file of [`Ext4Options::contiguous`] went, in the same order.
    pub contiguous_files: Vec<ContiguousFile>,
}

/// A file placed in one run of blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContiguousFile {
    /// Its path, as asked for.
    pub path: Vec<u8>,
    /// Its inode number.
    pub ino: u32,
    /// First block (filesystem block number; block size 4096).
    pub first_block: u32,
    /// Number of blocks, covering the whole file.
    pub blocks: u32,
}

/// Writes `tree` (file data in `data`) as an ext4 filesystem into `out` from byte
/// [`Ext4Options::offset`] on. The range must read as zeros (a new disk): the disk is grown to
/// hold the filesystem and written sparsely. A raw image is a [`File`](std::fs::File).
pub fn write_ext4(
    tree: &Tree,
    data: &SpillReader,
    out: &dyn VirtualDisk,
    options: &Ext4Options,
) -> Result<Ext4Report> {
    writer::write(tree, file_data::FileSource::Spill(data), out, options)
}

/// Writes `tree` as an ext4 filesystem into `out` around the file data a [`DiskStore`] put
/// there (`data` is what it returned). Each byte of file data is then written once: most
/// files keep the blocks the store gave them; the others are copied within the disk.
/// [`Ext4Options::offset`] must be the store's `base`.
pub fn write_ext4_placed(
    tree: &Tree,
    data: &PlacedData,
    out: &dyn VirtualDisk,
    options: &Ext4Options,
) -> Result<Ext4Report> {
    if data.base != options.offset {
        return Err(Error::Internal(format!(
            "file data was placed for a filesystem at byte {}, not {}",
            data.base, options.offset
        )));
    }
    writer::write(tree, file_data::FileSource::Placed(data), out, options)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // fixtures: small, known values
mod tests {
    use super::*;

    #[test]
    fn size_specs() {
        assert_eq!("auto".parse(), Ok(SizeSpec::Auto));
        assert_eq!("4G".parse(), Ok(SizeSpec::Exact(4 << 30)));
        assert_eq!("+2G".parse(), Ok(SizeSpec::Extra(2 << 30)));
        assert_eq!("512MiB".parse(), Ok(SizeSpec::Exact(512 << 20)));
        assert_eq!("1000".parse(), Ok(SizeSpec::Exact(1000)));
        assert!("4X".parse::<SizeSpec>().is_err());
        assert!("G".parse::<SizeSpec>().is_err());
    }

    #[test]
    fn uuid_text_round_trips() {
        let text = "01234567-89ab-cdef-0123-456789abcdef";
        let uuid = parse_uuid(text).unwrap();
        assert_eq!(uuid[..3], [0x01, 0x23, 0x45]);
        assert_eq!(format_uuid(&uuid), text);
        assert!(parse_uuid("0123456789abcdef0123456789abcdef").is_err());
    }

    #[test]
    fn deterministic_identity() {
        let digest: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
        let a = Ext4Options::deterministic(&digest);
        assert_eq!(a.uuid[..6], digest[..6]);
        assert_eq!(a.uuid[6] >> 4, 4, "version 4");
        assert_eq!(a.uuid[8] >> 6, 2, "RFC 4122 variant");
        assert_eq!(a.hash_seed[0].to_le_bytes(), digest[16..20]);
        let mut other = digest;
        other[0] ^= 1;
        assert_ne!(Ext4Options::deterministic(&other).uuid, a.uuid);
    }
}
