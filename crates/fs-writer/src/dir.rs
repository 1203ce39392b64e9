//! Directory blocks: linear directories and hash-tree (htree) directories, with metadata_csum.
//!
//! kernel.org ext4 "Data Structures and Algorithms", sections "Directory Entries" and
//! "Hash Tree Directories". Every block is [`BLOCK_SIZE`] bytes.
//!
//! * A **linear** directory is one block: `.`, `..`, the entries in the order given, the last
//!   entry's `rec_len` reaching up to the 12-byte checksum tail.
//! * Anything larger becomes an **htree** (`EXT4_INDEX_FL` on the inode): block 0 is the `dx_root`
//!   (fake `.` and `..` entries, `dx_root_info`, then index entries), blocks `1..=L` are the
//!   leaves holding the entries sorted by `(hash, minor hash, name)`, and with more leaves
//!   than the root can point at, a second level of `dx_node` blocks follows the leaves (the
//!   block order e2fsck's `rehash.c` produces).
//!
//! Leaves are filled to about 80% (e2fsck's default `indexed_dir_slack_percentage` of 20), so
//! files added later rarely split a leaf. The split points depend only on the entry sizes, not
//! on the hashes, which is what lets [`directory_block_count`] answer without hashing: the
//! sorted entries are cut into `L = ceil(total / fill)` leaves at the byte positions
//! `k * total / L`. Entries with the same major hash may straddle a cut; the later leaf's
//! index hash then carries the continuation bit (`hash | 1`), as e2fsck does, which tells the
//! kernel's lookup to look into the next leaf too.
//!
//! Depth: one index level under the root (`indirect_levels` 0 or 1) holds 507 × 510 leaves,
//! millions of names. Deeper trees need the `largedir` feature, which d2l does not write:
//! [`build_directory`] and [`directory_block_count`] return [`TooManyEntries`] past
//! [`MAX_DIRECTORY_ENTRY_BYTES`].

use d2l_disk::bytes::{FromBytes, IntoBytes};

use crate::csum::ext4_chksum;
use crate::dx_hash::half_md4_hash;
use crate::ondisk::{DirEntryHeader, DirEntryTail, DxCountLimit, DxEntry, DxRootInfo, DxTail};

/// Directory block size (d2l writes one geometry, see `layout.rs`).
const BLOCK_SIZE: usize = 4096;
const _: () = assert!(BLOCK_SIZE == crate::layout::BLOCK_SIZE as usize);

/// One directory block.
type Block = Box<[u8; BLOCK_SIZE]>;

/// The name follows the 8-byte `ext4_dir_entry_2` header (directory.rst, "Linear (Classic)
/// Directories").
const DE_NAME: usize = size_of::<DirEntryHeader>();
/// Longest name an entry holds (`EXT4_NAME_LEN`).
pub(crate) const NAME_MAX: usize = 255;
/// Entries are padded to 4 bytes (`EXT4_DIR_PAD`).
const DE_ALIGN: usize = 4;

/// `file_type` of a directory (`EXT4_FT_DIR`).
const FT_DIR: u8 = 2;

/// The checksum tail at the end of every leaf block (`struct ext4_dir_entry_tail`): a fake
/// entry with inode 0, `rec_len` 12, `name_len` 0, `file_type` 0xDE, then the CRC32C.
const TAIL_LEN: usize = size_of::<DirEntryTail>();
/// The tail's `det_rec_len`.
const TAIL_LEN_U16: u16 = 12;
const _: () = assert!(TAIL_LEN_U16 as usize == TAIL_LEN);
/// Where the tail starts; entries live in `0..TAIL_OFFSET`.
const TAIL_OFFSET: usize = BLOCK_SIZE - TAIL_LEN;
/// `det_reserved_ft` (`EXT4_FT_DIR_CSUM`).
const TAIL_FILE_TYPE: u8 = 0xDE;

/// `rec_len` of `.` and of `..` when followed by more entries: `rec_len(1)` = `rec_len(2)`.
const DOT_REC_LEN: usize = 12;
/// Bytes `.` and `..` take at the start of a linear block.
const DOTS_LEN: usize = 2 * DOT_REC_LEN;

/// `dx_root_info` offset in the root block, after the fake `.` and `..` (ext4 docs "Hash Tree
/// Directories", `struct dx_root`).
const DX_ROOT_INFO: usize = 2 * DOT_REC_LEN;
/// `dx_root_info.hash_version`: `DX_HASH_HALF_MD4`. The kernel adds 3 (the `_UNSIGNED`
/// variant) when the superblock says `EXT2_FLAGS_UNSIGNED_HASH`; on disk it is the base value.
const DX_HASH_HALF_MD4: u8 = 1;
/// `dx_root_info.info_length`.
const DX_ROOT_INFO_LEN: usize = size_of::<DxRootInfo>();
const DX_ROOT_INFO_LEN_U8: u8 = 8;
const _: () = assert!(DX_ROOT_INFO_LEN_U8 as usize == DX_ROOT_INFO_LEN);
/// Where the root's `dx_countlimit` + `dx_entry` array starts.
const DX_ROOT_ENTRIES: usize = DX_ROOT_INFO + DX_ROOT_INFO_LEN;
/// Where a `dx_node`'s array starts: after a fake entry (inode 0, `rec_len` = block size).
const DX_NODE_ENTRIES: usize = 8;
/// `struct dx_entry`: hash u32, block u32. Entry 0's hash slot holds `limit` and `count`.
const DX_ENTRY_LEN: usize = size_of::<DxEntry>();
/// `struct dx_tail` after the `limit` entries (metadata_csum): reserved u32, checksum u32.
const DX_TAIL_LEN: usize = size_of::<DxTail>();
/// Index entries the root holds: 507.
const DX_ROOT_LIMIT: usize = (BLOCK_SIZE - DX_ROOT_ENTRIES - DX_TAIL_LEN) / DX_ENTRY_LEN;
/// Index entries a node holds: 510.
const DX_NODE_LIMIT: usize = (BLOCK_SIZE - DX_NODE_ENTRIES - DX_TAIL_LEN) / DX_ENTRY_LEN;
/// Low bit of an index hash: the leaf continues a run of equal hashes from the leaf before.
const DX_HASH_CONTINUATION: u32 = 1;

