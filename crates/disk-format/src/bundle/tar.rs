//! Tar members as the archives of this module write them, defined once: a POSIX ustar
//! header for plain files (OVA, Vagrant box), an old-GNU sparse header with its extension
//! blocks for the GCE image's `disk.raw`, and the end-of-archive marker.
//!
//! Every member is deterministic: owner 0:0 with no names, mode 0644, the caller's mtime.
//! Numbers too large for a field's octal digits (sizes past 8 GiB) take GNU's base-256 form,
//! which GNU tar, Python's tarfile, Go's archive/tar and libarchive read.

use d2l_disk::bytes::{FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::usize_from;
use crate::{Error, Result};

/// A tar block: headers, and the unit data is padded to (POSIX.1-2017 pax, "ustar
/// Interchange Format").
pub(crate) const BLOCK: u64 = 512;
/// [`BLOCK`] as a length in memory.
const BLOCK_BYTES: usize = usize_from(BLOCK);
/// The end of an archive: two blocks of zeros.
pub(crate) const END: [u8; 2 * BLOCK_BYTES] = [0; 2 * BLOCK_BYTES];
/// Mode of every member: a regular file readable by all.
const MODE: u64 = 0o644;
/// ustar's magic and version ("ustar\0", "00").
const USTAR_MAGIC: [u8; 8] = *b"ustar\x0000";
/// The old GNU format's magic and version ("ustar  \0"), which its sparse members carry.
const OLDGNU_MAGIC: [u8; 8] = *b"ustar  \0";
/// Type flag of a regular file.
const REGULAR: u8 = b'0';
/// Type flag of an old-GNU sparse file (GNU tar's GNUTYPE_SPARSE).
const GNU_SPARSE: u8 = b'S';
/// Sparse map entries in an old-GNU header (GNU tar's SPARSES_IN_OLDGNU_HEADER).
const SPARSE_IN_HEADER: usize = 4;
/// Sparse map entries in each extension block (SPARSES_IN_SPARSE_HEADER).
const SPARSE_IN_EXTENSION: usize = 21;

/// The fields every header starts with (ustar and old GNU alike), all text or octal.
#[derive(Debug, Clone, Copy, FromZeros, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Common {
    name: [u8; 100],
    mode: [u8; 8],
    uid: [u8; 8],
    gid: [u8; 8],
    size: [u8; 12],
    mtime: [u8; 12],
    /// Sum of the header's bytes, this field counted as spaces.
    chksum: [u8; 8],
    typeflag: u8,
    linkname: [u8; 100],
    /// Magic and version.
    magic: [u8; 8],
    uname: [u8; 32],
    gname: [u8; 32],
    devmajor: [u8; 8],
    devminor: [u8; 8],
}
const _: () = assert!(size_of::<Common>() == 345);

/// A ustar header: the common fields, then the name's prefix (unused: names fit the name
/// field).
#[derive(Debug, Clone, Copy, FromZeros, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Ustar {
    common: Common,
    prefix: [u8; 155],
    pad: [u8; 12],
}
const _: () = assert!(size_of::<Ustar>() == BLOCK_BYTES);

/// One entry of a sparse map: where a run of data starts in the file and its length.
#[derive(Debug, Clone, Copy, FromZeros, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SparseEntry {
    offset: [u8; 12],
    numbytes: [u8; 12],
}

/// An old-GNU header (GNU tar's `struct oldgnu_header`): the common fields, times, the first
/// four entries of the sparse map and the file's real size.
#[derive(Debug, Clone, Copy, FromZeros, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct OldGnu {
    common: Common,
    atime: [u8; 12],
    ctime: [u8; 12],
    offset: [u8; 12],
    longnames: [u8; 4],
    unused: u8,
    sparse: [SparseEntry; SPARSE_IN_HEADER],
    /// 1 when an extension block follows.
    isextended: u8,
    /// The file's size with its holes.
    realsize: [u8; 12],
    pad: [u8; 17],
}
const _: () = assert!(size_of::<OldGnu>() == BLOCK_BYTES);

/// A block continuing an old-GNU sparse map (GNU tar's `struct sparse_header`).
#[derive(Debug, Clone, Copy, FromZeros, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SparseExtension {
    sparse: [SparseEntry; SPARSE_IN_EXTENSION],
    /// 1 when another extension block follows.
    isextended: u8,
    pad: [u8; 7],
}
const _: () = assert!(size_of::<SparseExtension>() == BLOCK_BYTES);

/// Bytes a member of `len` bytes of data takes: its header and its data padded to a block.
pub(crate) fn member_span(len: u64) -> u64 {
    BLOCK + len.next_multiple_of(BLOCK)
}

