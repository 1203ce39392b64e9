//! How big the filesystem must be: what the tree needs in blocks and inodes, and the
//! geometry that holds it with the free space asked for.

use std::collections::HashMap;

use d2l_rootfs::{FileData, Inode, InodeId, InodeKind, Tree};

use crate::dir;
use crate::error::{Error, Result};
use crate::extent::{self, MAX_EXTENT_LEN};
use crate::file_data::FileSource;
use crate::geometry::Geometry;
use crate::journal;
use crate::layout::{BLOCKS_PER_GROUP, BLOCK_SIZE, ROOT_INO};
use crate::numbering::{dir_entries, Numbering};
use crate::xattr;
use crate::SizeSpec;

const BS: u64 = BLOCK_SIZE as u64;
/// Blocks of lost+found, as mke2fs makes it (16 KiB).
pub(crate) const LOST_FOUND_BLOCKS: usize = 4;
/// Longest symlink target stored in the inode itself (a "fast" symlink).
pub(crate) const FAST_SYMLINK_MAX: usize = 59;
/// mke2fs's default bytes-per-inode ratio.
const BYTES_PER_INODE: u64 = 16384;
/// Free space `--size auto` leaves at least.
const AUTO_MIN_FREE: u64 = 512 << 20;
/// A last group smaller than this is dropped (mke2fs drops groups too small to be useful).
const MIN_LAST_GROUP: u32 = 1024;

/// Logical block runs `(first block, count)` holding a file's data.
pub(crate) fn block_runs(file: &FileData) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::with_capacity(file.extents.len());
    for e in &file.extents {
        let first = e.file_offset / BS;
        let end = (e.file_offset + e.len).div_ceil(BS);
        match runs.last_mut() {
            Some((start, count)) if *start + *count >= first => *count = (*count).max(end - *start),
            _ => runs.push((first, end - first)),
        }
    }
    runs
}

/// Largest regular file d2l writes: ext4 numbers a file's blocks with 32 bits and the last
/// number, 2^32 - 1, is `EXT_MAX_BLOCKS` (a sentinel), so a file with extents and 4 KiB blocks
/// holds at most (2^32 - 1) × 4 KiB = 16 TiB - 4 KiB (kernel `fs/ext4/super.c`,
/// `ext4_max_size`; Documentation/filesystems/ext4/blocks.rst, "File size"). A larger file
/// (sparse tar entries can claim any size) is refused with its path.
pub const MAX_FILE_SIZE: u64 = (u32::MAX as u64) * BS;

/// Most names a non-directory inode can have (the kernel's `EXT4_LINK_MAX`, fs/ext4/ext4.h).
/// A file with more hard links is refused with its path.
pub const MAX_HARD_LINKS: u32 = 65000;
/// Longest symlink target (PATH_MAX - 1: what the kernel accepts and e2fsck checks). A longer
/// target is refused with the link's path.
pub const MAX_SYMLINK_TARGET: usize = 4095;
/// Largest device major number Linux has (12 bits, `MAJOR()` of the kernel's `kdev_t`
/// encoding in ext4's `i_block`). A larger one is refused with the device's path.
pub const MAX_DEVICE_MAJOR: u32 = (1 << 12) - 1;
/// Largest device minor number Linux has (20 bits). A larger one is refused with the
/// device's path.
pub const MAX_DEVICE_MINOR: u32 = (1 << 20) - 1;

/// What ext4 (and Linux) cannot store about an inode.
fn check_limits(inode: &Inode) -> std::result::Result<(), String> {
    if inode.as_directory().is_none() && inode.link_count() > MAX_HARD_LINKS {
        return Err(format!(
            "{} hard links; ext4 allows at most {MAX_HARD_LINKS}",
            inode.link_count()
        ));
    }
    if let InodeKind::Directory(dir) = &inode.kind {
        for (name, _) in dir.entries() {
            check_entry_name(name)?;
        }
    }
    match &inode.kind {
        InodeKind::Symlink(target) if target.len() > MAX_SYMLINK_TARGET => Err(format!(
            "symlink target of {} bytes; at most {MAX_SYMLINK_TARGET}",
            target.len()
        )),
        // The kernel reads a target up to its first NUL, and e2fsck calls such a link invalid.
        InodeKind::Symlink(target) if target.is_empty() || target.contains(&0) => Err(format!(
            "symlink target {:?} is empty or holds a NUL byte",
            String::from_utf8_lossy(target)
        )),
        InodeKind::CharDevice(d) | InodeKind::BlockDevice(d)
            if d.major > MAX_DEVICE_MAJOR || d.minor > MAX_DEVICE_MINOR =>
        {
            Err(format!(
                "device number {}:{} is beyond Linux's {MAX_DEVICE_MAJOR}:{MAX_DEVICE_MINOR}",
                d.major, d.minor
            ))
        }
        _ => Ok(()),
    }
}