/// e2fsck's default `indexed_dir_slack_percentage`: leaves are left this % empty.
const HTREE_SLACK_PERCENT: usize = 20;
/// Bytes of entries a leaf is filled to, on average.
const LEAF_FILL: usize = TAIL_OFFSET - TAIL_OFFSET * HTREE_SLACK_PERCENT / 100;
/// Most bytes of directory entries one directory can hold (the sum of each name's `rec_len`:
/// 8 bytes + the name, padded to 4; `.` and `..` not counted): a two-level htree (ext4 docs,
/// "Hash Tree Directories": `indirect_levels` at most 1 without the `largedir` feature) of
/// 507 root entries × 510 node entries leaves, each filled to 80% of its 4084 bytes. About
/// 3.2 million names of 255 bytes, 35 million of 12. A directory with more is refused.
pub const MAX_DIRECTORY_ENTRY_BYTES: usize = DX_ROOT_LIMIT * DX_NODE_LIMIT * LEAF_FILL;

/// A directory whose entries need more than two htree levels
/// ([`MAX_DIRECTORY_ENTRY_BYTES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyEntries {
    /// Bytes of entries the directory has.
    pub bytes: usize,
}

/// The largest entry (255-byte name) must fit well inside a leaf's share, so no leaf is empty
/// and none overflows (see [`leaf_ranges`]).
const _: () =
    assert!(rec_len(NAME_MAX) <= LEAF_FILL / 2 && LEAF_FILL + rec_len(NAME_MAX) <= TAIL_OFFSET);

/// One name of a directory, as the caller hands it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntryIn<'a> {
    /// 1..=255 bytes, no `/` or NUL, not `.` or `..`.
    pub name: &'a [u8],
    /// The inode the name refers to.
    pub inode: u32,
    /// `EXT4_FT_*`: 1 reg, 2 dir, 3 chr, 4 blk, 5 fifo, 6 sock, 7 symlink.
    pub file_type: u8,
}

/// How names hash: the superblock's `s_hash_seed` and whether it says
/// `EXT2_FLAGS_SIGNED_HASH` (true) or `EXT2_FLAGS_UNSIGNED_HASH` (false).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// `s_hash_seed` as the superblock stores it: four little-endian words, i.e. the 16 bytes
    /// of the UUID-form seed (`-E hash_seed=`) read as `u32::from_le_bytes` in fours.
    pub seed: [u32; 4],
    /// Hash names as signed chars.
    pub signed_chars: bool,
}

/// The blocks of one directory.
#[derive(Debug)]
pub struct DirBlocks {
    /// Logical blocks 0.., final bytes including checksums.
    pub blocks: Vec<Box<[u8; 4096]>>,
    /// An htree: set `EXT4_INDEX_FL` (0x1000, `crate::inode::FLAG_INDEX`) on the inode.
    pub indexed: bool,
}

/// All blocks of one directory, in logical order, final bytes including checksum tails.
///
/// `entries` exclude `.` and `..`; a linear directory keeps their order. `inode_csum_seed` is
/// the directory inode's checksum seed (`crate::csum::inode_seed`).
///
/// # Panics
///
/// On a name that is empty, longer than 255 bytes, `.`, `..` or holds `/` or NUL (the tree
/// refuses those before they reach here).
///
/// # Errors
///
/// When the directory would need more than two index levels (the `largedir` feature).
pub fn build_directory(
    entries: &[DirEntryIn],
    self_ino: u32,
    parent_ino: u32,
    hash: &HashParams,
    inode_csum_seed: u32,
) -> Result<DirBlocks, TooManyEntries> {
    for entry in entries {
        check_name(entry.name);
    }
    let total = entries_len(entries);
    if fits_linear(total) {
        let mut block = new_block();
        write_linear(&mut block, self_ino, parent_ino, entries);
        seal_leaf(&mut block, inode_csum_seed);
        return Ok(DirBlocks {
            blocks: vec![block],
            indexed: false,
        });
    }

    let mut sorted: Vec<Hashed> = entries
        .iter()
        .map(|entry| {
            let (major, minor) = half_md4_hash(entry.name, hash.seed, hash.signed_chars);
            Hashed {
                major,
                minor,
                entry,
            }
        })
        .collect();
    // Names are unique in a directory, so this is a total order (and stable regardless).
    sorted.sort_by(|a, b| (a.major, a.minor, a.entry.name).cmp(&(b.major, b.minor, b.entry.name)));
    build_htree(&sorted, self_ino, parent_ino, inode_csum_seed)
}

/// Number of blocks [`build_directory`] produces for `entries` (which need not be hashed or
/// sorted for this: the count depends only on the names' lengths).
///
/// # Errors
///
/// As [`build_directory`] for a directory that needs more than two index levels.
pub fn directory_block_count(entries: &[DirEntryIn]) -> Result<usize, TooManyEntries> {
    let total = entries_len(entries);
    if fits_linear(total) {
        Ok(1)
    } else {
        Ok(HtreeShape::for_entries_len(total)?.blocks())
    }
}