/// Zeros after `len` bytes of data, up to the next block.
pub(crate) fn padding(len: u64) -> &'static [u8] {
    const ZEROS: [u8; BLOCK_BYTES] = [0; BLOCK_BYTES];
    let pad = len.next_multiple_of(BLOCK) - len;
    // Below a block by construction.
    &ZEROS[..usize::try_from(pad).unwrap_or(0)]
}

/// `value` in a numeric field: octal digits and a NUL when they fit, else GNU's base-256
/// form (0x80, then the value big-endian), which holds any u64 in the 12-byte fields (the
/// 8-byte ones only ever get a mode or a zero).
fn number(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() == digits {
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        let bytes = value.to_be_bytes();
        let room = digits.min(bytes.len());
        let n = field.len();
        field[n - room..].copy_from_slice(&bytes[bytes.len() - room..]);
    }
}

/// The common fields of a member named `name` holding `size` bytes (what follows the header
/// in the archive), with `magic` and `typeflag`; the checksum is left for [`seal`].
fn common(name: &str, size: u64, mtime: u64, magic: [u8; 8], typeflag: u8) -> Result<Common> {
    let mut c = Common::new_zeroed();
    // A name with a NUL or past the field (or a directory part the members never have) is
    // the caller's mistake; refuse it rather than write a member no reader finds.
    if name.is_empty() || name.len() > c.name.len() || name.bytes().any(|b| b == 0 || b == b'/') {
        return Err(Error::Options(format!(
            "{name:?} cannot name a tar member (1 to 100 bytes, no NUL or slash)"
        )));
    }
    c.name[..name.len()].copy_from_slice(name.as_bytes());
    number(&mut c.mode, MODE);
    number(&mut c.uid, 0);
    number(&mut c.gid, 0);
    number(&mut c.size, size);
    number(&mut c.mtime, mtime);
    c.typeflag = typeflag;
    c.magic = magic;
    Ok(c)
}

/// Fills the checksum of a header block (the common fields first): the sum of its bytes
/// with the checksum field as eight spaces, as six octal digits, a NUL and a space.
fn seal(block: &mut [u8]) {
    const CHKSUM: std::ops::Range<usize> = 148..156;
    block[CHKSUM].fill(b' ');
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    block[CHKSUM].copy_from_slice(text.as_bytes());
}

/// The ustar header of a regular file `name` of `size` bytes.
pub(crate) fn ustar_header(name: &str, size: u64, mtime: u64) -> Result<[u8; BLOCK_BYTES]> {
    let mut header = Ustar::new_zeroed();
    header.common = common(name, size, mtime, USTAR_MAGIC, REGULAR)?;
    let mut block = [0u8; BLOCK_BYTES];
    block.copy_from_slice(header.as_bytes());
    seal(&mut block);
    Ok(block)
}