/// A name ext4 can hold in a directory entry: 1 to 255 bytes, no `/`
/// or NUL, not `.` or `..` (layer application refuses the others; the tree API does not).
fn check_entry_name(name: &[u8]) -> std::result::Result<(), String> {
    let shown = || String::from_utf8_lossy(&name[..name.len().min(64)]).into_owned();
    if name.is_empty() || name.len() > crate::dir::NAME_MAX {
        return Err(format!(
            "holds a name of {} bytes ({:?}...); ext4 names are 1 to {} bytes",
            name.len(),
            shown(),
            crate::dir::NAME_MAX
        ));
    }
    if name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return Err(format!("holds an invalid name {:?}", shown()));
    }
    Ok(())
}

/// The first path naming `id`, for error messages (walks the tree: only on failure).
pub(crate) fn path_of(tree: &Tree, id: InodeId) -> String {
    let mut walk = tree.walk();
    while let Some(entry) = walk.next_entry() {
        if entry.inode == id {
            return String::from_utf8_lossy(entry.path).into_owned();
        }
    }
    "/".into()
}

/// What the tree needs, measured before the filesystem is sized.
pub(crate) struct Needs {
    /// Data, directory, symlink, xattr and extent-tree blocks of all inodes.
    content_blocks: u64,
    /// Inodes in use.
    used_inodes: u64,
    /// Blocks of each directory, by inode number (0 for other inodes): counted here once,
    /// reused by allocation.
    pub dir_blocks: Vec<u32>,
}

pub(crate) fn measure(
    tree: &Tree,
    numbering: &Numbering,
    source: &FileSource<'_>,
) -> Result<Needs> {
    let mut blocks = (LOST_FOUND_BLOCKS + 1) as u64; // lost+found and the resize inode's block
    let mut xattr_blocks: HashMap<Box<[u8; 4096]>, ()> = HashMap::new();
    let mut dir_blocks = vec![0u32; numbering.max_ino as usize + 1];
    if numbering.synthetic_lost_found && tree.lookup(b"lost+found").is_some() {
        return Err(Error::Unsupported {
            path: "lost+found".into(),
            reason: "it is not a directory, and ext4's fsck needs /lost+found to be one".into(),
        });
    }
    for ino in ROOT_INO..=numbering.max_ino {
        let Some(id) = numbering.tree_of.get(ino as usize).copied().flatten() else {
            continue;
        };
        let inode = tree.inode(id);
        check_limits(inode).map_err(|reason| Error::Unsupported {
            path: path_of(tree, id),
            reason,
        })?;
        let placement = xattr::place_xattrs(&inode.xattrs).map_err(|error| Error::Xattr {
            path: path_of(tree, id),
            error,
        })?;
        if let Some(block) = placement.block {
            xattr_blocks.insert(block, ());
        }
        let extents = match &inode.kind {
            InodeKind::File(f) => {
                if f.size > MAX_FILE_SIZE {
                    return Err(Error::FileTooLarge {
                        path: path_of(tree, id),
                        size: f.size,
                    });
                }
                let runs = source.data_runs(f)?;
                blocks += runs.iter().map(|r| r.1).sum::<u64>();
                runs.iter()
                    .map(|r| r.1.div_ceil(u64::from(MAX_EXTENT_LEN)))
                    .sum::<u64>()
            }
            InodeKind::Directory(_) => {
                let n = dir::directory_block_count(&dir_entries(tree, numbering, ino)).map_err(
                    |e| Error::DirectoryTooLarge {
                        path: path_of(tree, id),
                        bytes: e.bytes,
                    },
                )?;
                // At most 1 + 507 × 511 blocks (MAX_DIRECTORY_ENTRY_BYTES).
                dir_blocks[ino as usize] = u32::try_from(n).map_err(|_| {
                    Error::Internal(format!("{n} blocks for directory inode {ino}"))
                })?;
                let n = n as u64;
                blocks += n;
                n.div_ceil(u64::from(MAX_EXTENT_LEN))
            }
            InodeKind::Symlink(target) if target.len() > FAST_SYMLINK_MAX => {
                blocks += 1;
                1
            }
            _ => 0,
        };
        // Metadata areas may split a run once per group it crosses; count generously.
        let extents = usize::try_from(extents.saturating_mul(2)).unwrap_or(usize::MAX);
        blocks += extent::tree_blocks(extents) as u64;
    }
    blocks += xattr_blocks.len() as u64;
    Ok(Needs {
        content_blocks: blocks,
        dir_blocks,
        used_inodes: u64::from(numbering.max_ino),
    })
}