/// Blocks of an empty directory with `count` blocks (lost+found, which mke2fs and e2fsck
/// pre-size so that e2fsck can link orphans without allocating): block 0 holds `.` and `..`,
/// each further block one unused entry spanning it; every block ends in its checksum tail.
///
/// # Panics
///
/// When `count` is 0.
pub fn empty_directory_blocks(
    self_ino: u32,
    parent_ino: u32,
    count: usize,
    inode_csum_seed: u32,
) -> Vec<Box<[u8; 4096]>> {
    assert!(count >= 1, "a directory has at least one block");
    let mut blocks = Vec::with_capacity(count);
    let mut first = new_block();
    write_linear(&mut first, self_ino, parent_ino, &[]);
    seal_leaf(&mut first, inode_csum_seed);
    blocks.push(first);
    for _ in 1..count {
        let mut block = new_block();
        put_dirent(&mut block, 0, 0, TAIL_OFFSET, b"", 0);
        seal_leaf(&mut block, inode_csum_seed);
        blocks.push(block);
    }
    blocks
}

/// An entry with its hash.
#[derive(Debug, Clone, Copy)]
struct Hashed<'e, 'a> {
    major: u32,
    minor: u32,
    entry: &'e DirEntryIn<'a>,
}

/// Bytes an entry with a name of `name_len` bytes takes (`EXT4_DIR_REC_LEN`).
pub const fn rec_len(name_len: usize) -> usize {
    (DE_NAME + name_len).div_ceil(DE_ALIGN) * DE_ALIGN
}

/// Sum of the entries' minimal `rec_len`s.
fn entries_len(entries: &[DirEntryIn]) -> usize {
    entries.iter().map(|e| rec_len(e.name.len())).sum()
}

/// Whether `.`, `..` and entries of `total` bytes fit one block before its tail.
pub fn fits_linear(total: usize) -> bool {
    DOTS_LEN + total <= TAIL_OFFSET
}

fn check_name(name: &[u8]) {
    assert!(
        (1..=NAME_MAX).contains(&name.len()),
        "directory entry name of {} bytes (must be 1..=255): {:?}",
        name.len(),
        String::from_utf8_lossy(&name[..name.len().min(64)])
    );
    assert!(
        name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0),
        "invalid directory entry name {:?}",
        String::from_utf8_lossy(name)
    );
}

/// How many leaves and index nodes an htree has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtreeShape {
    /// Leaf blocks.
    pub leaves: usize,
    /// Second-level index blocks; 0 means the root points at the leaves directly.
    pub nodes: usize,
}

impl HtreeShape {
    /// The shape for sorted entries totalling `total` bytes of `rec_len` (more than a linear
    /// block holds).
    pub fn for_entries_len(total: usize) -> Result<Self, TooManyEntries> {
        if total > MAX_DIRECTORY_ENTRY_BYTES {
            return Err(TooManyEntries { bytes: total });
        }
        let leaves = total.div_ceil(LEAF_FILL);
        if leaves <= DX_ROOT_LIMIT {
            return Ok(HtreeShape { leaves, nodes: 0 });
        }
        let nodes = leaves.div_ceil(DX_NODE_LIMIT);
        debug_assert!(
            nodes <= DX_ROOT_LIMIT,
            "MAX_DIRECTORY_ENTRY_BYTES bounds the nodes"
        );
        Ok(HtreeShape { leaves, nodes })
    }

    /// Root + leaves + nodes.
    fn blocks(self) -> usize {
        1 + self.leaves + self.nodes
    }

    /// `dx_root_info.indirect_levels`.
    fn indirect_levels(self) -> u8 {
        u8::from(self.nodes > 0)
    }
}

/// Cuts the sorted entries into `leaves` runs: entry `i`, starting at byte `s_i` of the
/// concatenation (`total` bytes), goes to leaf `s_i * leaves / total`.
///
/// Each leaf gets the entries starting in a window of `w = total / leaves <= LEAF_FILL` bytes,
/// so it holds less than `w + rec_len(255)` bytes, which fits before the tail; and since
/// `w >= LEAF_FILL / 2` exceeds the largest entry, every window holds the start of an entry:
/// no leaf is empty.
fn leaf_ranges(sorted: &[Hashed], total: usize, leaves: usize) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::with_capacity(leaves);
    let mut start_byte = 0usize;
    let mut first = 0usize;
    for (i, h) in sorted.iter().enumerate() {
        let leaf = (start_byte as u128 * leaves as u128 / total as u128) as usize;
        if leaf != ranges.len() {
            debug_assert_eq!(leaf, ranges.len() + 1, "empty leaf");
            ranges.push(first..i);
            first = i;
        }
        start_byte += rec_len(h.entry.name.len());
    }
    ranges.push(first..sorted.len());
    assert_eq!(
        ranges.len(),
        leaves,
        "leaf split produced the wrong number of leaves"
    );
    ranges
}

