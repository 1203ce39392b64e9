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
    pub use crate::csum::{fs_seed, inode_seed};
    pub use crate::dir::test_reader;
    pub use crate::dir::{
        build_directory, directory_block_count, empty_directory_blocks, fits_linear, rec_len,
        DirBlocks, DirEntryIn, HashParams, HtreeShape, TooManyEntries,
    };
    pub use crate::dx_hash::half_md4_hash;
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

/// The accepted forms of a size, for error messages and help.
pub const SIZE_FORMS: &str =
    "digits with an optional unit K, M, G or T (1024-based, optionally followed by iB or B, any case), e.g. 4G, 512MiB, 100000K, 1073741824";

/// A number of bytes written as text: ASCII digits with an optional binary unit.
///
/// The grammar, exactly: one or more ASCII digits `0`-`9` (no sign, no spaces, no decimal
/// point), then nothing (bytes) or one of `K`, `M`, `G`, `T` (2^10, 2^20, 2^30, 2^40 bytes),
/// which may be followed by `iB` or `B`; letters in any case (`4g`, `4GiB`, `4gb` are all
/// 4 GiB). A value that does not fit in 64 bits is an error, as is anything after the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// Why a size, or a UUID, could not be parsed: the text, what is wrong, what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {text:?}: {reason}; expected {expected}")]
pub struct ParseError {
    /// What was being parsed ("size", "UUID").
    pub what: &'static str,
    /// The text given (in Rust's debug quoting, so control characters are visible).
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
    /// The accepted forms.
    pub expected: &'static str,
}

impl ParseError {
    fn size(text: &str, reason: impl Into<String>) -> Self {
        ParseError {
            what: "size",
            text: text.to_owned(),
            reason: reason.into(),
            expected: SIZE_FORMS,
        }
    }

    fn uuid(text: &str, reason: impl Into<String>) -> Self {
        ParseError {
            what: "UUID",
            text: text.to_owned(),
            reason: reason.into(),
            expected: UUID_FORMS,
        }
    }
}