/// The headers of an old-GNU sparse member `name`: a file of `real_size` bytes whose data
/// is the runs `map` (offset, length; in order, not overlapping, the last possibly a
/// zero-length entry at the end of the file). The header block, then an extension block
/// per 21 entries past the first 4. The member's data, the runs one after another, follows.
pub(crate) fn gnu_sparse_headers(
    name: &str,
    map: &[(u64, u64)],
    real_size: u64,
    mtime: u64,
) -> Result<Vec<u8>> {
    let stored = map.iter().map(|&(_, len)| len).sum();
    let mut header = OldGnu::new_zeroed();
    header.common = common(name, stored, mtime, OLDGNU_MAGIC, GNU_SPARSE)?;
    number(&mut header.realsize, real_size);
    let fill = |entries: &mut [SparseEntry], runs: &[(u64, u64)]| {
        for (entry, &(offset, len)) in entries.iter_mut().zip(runs) {
            number(&mut entry.offset, offset);
            number(&mut entry.numbytes, len);
        }
    };
    let (first, rest) = map.split_at(map.len().min(SPARSE_IN_HEADER));
    fill(&mut header.sparse, first);
    header.isextended = u8::from(!rest.is_empty());
    let mut out = header.as_bytes().to_vec();
    seal(&mut out);
    let mut chunks = rest.chunks(SPARSE_IN_EXTENSION).peekable();
    while let Some(chunk) = chunks.next() {
        let mut ext = SparseExtension::new_zeroed();
        fill(&mut ext.sparse, chunk);
        ext.isextended = u8::from(chunks.peek().is_some());
        out.extend_from_slice(ext.as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum a reader computes: the header's bytes with the field as spaces.
    fn checksum_ok(block: &[u8]) -> bool {
        let stored = std::str::from_utf8(&block[148..154]).unwrap();
        let stored = u64::from_str_radix(stored, 8).unwrap();
        let sum: u64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        block[154] == 0 && block[155] == b' ' && stored == sum
    }

    #[test]
    fn ustar_header_field_by_field() {
        let h = ustar_header("box.img", 0o1234567, 1_700_000_000).unwrap();
        assert_eq!(&h[0..8], b"box.img\0");
        assert_eq!(&h[100..108], b"0000644\0", "mode");
        assert_eq!(&h[108..116], b"0000000\0", "uid");
        assert_eq!(&h[116..124], b"0000000\0", "gid");
        assert_eq!(&h[124..136], b"00001234567\0", "size");
        assert_eq!(&h[136..148], b"14524770400\0", "mtime 1700000000");
        assert_eq!(h[156], b'0', "regular file");
        assert_eq!(&h[257..265], b"ustar\x0000", "magic and version");
        assert!(
            h[265..].iter().all(|&b| b == 0),
            "no names, devices, prefix"
        );
        assert!(checksum_ok(&h));
    }

    #[test]
    fn large_numbers_take_base_256() {
        // 8 GiB needs 12 octal digits, one more than the field holds.
        let h = ustar_header("disk1.vmdk", 8 << 30, 0).unwrap();
        assert_eq!(&h[124..136], &[0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]);
        assert!(checksum_ok(&h));
        let h = ustar_header("x", (8 << 30) - 1, 0).unwrap();
        assert_eq!(&h[124..136], b"77777777777\0", "the largest octal size");
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", "a/b", "nul\0", &"n".repeat(101)] {
            assert!(ustar_header(bad, 0, 0).is_err(), "{bad:?}");
        }
        assert!(ustar_header(&"n".repeat(100), 0, 0).is_ok());
    }

    #[test]
    fn gnu_sparse_header_holds_four_runs() {
        let map = [(0, 4096), (1 << 20, 8192), (5 << 20, 512)];
        let h = gnu_sparse_headers("disk.raw", &map, 1 << 30, 0).unwrap();
        assert_eq!(h.len(), 512, "no extension block for three runs");
        assert_eq!(h[156], b'S');
        assert_eq!(&h[257..265], b"ustar  \0", "old GNU magic");
        assert_eq!(
            &h[124..136],
            b"00000031000\0",
            "size: the data stored, 12800"
        );
        assert_eq!(&h[386..398], b"00000000000\0", "run 0 offset");
        assert_eq!(&h[398..410], b"00000010000\0", "run 0 length 4096");
        assert_eq!(&h[410..422], b"00004000000\0", "run 1 offset 1 MiB");
        assert_eq!(&h[434..446], b"00024000000\0", "run 2 offset 5 MiB");
        assert!(h[458..482].iter().all(|&b| b == 0), "run 3 unused");
        assert_eq!(h[482], 0, "not extended");
        assert_eq!(&h[483..495], b"10000000000\0", "real size 1 GiB");
        assert!(checksum_ok(&h));
    }

    #[test]
    fn gnu_sparse_extension_blocks_carry_the_rest() {
        // 4 in the header, 21 in the first extension, 2 in the second.
        let map: Vec<(u64, u64)> = (0..27u64).map(|i| (i * 8192, 4096)).collect();
        let h = gnu_sparse_headers("disk.raw", &map, 27 * 8192, 0).unwrap();
        assert_eq!(h.len(), 3 * 512);
        assert_eq!(h[482], 1, "the header says an extension follows");
        assert!(checksum_ok(&h[..512]));
        let ext1 = &h[512..1024];
        assert_eq!(&ext1[0..12], b"00000100000\0", "run 4 offset 32768");
        assert_eq!(&ext1[480..492], b"00000600000\0", "run 24 offset");
        assert_eq!(ext1[504], 1, "another extension follows");
        let ext2 = &h[1024..];
        assert_eq!(&ext2[0..12], b"00000620000\0", "run 25 offset");
        assert_eq!(&ext2[24..36], b"00000640000\0", "run 26 offset");
        assert!(ext2[48..504].iter().all(|&b| b == 0));
        assert_eq!(ext2[504], 0, "the last extension");
        // Exactly 25 runs need exactly one extension block.
        let h = gnu_sparse_headers("disk.raw", &map[..25], 1 << 20, 0).unwrap();
        assert_eq!((h.len(), h[482], h[1016]), (1024, 1, 0));
    }

    #[test]
    fn padding_and_spans() {
        assert_eq!(padding(0).len(), 0);
        assert_eq!(padding(1).len(), 511);
        assert_eq!(padding(512).len(), 0);
        assert_eq!(member_span(0), 512);
        assert_eq!(member_span(513), 512 + 1024);
    }
}