/// Builds an htree from entries sorted by `(major, minor, name)`.
fn build_htree(
    sorted: &[Hashed],
    self_ino: u32,
    parent_ino: u32,
    seed: u32,
) -> Result<DirBlocks, TooManyEntries> {
    let total: usize = sorted.iter().map(|h| rec_len(h.entry.name.len())).sum();
    let shape = HtreeShape::for_entries_len(total)?;
    let ranges = leaf_ranges(sorted, total, shape.leaves);

    let mut blocks: Vec<Block> = Vec::with_capacity(shape.blocks());
    blocks.push(new_block()); // the root, filled below

    // Leaves at logical blocks 1..=L, and the hash each is indexed under.
    let mut leaf_hashes = Vec::with_capacity(shape.leaves);
    for (k, range) in ranges.iter().enumerate() {
        let run = &sorted[range.clone()];
        let first = run[0].major;
        let continues = k > 0 && sorted[range.start - 1].major == first;
        leaf_hashes.push(if continues {
            first | DX_HASH_CONTINUATION
        } else {
            first
        });

        let mut block = new_block();
        let entries: Vec<DirEntryIn> = run.iter().map(|h| *h.entry).collect();
        write_entries(&mut block, 0, &entries);
        seal_leaf(&mut block, seed);
        blocks.push(block);
    }
    // At most 1 + 507 × 511 blocks (MAX_DIRECTORY_ENTRY_BYTES): block numbers fit 32 bits.
    let block_nr = |k: usize| u32::try_from(k).expect("at most 259,078 directory blocks");
    let leaf_block = |k: usize| block_nr(1 + k);

    let mut root = std::mem::replace(&mut blocks[0], new_block());
    write_dx_root_header(&mut root, self_ino, parent_ino, shape.indirect_levels());
    if shape.nodes == 0 {
        let index: Vec<(u32, u32)> = (0..shape.leaves)
            .map(|k| (leaf_hashes[k], leaf_block(k)))
            .collect();
        write_dx_entries(&mut root, DX_ROOT_ENTRIES, DX_ROOT_LIMIT, &index, seed);
    } else {
        // Nodes follow the leaves, each full (but the last) of consecutive leaves.
        let mut root_index = Vec::with_capacity(shape.nodes);
        for (n, first_leaf) in (0..shape.leaves).step_by(DX_NODE_LIMIT).enumerate() {
            let last_leaf = (first_leaf + DX_NODE_LIMIT).min(shape.leaves);
            let index: Vec<(u32, u32)> = (first_leaf..last_leaf)
                .map(|k| (leaf_hashes[k], leaf_block(k)))
                .collect();
            let mut node = new_block();
            // The fake entry covering the whole block: inode 0, rec_len 4096, name_len 0.
            put_dirent(&mut node, 0, 0, BLOCK_SIZE, b"", 0);
            write_dx_entries(&mut node, DX_NODE_ENTRIES, DX_NODE_LIMIT, &index, seed);
            blocks.push(node);
            root_index.push((leaf_hashes[first_leaf], block_nr(1 + shape.leaves + n)));
        }
        write_dx_entries(&mut root, DX_ROOT_ENTRIES, DX_ROOT_LIMIT, &root_index, seed);
    }
    blocks[0] = root;
    debug_assert_eq!(blocks.len(), shape.blocks());
    Ok(DirBlocks {
        blocks,
        indexed: true,
    })
}

/// `.`, `..` and `entries` into a linear block.
fn write_linear(block: &mut Block, self_ino: u32, parent_ino: u32, entries: &[DirEntryIn]) {
    put_dirent(block, 0, self_ino, DOT_REC_LEN, b".", FT_DIR);
    if entries.is_empty() {
        put_dirent(
            block,
            DOT_REC_LEN,
            parent_ino,
            TAIL_OFFSET - DOT_REC_LEN,
            b"..",
            FT_DIR,
        );
    } else {
        put_dirent(block, DOT_REC_LEN, parent_ino, DOT_REC_LEN, b"..", FT_DIR);
        write_entries(block, DOTS_LEN, entries);
    }
}

/// `entries` (non-empty) from `offset` on, the last one's `rec_len` reaching the tail.
fn write_entries(block: &mut Block, mut offset: usize, entries: &[DirEntryIn]) {
    let needed = entries_len(entries);
    assert!(
        !entries.is_empty() && offset + needed <= TAIL_OFFSET,
        "{} bytes of entries at offset {offset} overflow a directory block",
        needed
    );
    for (i, e) in entries.iter().enumerate() {
        let len = if i + 1 == entries.len() {
            TAIL_OFFSET - offset
        } else {
            rec_len(e.name.len())
        };
        put_dirent(block, offset, e.inode, len, e.name, e.file_type);
        offset += len;
    }
}

/// Writes the checksum tail of a leaf (or linear) block: `ext4_chksum(seed, block[..4084])`.
fn seal_leaf(block: &mut Block, seed: u32) {
    let tail = DirEntryTail {
        det_reserved_zero1: 0.into(),
        det_rec_len: TAIL_LEN_U16.into(),
        det_reserved_zero2: 0,
        det_reserved_ft: TAIL_FILE_TYPE,
        det_checksum: ext4_chksum(seed, &block[..TAIL_OFFSET]).into(),
    };
    block[TAIL_OFFSET..].copy_from_slice(tail.as_bytes());
}

/// The root's fake `.` (`rec_len` 12) and `..` (covering the rest of the block), and its
/// `dx_root_info`.
fn write_dx_root_header(block: &mut Block, self_ino: u32, parent_ino: u32, levels: u8) {
    put_dirent(block, 0, self_ino, DOT_REC_LEN, b".", FT_DIR);
    put_dirent(
        block,
        DOT_REC_LEN,
        parent_ino,
        BLOCK_SIZE - DOT_REC_LEN,
        b"..",
        FT_DIR,
    );
    let info = DxRootInfo {
        reserved_zero: 0.into(),
        hash_version: DX_HASH_HALF_MD4,
        info_length: DX_ROOT_INFO_LEN_U8,
        indirect_levels: levels,
        unused_flags: 0,
    };
    block[DX_ROOT_INFO..DX_ROOT_INFO + DX_ROOT_INFO_LEN].copy_from_slice(info.as_bytes());
}

/// Writes `(hash, block)` index entries at `at` (entry 0's hash is implicit and its slot
/// holds `limit` and `count`), then the `dx_tail` after `limit` entries with its checksum:
/// `ext4_chksum` over the block up to the last used entry, then over the tail with its
/// checksum field zero (the kernel's `ext4_dx_csum`).
fn write_dx_entries(block: &mut Block, at: usize, limit: usize, index: &[(u32, u32)], seed: u32) {
    assert!(
        !index.is_empty() && index.len() <= limit,
        "{} index entries for a block holding {limit}",
        index.len()
    );
    // Both at most DX_NODE_LIMIT (510).
    let (Ok(limit16), Ok(count)) = (u16::try_from(limit), u16::try_from(index.len())) else {
        unreachable!("at most {DX_NODE_LIMIT} index entries");
    };
    for (i, &(hash, target)) in index.iter().enumerate() {
        let entry = DxEntry {
            hash: hash.into(),
            block: target.into(),
        };
        let at = at + i * DX_ENTRY_LEN;
        block[at..at + DX_ENTRY_LEN].copy_from_slice(entry.as_bytes());
    }
    // Entry 0's hash slot holds the count and limit (its hash is implicit: 0).
    let countlimit = DxCountLimit {
        limit: limit16.into(),
        count: count.into(),
    };
    block[at..at + size_of::<DxCountLimit>()].copy_from_slice(countlimit.as_bytes());
    let tail = at + limit * DX_ENTRY_LEN;
    debug_assert_eq!(tail + DX_TAIL_LEN, BLOCK_SIZE);
    let csum = ext4_chksum(seed, &block[..at + index.len() * DX_ENTRY_LEN]);
    let mut dx_tail = DxTail::read_from_bytes(&block[tail..]).expect("8 bytes");
    dx_tail.dt_checksum = 0.into();
    let csum = ext4_chksum(csum, dx_tail.as_bytes()); // dt_reserved, dt_checksum as zero
    dx_tail.dt_checksum = csum.into();
    block[tail..].copy_from_slice(dx_tail.as_bytes());
}