impl std::str::FromStr for ByteSize {
    type Err = ParseError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        if digits.is_empty() {
            let reason = match s.chars().next() {
                None => "empty".to_owned(),
                Some(c @ ('+' | '-')) => format!("a sign ({c:?}) is not allowed"),
                Some(c) => format!("does not start with a digit ({c:?})"),
            };
            return Err(ParseError::size(s, reason));
        }
        let shift = match unit.to_ascii_uppercase().as_str() {
            "" => 0,
            "K" | "KB" | "KIB" => 10,
            "M" | "MB" | "MIB" => 20,
            "G" | "GB" | "GIB" => 30,
            "T" | "TB" | "TIB" => 40,
            _ => return Err(ParseError::size(s, format!("unknown unit {unit:?}"))),
        };
        let too_large = || ParseError::size(s, "too large (at most 2^64 - 1 bytes)");
        let number: u64 = digits.parse().map_err(|_| too_large())?;
        number
            .checked_mul(1 << shift)
            .map(ByteSize)
            .ok_or_else(too_large)
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.0)?;
        if self.0 >= 1 << 20 {
            write!(f, " ({} MiB)", self.0.div_ceil(1 << 20))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for SizeSpec {
    type Err = ParseError;

    /// `auto`, `+` and a [`ByteSize`] (free space on top of the content), or a [`ByteSize`]
    /// (exactly).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(SizeSpec::Auto);
        }
        let with_forms = |mut e: ParseError| {
            e.text = s.to_owned();
            e.expected = "auto, SIZE or +SIZE (free space), SIZE being digits with an optional unit K, M, G or T (1024-based, optionally followed by iB or B), e.g. 4G, +2G, 512MiB";
            e
        };
        match s.strip_prefix('+') {
            Some(rest) => rest.parse().map(|ByteSize(b)| SizeSpec::Extra(b)),
            None => s.parse().map(|ByteSize(b)| SizeSpec::Exact(b)),
        }
        .map_err(with_forms)
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

/// The accepted forms of a UUID, for error messages and help.
pub const UUID_FORMS: &str =
    "32 hexadecimal digits, plain or as 8-4-4-4-12 with hyphens (01234567-89ab-cdef-0123-456789abcdef)";

/// Parses a UUID: 36 ASCII characters `8-4-4-4-12` (hexadecimal digits in groups of 8, 4, 4,
/// 4 and 12, separated by hyphens), or the 32 hexadecimal digits alone. Digits in any case;
/// nothing else (no signs, spaces, braces or `urn:uuid:`).
pub fn parse_uuid(text: &str) -> std::result::Result<[u8; 16], ParseError> {
    if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
        return Err(ParseError::uuid(text, format!("{c:?} is not ASCII")));
    }
    let bytes = text.as_bytes();
    let hex: Vec<u8> = match bytes.len() {
        32 => bytes.to_vec(),
        36 => {
            let hyphens = [8, 13, 18, 23];
            if let Some(at) = hyphens.into_iter().find(|&i| bytes[i] != b'-') {
                return Err(ParseError::uuid(
                    text,
                    format!("character {} should be '-'", at + 1),
                ));
            }
            (0..36)
                .filter(|i| !hyphens.contains(i))
                .map(|i| bytes[i])
                .collect()
        }
        n => return Err(ParseError::uuid(text, format!("{n} characters"))),
    };
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(ParseError::uuid(
            text,
            format!("{:?} is not a hexadecimal digit", char::from(b)),
        )),
    };
    let mut out = [0u8; 16];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
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
        for bad in [
            "", "+", "++2G", "-2G", "+-2G", "4X", "G", " 4G", "4G ", "auto ",
        ] {
            let e = bad.parse::<SizeSpec>().unwrap_err();
            assert!(e.to_string().contains("+SIZE"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn byte_sizes() {
        let ok = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(ok("0"), Ok(0));
        assert_eq!(ok("1k"), Ok(1024));
        assert_eq!(ok("1KB"), Ok(1024));
        assert_eq!(ok("2kib"), Ok(2048));
        assert_eq!(ok("3M"), Ok(3 << 20));
        assert_eq!(ok("3GiB"), Ok(3 << 30));
        assert_eq!(ok("5T"), Ok(5 << 40));
        assert_eq!(ok("0004K"), Ok(4096));
        assert_eq!(ok("18446744073709551615"), Ok(u64::MAX));
        let err = |s: &str| s.parse::<ByteSize>().unwrap_err().to_string();
        assert!(err("").contains("empty"), "{}", err(""));
        assert!(err("+4G").contains("sign"));
        assert!(err("-4G").contains("sign"));
        assert!(err("18446744073709551616").contains("too large"));
        assert!(err("99999999999999999999999999G").contains("too large"));
        assert!(err("16777216T").contains("too large"), "2^64 exactly");
        assert!(err("4IIII").contains("unknown unit \"IIII\""));
        assert!(err("4GiBs").contains("unknown unit"));
        assert!(err("4 G").contains("unknown unit"));
        assert!(err("4.5G").contains("unknown unit"));
        assert!(err("4B").contains("unknown unit"), "B alone is not a unit");
        assert!(err("4iB").contains("unknown unit"));
        assert!(err("4G\n").contains("unknown unit"));
        assert!(
            err("４G").contains("does not start with a digit"),
            "fullwidth digit"
        );
        assert!(err("4Ｇ").contains("unknown unit"));
        assert!(
            err("٣G").contains("does not start with a digit"),
            "Arabic-Indic digit"
        );
        assert!(err("x").contains(SIZE_FORMS));
    }

    #[test]
    fn uuid_text_round_trips() {
        let text = "01234567-89ab-cdef-0123-456789abcdef";
        let uuid = parse_uuid(text).unwrap();
        assert_eq!(uuid[..3], [0x01, 0x23, 0x45]);
        assert_eq!(format_uuid(&uuid), text);
        assert_eq!(
            parse_uuid("0123456789abcdef0123456789ABCDEF").unwrap(),
            uuid
        );
        assert_eq!(
            parse_uuid("01234567-89AB-CDEF-0123-456789ABCDEF").unwrap(),
            uuid
        );
    }

    #[test]
    fn uuids_refused() {
        for (bad, why) in [
            ("", "0 characters"),
            ("01234567-89ab-cdef-0123-456789abcde", "35 characters"),
            (
                "0123456789ab-cdef-0123-4567-89abcdef",
                "character 9 should be '-'",
            ),
            ("01234567-89ab-cdef-0123-456789abcdef0", "37 characters"),
            // `from_str_radix` takes a sign: "+1" would be 0x01.
            (
                "+1234567-89ab-cdef-0123-456789abcdef",
                "'+' is not a hexadecimal digit",
            ),
            (
                "-1234567-89ab-cdef-0123-456789abcdef",
                "'-' is not a hexadecimal digit",
            ),
            ("+123456789abcdef0123456789abcdef", "'+' is not"),
            ("01234567-89ab-cdef-0123-456789abcdeg", "'g' is not"),
            ("01234567 89ab cdef 0123 456789abcdef", "should be '-'"),
            ("0123456789abcdef0123456789abcde-", "'-' is not"),
            ("--------------------------------", "'-' is not"),
            // 36 bytes with a two-byte character where a hyphen or digit pair is: no panic.
            ("0123456é-89ab-cdef-0123-456789abcdef", "'é' is not ASCII"),
            ("01234567-89ab-cdef-0123-456789abcdé", "'é' is not ASCII"),
            ("ééééééééééééééééé-", "not ASCII"),
            ("{01234567-89ab-cdef-0123-456789abcdef}", "38 characters"),
        ] {
            let e = parse_uuid(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.contains("8-4-4-4-12"), "{bad:?}: {e}");
        }
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