/// The error for an exact size that is too small, naming the smallest size that works.
fn too_small(needs: &Needs, given: u64, source: &FileSource<'_>) -> Error {
    match plan(needs, SizeSpec::Extra(0), source) {
        Ok((geometry, _)) => Error::TooSmall {
            needed: u64::from(geometry.blocks_count) * BS,
            given,
        },
        Err(e) => e,
    }
}

/// Picks the block count and geometry. Data already on the disk (`source`) is counted with
/// the blocks it spans but does not use (backup areas, deleted data), which stay free.
pub(crate) fn plan(
    needs: &Needs,
    size: SizeSpec,
    source: &FileSource<'_>,
) -> Result<(Geometry, u32)> {
    let content = needs.content_blocks + source.waste();
    let free = match size {
        SizeSpec::Auto => (content / 4).max(AUTO_MIN_FREE / BS),
        SizeSpec::Extra(bytes) => bytes.div_ceil(BS),
        SizeSpec::Exact(_) => 0,
    };
    // Leave room for the running system: a quarter more inodes than used, at least 4096,
    // and never fewer than mke2fs's ratio gives.
    let inodes_for = |blocks: u64| {
        (blocks * BS / BYTES_PER_INODE).max(needs.used_inodes + (needs.used_inodes / 4).max(4096))
    };
    let mut blocks = content + free + 4096;
    for _ in 0..64 {
        if let SizeSpec::Exact(bytes) = size {
            blocks = bytes / BS;
        }
        blocks = blocks.next_multiple_of(256); // whole MiB
        if let SizeSpec::Exact(bytes) = size {
            if blocks * BS > bytes {
                blocks -= 256;
            }
        }
        let mut count =
            u32::try_from(blocks).map_err(|_| Error::TooLarge { bytes: blocks * BS })?;
        // A tiny last group is dropped (exact size) or filled out.
        let last = count % BLOCKS_PER_GROUP;
        if last != 0 && last < MIN_LAST_GROUP && count > BLOCKS_PER_GROUP {
            count = match size {
                SizeSpec::Exact(_) => count - last,
                _ => count - last + MIN_LAST_GROUP,
            };
        }
        let geometry = (count > source.end())
            .then(|| Geometry::new(count, inodes_for(u64::from(count)), source.occupied()))
            .flatten();
        let Some(geometry) = geometry else {
            // More inodes than the groups can hold, or stored data beyond them: more groups.
            if matches!(size, SizeSpec::Exact(_)) {
                return Err(too_small(needs, u64::from(count) * BS, source));
            }
            blocks = u64::from(count) + u64::from(BLOCKS_PER_GROUP);
            continue;
        };
        let journal = journal::default_journal_blocks(u64::from(count)).unwrap_or(0);
        let needed = geometry.metadata_blocks() + u64::from(journal) + content;
        match size {
            SizeSpec::Exact(bytes) => {
                if needed > u64::from(count) {
                    return Err(too_small(needs, bytes, source));
                }
                return Ok((geometry, journal));
            }
            _ => {
                if needed + free <= u64::from(count) {
                    return Ok((geometry, journal));
                }
                blocks = needed + free;
            }
        }
    }
    unreachable!("the size converges within a few rounds")
}