/// Writes one `ext4_dir_entry_2` header and name at `offset`.
fn put_dirent(block: &mut Block, offset: usize, inode: u32, rec_len: usize, name: &[u8], ft: u8) {
    // rec_len is at most the block size (4096) and names at most NAME_MAX (255) bytes,
    // checked by `check_name`.
    let (Ok(rec_len), Ok(name_len)) = (u16::try_from(rec_len), u8::try_from(name.len())) else {
        unreachable!("rec_len {rec_len}, name of {} bytes", name.len());
    };
    let header = DirEntryHeader {
        inode: inode.into(),
        rec_len: rec_len.into(),
        name_len,
        file_type: ft,
    };
    block[offset..offset + DE_NAME].copy_from_slice(header.as_bytes());
    block[offset + DE_NAME..offset + DE_NAME + name.len()].copy_from_slice(name);
}

fn new_block() -> Block {
    Box::new([0; BLOCK_SIZE])
}

/// A reader of directory blocks for tests (the unit tests below and the e2fsprogs comparison
/// tests in `tests/`): independent of the writer's helpers, it checks every structural
/// invariant on the way. Not an API.
#[cfg(any(test, feature = "internals"))]
#[allow(missing_docs, clippy::cast_possible_truncation)]
pub mod test_reader {
    use super::*;

    pub fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }
    pub fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// What a directory holds, read back from blocks: the test's own reader, independent of
    /// the writer's helpers, checking every structural invariant on the way.
    /// A leaf read back: (logical block, index hash, entries as (inode, name)).
    pub type Leaf = (u32, u32, Vec<(u32, Vec<u8>)>);

    #[derive(Debug, PartialEq, Eq)]
    pub struct Tree {
        pub levels: u8,
        /// In index order: (logical block, index hash, entries as (inode, name)).
        pub leaves: Vec<Leaf>,
    }

    /// Entries of a leaf block, checking the rec_len chain and the checksum tail.
    pub fn read_leaf(block: &[u8], seed: u32, start: usize) -> Vec<(u32, u8, Vec<u8>)> {
        assert_eq!(
            &block[4084..4092],
            &[0, 0, 0, 0, 12, 0, 0, 0xde],
            "checksum tail header"
        );
        assert_eq!(
            u32_at(block, 4092),
            ext4_chksum(seed, &block[..4084]),
            "leaf checksum"
        );
        let mut out = Vec::new();
        let mut at = start;
        while at < 4084 {
            let rec = u16_at(block, at + 4) as usize;
            let name_len = block[at + 6] as usize;
            assert!(
                rec >= rec_len(name_len) && rec.is_multiple_of(4) && at + rec <= 4084,
                "rec_len at {at}"
            );
            if u32_at(block, at) != 0 {
                out.push((
                    u32_at(block, at),
                    block[at + 7],
                    block[at + 8..at + 8 + name_len].to_vec(),
                ));
            }
            at += rec;
        }
        assert_eq!(at, 4084, "entries end exactly at the tail");
        out
    }

    /// Index entries of a dx block, checking limit and dx_tail checksum.
    pub fn read_index(block: &[u8], at: usize, limit: usize, seed: u32) -> Vec<(u32, u32)> {
        assert_eq!(u16_at(block, at) as usize, limit, "dx limit");
        let count = u16_at(block, at + 2) as usize;
        assert!((1..=limit).contains(&count));
        let mut c = ext4_chksum(seed, &block[..at + count * 8]);
        c = ext4_chksum(c, &block[4088..4092]);
        c = ext4_chksum(c, &[0; 4]);
        assert_eq!(u32_at(block, 4092), c, "dx_tail checksum");
        (0..count)
            .map(|i| {
                (
                    if i == 0 { 0 } else { u32_at(block, at + 8 * i) },
                    u32_at(block, at + 8 * i + 4),
                )
            })
            .collect()
    }

    pub fn read_tree(blocks: &[Box<[u8; 4096]>], self_ino: u32, parent: u32, seed: u32) -> Tree {
        let root = &blocks[0][..];
        assert_eq!(
            (u32_at(root, 0), u16_at(root, 4), root[6], root[7], root[8]),
            (self_ino, 12, 1, 2, b'.')
        );
        assert_eq!(
            (u32_at(root, 12), u16_at(root, 16), root[18], root[19]),
            (parent, 4084, 2, 2)
        );
        assert_eq!(&root[20..22], b"..");
        assert_eq!(
            (u32_at(root, 24), root[28], root[29], root[31]),
            (0, 1, 8, 0),
            "dx_root_info"
        );
        let levels = root[30];
        let mut leaf_refs = Vec::new();
        for (hash, block) in read_index(root, 32, 507, seed) {
            if levels == 0 {
                leaf_refs.push((hash, block));
            } else {
                let node = &blocks[block as usize][..];
                assert_eq!(
                    (u32_at(node, 0), u16_at(node, 4), node[6], node[7]),
                    (0, 4096, 0, 0)
                );
                let inner = read_index(node, 8, 510, seed);
                // Entry 0 of a node has no hash slot: its leaf is indexed under the node's.
                leaf_refs.extend(
                    inner
                        .iter()
                        .enumerate()
                        .map(|(i, &(h, b))| (if i == 0 { hash } else { h }, b)),
                );
            }
        }
        let leaves = leaf_refs
            .iter()
            .map(|&(hash, block)| {
                let entries = read_leaf(&blocks[block as usize][..], seed, 0);
                (
                    block,
                    hash,
                    entries
                        .into_iter()
                        .map(|(ino, _, name)| (ino, name))
                        .collect(),
                )
            })
            .collect();
        Tree { levels, leaves }
    }

    /// Every entry sits in the leaf its hash selects, leaves are sorted, continuation bits
    /// are exactly where a hash run straddles leaves, and the blocks are all referenced once.
    pub fn check_hash_order(tree: &Tree, hash: &HashParams, n_blocks: usize) {
        let mut seen_blocks: Vec<u32> = tree.leaves.iter().map(|l| l.0).collect();
        seen_blocks.sort();
        seen_blocks.dedup();
        assert_eq!(seen_blocks.len(), tree.leaves.len());
        let nodes = if tree.levels == 0 {
            0
        } else {
            tree.leaves.len().div_ceil(510)
        };
        assert_eq!(1 + tree.leaves.len() + nodes, n_blocks);
        let mut prev: Option<(u32, u32, Vec<u8>)> = None;
        for (k, (_, dx_hash, entries)) in tree.leaves.iter().enumerate() {
            assert!(!entries.is_empty(), "leaf {k} empty");
            for (i, (_, name)) in entries.iter().enumerate() {
                let (major, minor) = half_md4_hash(name, hash.seed, hash.signed_chars);
                if let Some(p) = &prev {
                    assert!(
                        (p.0, p.1, &p.2) < (major, minor, name),
                        "entries out of order"
                    );
                    if i == 0 && k > 0 {
                        let continues = p.0 == major;
                        assert_eq!(
                            *dx_hash,
                            if continues { major | 1 } else { major },
                            "leaf {k} index hash"
                        );
                    }
                }
                prev = Some((major, minor, name.clone()));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // fixtures: small, known values
mod tests {
    use super::test_reader::*;
    use super::*;
    use crate::dx_hash::tests::Rng;

    const SEED: u32 = 0x1234_5678;
    const HASH: HashParams = HashParams {
        seed: [0x0403_0201, 0x0807_0605, 0x0c0b_0a09, 0x100f_0e0d],
        signed_chars: true,
    };

    fn entry(name: &[u8], inode: u32, file_type: u8) -> DirEntryIn<'_> {
        DirEntryIn {
            name,
            inode,
            file_type,
        }
    }

    /// `n` names `prefix000123`-style, padded with `x` to `len` bytes, sorted.
    fn numbered_names(n: usize, len: usize) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let mut name = format!("n{i:06}").into_bytes();
                name.resize(len.max(name.len()), b'x');
                name
            })
            .collect();
        names.sort();
        names
    }

    fn entries_for(names: &[Vec<u8>]) -> Vec<DirEntryIn<'_>> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| entry(n, 100 + i as u32, 1))
            .collect()
    }

    #[test]
    fn linear_block_fixture() {
        let names = [&b"a"[..], b"bcd"];
        let entries = [entry(names[0], 12, 1), entry(names[1], 13, 2)];
        let built = build_directory(&entries, 11, 2, &HASH, SEED).unwrap();
        assert!(!built.indexed);
        assert_eq!(built.blocks.len(), 1);
        let block = &built.blocks[0];

        let mut want = vec![0u8; 4096];
        #[rustfmt::skip]
        let head: [u8; 48] = [
            // "."   inode 11     rec_len 12  name_len 1, file_type 2 (dir), name ".", padding
            11, 0, 0, 0,   12, 0,      1, 2,   b'.', 0, 0, 0,
            // ".."  inode 2      rec_len 12  name_len 2, dir
            2, 0, 0, 0,    12, 0,      2, 2,   b'.', b'.', 0, 0,
            // "a"   inode 12     rec_len 12  name_len 1, file_type 1 (regular)
            12, 0, 0, 0,   12, 0,      1, 1,   b'a', 0, 0, 0,
            // "bcd" inode 13     rec_len 4084 - 36 = 4048 (0x0fd0): reaches the tail
            13, 0, 0, 0,   0xd0, 0x0f, 3, 2,   b'b', b'c', b'd', 0,
        ];
        want[..48].copy_from_slice(&head);
        // Tail at 4084: inode 0, rec_len 12, name_len 0, file_type 0xDE, CRC32C of 0..4084.
        want[4084..4092].copy_from_slice(&[0, 0, 0, 0, 12, 0, 0, 0xde]);
        let csum = ext4_chksum(SEED, &want[..4084]);
        want[4092..].copy_from_slice(&csum.to_le_bytes());
        assert_eq!(&block[..], &want[..]);
    }

    #[test]
    fn empty_linear_directory_is_lost_found_block_zero() {
        let built = build_directory(&[], 11, 2, &HASH, SEED).unwrap();
        assert_eq!(built.blocks, empty_directory_blocks(11, 2, 1, SEED));
        let b = &built.blocks[0];
        // ".." spans up to the tail: rec_len 4084 - 12 = 4072 (0x0fe8).
        assert_eq!(
            &b[12..24],
            &[2, 0, 0, 0, 0xe8, 0x0f, 2, 2, b'.', b'.', 0, 0]
        );
    }

    #[test]
    fn empty_directory_blocks_layout() {
        let blocks = empty_directory_blocks(11, 2, 4, SEED);
        assert_eq!(blocks.len(), 4);
        for b in &blocks[1..] {
            // inode 0, rec_len 4084 (0x0ff4), name_len 0, file_type 0.
            assert_eq!(&b[..8], &[0, 0, 0, 0, 0xf4, 0x0f, 0, 0]);
            assert!(b[8..4084].iter().all(|&x| x == 0));
            assert!(read_leaf(&b[..], SEED, 0).is_empty());
        }
    }

    #[test]
    fn linear_up_to_exactly_one_block() {
        // 24 bytes of dots + 4060 bytes of entries fill 4084: 145 entries of rec_len 28.
        let names = numbered_names(145, 20);
        let built = build_directory(&entries_for(&names), 11, 2, &HASH, SEED).unwrap();
        assert!(!built.indexed && built.blocks.len() == 1);
        let got = read_leaf(&built.blocks[0][..], SEED, 24);
        assert_eq!(got.len(), 145);
        assert!(
            got.iter().zip(&names).all(|(g, n)| &g.2 == n),
            "linear keeps the given order"
        );
        // One byte more becomes an htree.
        let names = numbered_names(146, 20);
        assert_eq!(directory_block_count(&entries_for(&names)).unwrap(), 3);
        let built = build_directory(&entries_for(&names), 11, 2, &HASH, SEED).unwrap();
        assert!(built.indexed && built.blocks.len() == 3);
    }

    #[test]
    fn dx_root_header_fixture() {
        let names = numbered_names(400, 20); // 400 * 28 = 11200 bytes -> 4 leaves
        let built = build_directory(&entries_for(&names), 300, 77, &HASH, SEED).unwrap();
        assert!(built.indexed);
        assert_eq!(built.blocks.len(), 5);
        let root = &built.blocks[0];
        #[rustfmt::skip]
        let head: [u8; 40] = [
            // fake "." inode 300 (0x12c), rec_len 12, name_len 1, dir, "."
            0x2c, 0x01, 0, 0,  12, 0,        1, 2,  b'.', 0, 0, 0,
            // fake ".." inode 77, rec_len 4096 - 12 = 4084 (0x0ff4), name_len 2, dir
            77, 0, 0, 0,       0xf4, 0x0f,   2, 2,  b'.', b'.', 0, 0,
            // dx_root_info: reserved_zero, hash_version 1 (half_md4), info_length 8,
            // indirect_levels 0, unused_flags 0
            0, 0, 0, 0,        1, 8, 0, 0,
            // limit (4096 - 32 - 8) / 8 = 507 (0x01fb), count 4, block of entry 0: 1
            0xfb, 0x01, 4, 0,  1, 0, 0, 0,
        ];
        assert_eq!(&root[..40], &head);
        // Entries 1..3: (hash of the leaf's first name, block 2..4).
        for k in 1..4u32 {
            let at = 32 + 8 * k as usize;
            let leaf = read_leaf(&built.blocks[k as usize + 1][..], SEED, 0);
            let (major, _) = half_md4_hash(&leaf[0].2, HASH.seed, true);
            assert_eq!(u32_at(&root[..], at), major);
            assert_eq!(u32_at(&root[..], at + 4), k + 1);
        }
        // Unused entries are zero; dx_tail at 4088: dt_reserved 0, then the checksum.
        assert!(root[64..4088].iter().all(|&b| b == 0));
        assert_eq!(&root[4088..4092], &[0; 4]);
        let mut c = ext4_chksum(SEED, &root[..32 + 4 * 8]);
        c = ext4_chksum(c, &[0; 8]);
        assert_eq!(u32_at(&root[..], 4092), c);

        let tree = read_tree(&built.blocks, 300, 77, SEED);
        check_hash_order(&tree, &HASH, built.blocks.len());
        let mut all: Vec<Vec<u8>> = tree
            .leaves
            .iter()
            .flat_map(|l| l.2.iter().map(|e| e.1.clone()))
            .collect();
        all.sort();
        assert_eq!(all, names);
    }

    #[test]
    fn block_count_matches_build() {
        let mut rng = Rng(7);
        for n in [0usize, 1, 10, 100, 145, 146, 147, 500, 2000, 5000] {
            for len in [1usize, 5, 20, 64, 255] {
                let names: Vec<Vec<u8>> = {
                    let mut v: Vec<Vec<u8>> = (0..n)
                        .map(|i| {
                            let l = 1 + rng.below(len as u64) as usize;
                            let mut name = format!("{i}-").into_bytes();
                            name.resize(l.max(name.len()).min(255), b'q');
                            name
                        })
                        .collect();
                    v.sort();
                    v
                };
                let entries = entries_for(&names);
                let built = build_directory(&entries, 5, 2, &HASH, SEED).unwrap();
                assert_eq!(
                    built.blocks.len(),
                    directory_block_count(&entries).unwrap(),
                    "n {n} len {len}"
                );
                if built.indexed {
                    let tree = read_tree(&built.blocks, 5, 2, SEED);
                    check_hash_order(&tree, &HASH, built.blocks.len());
                    assert_eq!(tree.leaves.iter().map(|l| l.2.len()).sum::<usize>(), n);
                }
            }
        }
    }

    #[test]
    fn hundred_thousand_entries_use_two_levels() {
        let names = numbered_names(100_000, 11);
        let entries = entries_for(&names);
        let built = build_directory(&entries, 12, 2, &HASH, SEED).unwrap();
        assert_eq!(built.blocks.len(), directory_block_count(&entries).unwrap());
        let tree = read_tree(&built.blocks, 12, 2, SEED);
        assert_eq!(tree.levels, 1);
        check_hash_order(&tree, &HASH, built.blocks.len());
        assert_eq!(
            tree.leaves.iter().map(|l| l.2.len()).sum::<usize>(),
            100_000
        );
        // Same input, same bytes.
        assert_eq!(
            build_directory(&entries, 12, 2, &HASH, SEED)
                .unwrap()
                .blocks,
            built.blocks
        );
    }

    #[test]
    fn zero_seed_and_unsigned_hash() {
        let names: Vec<Vec<u8>> = {
            let mut v: Vec<Vec<u8>> = (0..600u32)
                .map(|i| format!("\u{e9}t\u{e9}-{i}").into_bytes())
                .collect();
            v.sort();
            v
        };
        for hash in [
            HashParams {
                seed: [0; 4],
                signed_chars: true,
            },
            HashParams {
                seed: [0; 4],
                signed_chars: false,
            },
        ] {
            let built = build_directory(&entries_for(&names), 5, 2, &hash, SEED).unwrap();
            check_hash_order(
                &read_tree(&built.blocks, 5, 2, SEED),
                &hash,
                built.blocks.len(),
            );
        }
    }

    #[test]
    fn equal_hashes_straddling_leaves_set_the_continuation_bit() {
        // Synthetic hashes: every entry hashes to 0x1000, so every cut splits the run.
        let names = numbered_names(600, 30);
        let entries = entries_for(&names);
        let hashed: Vec<Hashed> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| Hashed {
                major: 0x1000,
                minor: i as u32,
                entry: e,
            })
            .collect();
        let built = build_htree(&hashed, 5, 2, SEED).unwrap();
        let index = read_index(&built.blocks[0][..], 32, 507, SEED);
        assert!(index.len() > 2);
        assert!(index[1..].iter().all(|&(h, _)| h == 0x1001), "{index:x?}");
        // A run that ends exactly at a cut gets no bit: hashes 0x10 * (leaf + 1).
        let total = entries_len(&entries);
        let shape = HtreeShape::for_entries_len(total).unwrap();
        let ranges = leaf_ranges(&hashed, total, shape.leaves);
        let hashed: Vec<Hashed> = hashed
            .iter()
            .enumerate()
            .map(|(i, h)| Hashed {
                major: 0x10 * (1 + ranges.iter().position(|r| r.contains(&i)).unwrap() as u32),
                ..*h
            })
            .collect();
        let built = build_htree(&hashed, 5, 2, SEED).unwrap();
        let index = read_index(&built.blocks[0][..], 32, 507, SEED);
        assert!(
            index[1..]
                .iter()
                .enumerate()
                .all(|(k, &(h, _))| h == 0x10 * (k as u32 + 2)),
            "{index:x?}"
        );
    }

    #[test]
    fn leaf_split_is_never_empty_nor_overfull() {
        let mut rng = Rng(99);
        for round in 0..300 {
            let n = 150 + rng.below(3000) as usize;
            let max = [9u64, 64, 255][round % 3];
            let names: Vec<Vec<u8>> = (0..n)
                .map(|_| vec![b'a'; 1 + rng.below(max) as usize])
                .collect();
            let entries = entries_for(&names);
            let hashed: Vec<Hashed> = entries
                .iter()
                .map(|e| Hashed {
                    major: 0,
                    minor: 0,
                    entry: e,
                })
                .collect();
            let total = entries_len(&entries);
            if fits_linear(total) {
                continue;
            }
            let shape = HtreeShape::for_entries_len(total).unwrap();
            let ranges = leaf_ranges(&hashed, total, shape.leaves);
            assert_eq!(ranges.len(), shape.leaves);
            for r in &ranges {
                assert!(!r.is_empty());
                assert!(entries_len(&entries[r.clone()]) <= TAIL_OFFSET);
            }
            assert_eq!(ranges.last().unwrap().end, n);
        }
    }

    #[test]
    fn shape_limits() {
        assert_eq!(DX_ROOT_LIMIT, 507);
        assert_eq!(DX_NODE_LIMIT, 510);
        assert_eq!(
            HtreeShape::for_entries_len(507 * LEAF_FILL).unwrap(),
            HtreeShape {
                leaves: 507,
                nodes: 0
            }
        );
        assert_eq!(
            HtreeShape::for_entries_len(507 * LEAF_FILL + 1).unwrap(),
            HtreeShape {
                leaves: 508,
                nodes: 1
            }
        );
        let most = 507 * 510 * LEAF_FILL;
        assert_eq!(
            HtreeShape::for_entries_len(most).unwrap(),
            HtreeShape {
                leaves: 507 * 510,
                nodes: 507
            }
        );
    }

    /// Regression: a directory that needed a third htree level used to hit an assertion.
    #[test]
    fn three_levels_are_an_error_not_a_panic() {
        assert_eq!(MAX_DIRECTORY_ENTRY_BYTES, 507 * 510 * LEAF_FILL);
        assert!(HtreeShape::for_entries_len(MAX_DIRECTORY_ENTRY_BYTES).is_ok());
        assert_eq!(
            HtreeShape::for_entries_len(MAX_DIRECTORY_ENTRY_BYTES + 1),
            Err(TooManyEntries {
                bytes: MAX_DIRECTORY_ENTRY_BYTES + 1
            })
        );
    }

    /// The limit through the entry list: 255-byte names (264 bytes each) up to the limit
    /// count, one more does not (the count needs only the names' lengths, not distinct names).
    #[test]
    fn directory_block_count_at_and_past_the_limit() {
        let name = [b'n'; 255];
        let at = MAX_DIRECTORY_ENTRY_BYTES / rec_len(255);
        let mut entries = vec![entry(&name, 12, 1); at];
        let blocks = directory_block_count(&entries).unwrap();
        assert_eq!(blocks, 1 + 507 * 510 + 507);
        entries.push(entry(&name, 12, 1));
        let err = directory_block_count(&entries).unwrap_err();
        assert!(err.bytes > MAX_DIRECTORY_ENTRY_BYTES);
    }

    #[test]
    #[should_panic(expected = "must be 1..=255")]
    fn long_names_are_refused() {
        let name = [b'x'; 256];
        build_directory(&[entry(&name, 12, 1)], 11, 2, &HASH, SEED).unwrap();
    }
}
