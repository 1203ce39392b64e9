//! Writes a tree as ext4: number the inodes, measure what they need, size and lay out the
//! filesystem, allocate blocks, then write data, directories, inodes, bitmaps, descriptors
//! and superblocks. Blocks that hold nothing are never written (the output is sparse), and
//! only live file data is copied, so deleted lower-layer content cannot reach the image.

use std::collections::HashMap;

use d2l_rootfs::{FileData, InodeKind, Timestamp, Tree};

use crate::alloc::Allocator;
use crate::csum::{ext4_chksum, fs_seed, inode_seed};
use crate::dir::{self, HashParams};
use crate::error::{Error, Result};
use crate::extent::{self, Extent, MAX_EXTENT_LEN};
use crate::file_data::FileSource;
use crate::geometry::{merge, Geometry, Range};
use crate::inode::{encode_inode, InodeFields, FLAG_EXTENTS, FLAG_INDEX};
use crate::journal;
use crate::layout::{
    BLOCKS_PER_GROUP, BLOCK_SIZE, FIRST_INO, INODE_SIZE, JOURNAL_INO, LOST_FOUND_INO, RESIZE_INO,
    ROOT_INO, SUPERBLOCK_OFFSET,
};
use crate::numbering::{dir_entries, number, Numbering};
use crate::resize;
use crate::sizing::{measure, path_of, plan, FAST_SYMLINK_MAX, LOST_FOUND_BLOCKS};
use crate::superblock::{
    encode_group_desc, encode_superblock, GroupDesc, SuperblockFields, BG_INODE_ZEROED,
};
use crate::xattr;
use crate::{Ext4Options, Ext4Report};
use d2l_disk::VirtualDisk;

const BS: u64 = BLOCK_SIZE as u64;

/// Most inodes sharing one xattr block (the kernel's EXT4_XATTR_REFCOUNT_MAX).
const XATTR_REFCOUNT_MAX: u32 = 1024;

/// Where one inode's blocks went.
#[derive(Debug, Clone, Copy, Default)]
struct Placed {
    extents: (u32, u32),
    /// The file's data must be copied to its extents (it is not on the disk there yet).
    copy: bool,
    tree: (u32, u32),
    xattr_block: u32,
    indexed: bool,
}

/// Writes the filesystem; see [`crate::write_ext4`].
pub(crate) fn write(
    tree: &Tree,
    source: FileSource<'_>,
    out: &dyn VirtualDisk,
    options: &Ext4Options,
) -> Result<Ext4Report> {
    let numbering = number(tree);
    let needs = measure(tree, &numbering, &source)?;
    let (geo, journal_blocks) = plan(&needs, options.size, &source)?;
    // Allocation skips metadata and the data already on the disk.
    let mut taken: Vec<Range> = geo.metadata.clone();
    taken.extend_from_slice(source.occupied());
    taken.sort_unstable();
    let taken = merge(taken);
    let seed = fs_seed(&options.uuid);
    let hash = HashParams {
        seed: options.hash_seed,
        signed_chars: true,
    };
    let max_ino = numbering.max_ino;

    let Allocation {
        mut placed,
        extents: all_extents,
        tree_blocks: all_tree,
        contiguous_files,
        journal_extents,
        journal_tree,
        resize_dind,
        xattr_blocks,
        used: data_used,
    } = allocate(
        tree,
        &numbering,
        &geo,
        &taken,
        journal_blocks,
        &needs.dir_blocks,
        options,
        &source,
    )?;

    let out = &Target {
        disk: out,
        base: options.offset,
    };
    let fs_len = options.size.file_len(u64::from(geo.blocks_count) * BS);
    out.disk.grow_to(out.base + fs_len).map_err(Error::Io)?;
    let write_block = |bytes: &[u8], block: u32| out.write_at(bytes, u64::from(block) * BS);

    // File data not on the disk where it belongs yet: only live extents, straight from the
    // content store. From a spill file (all the data) in two halves (by bytes) on two
    // threads, to disjoint blocks; within the disk (a few files) on this thread, so that a
    // format that allocates its clusters in write order gets the same order every time.
    let files: Vec<(&FileData, &[Extent])> = (ROOT_INO..=max_ino)
        .filter_map(|ino| {
            let id = numbering.tree_of.get(ino as usize).copied().flatten()?;
            let file = tree.inode(id).as_file()?;
            if !placed[ino as usize].copy {
                return None;
            }
            let (start, count) = placed[ino as usize].extents;
            Some((file, &all_extents[start as usize..(start + count) as usize]))
        })
        .collect();
    let total: u64 = files.iter().map(|(f, _)| f.stored_bytes()).sum();
    let mut running = 0;
    let split = files
        .iter()
        .position(|(f, _)| {
            running += f.stored_bytes();
            running * 2 >= total
        })
        .map_or(files.len(), |i| i + 1);
    let (first, second) = match source {
        FileSource::Spill(_) => files.split_at(split),
        FileSource::Placed(_) => (&files[..], &files[..0]),
    };
    let copy_all = |part: &[(&FileData, &[Extent])]| -> Result<()> {
        part.iter()
            .try_for_each(|(file, extents)| source.copy_file(file, extents, out.disk, out.base))
    };
    std::thread::scope(|scope| {
        let helper = scope.spawn(|| copy_all(second));
        let here = copy_all(first);
        let there = helper
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("copy thread panicked".into())));
        here.and(there)
    })?;

    // Directories and slow symlinks.
    for ino in ROOT_INO..=max_ino {
        let tree_id = numbering.tree_of.get(ino as usize).copied().flatten();
        let p = placed[ino as usize];
        let blocks =
            block_numbers(&all_extents[p.extents.0 as usize..(p.extents.0 + p.extents.1) as usize]);
        let iseed = inode_seed(seed, ino, 0);
        match tree_id.map(|id| &tree.inode(id).kind) {
            None if ino == LOST_FOUND_INO => {
                for (nr, block) in blocks.iter().zip(dir::empty_directory_blocks(
                    ino,
                    ROOT_INO,
                    LOST_FOUND_BLOCKS,
                    iseed,
                )) {
                    write_block(&block[..], *nr)?;
                }
            }
            Some(InodeKind::Directory(_)) => {
                let entries = dir_entries(tree, &numbering, ino);
                let built = dir::build_directory(
                    &entries,
                    ino,
                    numbering.parent_of[ino as usize],
                    &hash,
                    iseed,
                )
                .map_err(|e| Error::DirectoryTooLarge {
                    path: path_of(tree, tree_id.expect("a tree directory")),
                    bytes: e.bytes,
                })?;
                placed[ino as usize].indexed = built.indexed;
                for (nr, block) in blocks.iter().zip(built.blocks) {
                    write_block(&block[..], *nr)?;
                }
            }
            Some(InodeKind::Symlink(target)) if target.len() > FAST_SYMLINK_MAX => {
                let mut block = vec![0u8; BLOCK_SIZE as usize];
                block[..target.len()].copy_from_slice(target);
                write_block(&block, blocks[0])?;
            }
            _ => {}
        }
    }

    // Shared xattr blocks.
    for (mut block, nr, refcount) in xattr_blocks {
        xattr::finish_block(&mut block, refcount, u64::from(nr), seed);
        write_block(&block[..], nr)?;
    }

    // Journal and resize inode contents.
    let journal_size = u64::from(journal_blocks) * BS;
    let (journal_root, journal_tree_blocks) = extent::build(
        &journal_extents,
        &journal_tree,
        inode_seed(seed, JOURNAL_INO, 0),
    );
    for (nr, block) in &journal_tree_blocks {
        write_block(&block[..], *nr)?;
    }
    if let Some(first) = journal_extents.first() {
        write_block(
            &journal::journal_superblock(journal_blocks, &options.uuid)[..],
            first.physical,
        )?;
    }
    let group_count = index(geo.groups.len())?;
    let resize_inode = resize::resize_inode(
        geo.blocks_count,
        group_count,
        geo.gdt_blocks,
        geo.reserved_gdt_blocks,
        resize_dind,
    );
    for (nr, block) in resize_inode.blocks() {
        write_block(&block[..], nr)?;
    }

    // Inode tables, one block of 16 inodes at a time; blocks of unused inodes stay holes.
    let ipg = geo.inodes_per_group;
    let per_block = BLOCK_SIZE / INODE_SIZE;
    let mut table_block = vec![0u8; BLOCK_SIZE as usize];
    let mut used_dirs = vec![0u16; geo.groups.len()];
    let last_table_ino = max_ino.next_multiple_of(per_block);
    for ino in 1..=last_table_ino {
        let slot = ((ino - 1) % per_block) as usize * INODE_SIZE as usize;
        let in_tree = ino <= max_ino
            && (ino == LOST_FOUND_INO
                || numbering
                    .tree_of
                    .get(ino as usize)
                    .copied()
                    .flatten()
                    .is_some());
        let fields = if ino == RESIZE_INO {
            Some(InodeFields {
                mode: resize::RESIZE_INODE_MODE,
                links: resize::RESIZE_INODE_LINKS,
                flags: resize::RESIZE_INODE_FLAGS,
                size: resize_inode.size,
                blocks_512: resize_inode.blocks_512,
                block: words_to_bytes(&resize_inode.i_block),
                time: ts(options.timestamp),
                ..InodeFields::default()
            })
        } else if ino == JOURNAL_INO && journal_blocks > 0 {
            Some(InodeFields {
                mode: 0o100600,
                links: 1,
                size: journal_size,
                blocks_512: (u64::from(journal_blocks) + journal_tree.len() as u64) * (BS / 512),
                flags: FLAG_EXTENTS,
                block: journal_root,
                time: ts(options.timestamp),
                ..InodeFields::default()
            })
        } else if in_tree {
            let p = placed[ino as usize];
            let f = inode_fields(
                tree,
                &numbering,
                ino,
                p,
                &all_extents,
                &all_tree,
                seed,
                options.timestamp,
                &mut |nr, block: &[u8]| write_block(block, nr),
            )?;
            if f.mode & 0o170000 == 0o040000 {
                used_dirs[((ino - 1) / ipg) as usize] += 1;
            }
            Some(f)
        } else if ino < FIRST_INO {
            // Other reserved inodes: empty, with a valid checksum.
            Some(InodeFields::default())
        } else {
            None
        };
        if let Some(f) = fields {
            table_block[slot..slot + INODE_SIZE as usize]
                .copy_from_slice(&encode_inode(&f, ino, seed));
        }
        if ino % per_block == 0 {
            if table_block.iter().any(|&b| b != 0) {
                let group = &geo.groups[((ino - 1) / ipg) as usize];
                let index = ((ino - 1) % ipg) / per_block;
                write_block(&table_block, group.inode_table + index)?;
            }
            table_block.fill(0);
        }
    }

    let (descs, free_blocks_total, free_inodes_total) =
        write_groups(&geo, &data_used, max_ino, &used_dirs, seed, out)?;

    let mut journal_backup = [0u32; 17];
    for (i, chunk) in journal_root.chunks_exact(4).enumerate() {
        journal_backup[i] = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
    }
    // i_size_high and i_size_lo: the two halves of the journal's size.
    #[allow(clippy::cast_possible_truncation)]
    {
        journal_backup[15] = (journal_size >> 32) as u32;
        journal_backup[16] = journal_size as u32;
    }
    let fields = SuperblockFields {
        inodes_count: geo.inodes_count(),
        blocks_count: geo.blocks_count,
        // At most blocks_count and inodes_count, both u32.
        free_blocks: u32::try_from(free_blocks_total).map_err(|_| internal("free blocks"))?,
        free_inodes: u32::try_from(free_inodes_total).map_err(|_| internal("free inodes"))?,
        inodes_per_group: ipg,
        // At most 1024 (resize::reserved_gdt_blocks).
        reserved_gdt_blocks: u16::try_from(geo.reserved_gdt_blocks)
            .map_err(|_| internal("reserved GDT blocks"))?,
        uuid: options.uuid,
        volume_name: options.label,
        hash_seed: options.hash_seed,
        time: options.timestamp,
        journal_backup,
        has_journal: journal_blocks > 0,
    };
    write_superblocks(&geo, &descs, &fields, out)?;

    Ok(Ext4Report {
        size_bytes: u64::from(geo.blocks_count) * BS,
        blocks_count: geo.blocks_count,
        free_blocks: free_blocks_total,
        inodes_count: geo.inodes_count(),
        used_inodes: max_ino,
        contiguous_files,
    })
}

/// Writes block and inode bitmaps; returns the group descriptor table (padded to whole
/// blocks) and the free block and inode totals.
fn write_groups(
    geo: &Geometry,
    data_used: &[Range],
    max_ino: u32,
    used_dirs: &[u16],
    seed: u32,
    out: &Target,
) -> Result<(Vec<u8>, u64, u64)> {
    let ipg = geo.inodes_per_group;
    let write_block = |bytes: &[u8], block: u32| out.write_at(bytes, u64::from(block) * BS);
    let mut all_used: Vec<Range> = geo.metadata.clone();
    all_used.extend_from_slice(data_used);
    all_used.sort_unstable();
    let all_used = merge(all_used);
    let mut next_used = 0;
    let mut descs = Vec::with_capacity(geo.groups.len());
    let mut free_blocks_total = 0u64;
    let mut free_inodes_total = 0u64;
    for (g, group) in geo.groups.iter().enumerate() {
        let mut bitmap = vec![0u8; BLOCK_SIZE as usize];
        let mut used = 0u32;
        let group_end = group.start + group.blocks;
        while let Some(r) = all_used.get(next_used) {
            if r.start >= group_end {
                break;
            }
            let from = r.start.max(group.start);
            let to = r.end().min(group_end);
            for b in from..to {
                let i = b - group.start;
                bitmap[(i / 8) as usize] |= 1 << (i % 8);
            }
            used += to.saturating_sub(from);
            if r.end() > group_end {
                break; // continues into the next group
            }
            next_used += 1;
        }
        // Bits past the end of a short last group are padding, set.
        for i in group.blocks..BLOCKS_PER_GROUP {
            bitmap[(i / 8) as usize] |= 1 << (i % 8);
        }
        let free_blocks = group.blocks - used;
        let g = index(g)?;
        let first_ino = g * ipg + 1;
        let used_inodes = max_ino.saturating_sub(first_ino - 1).min(ipg);
        let mut ibitmap = vec![0u8; BLOCK_SIZE as usize];
        for i in 0..used_inodes {
            ibitmap[(i / 8) as usize] |= 1 << (i % 8);
        }
        // Bits past the group's inodes are padding, set as mke2fs does.
        for i in ipg..BLOCK_SIZE * 8 {
            ibitmap[(i / 8) as usize] |= 1 << (i % 8);
        }
        write_block(&bitmap, group.block_bitmap)?;
        write_block(&ibitmap, group.inode_bitmap)?;
        // Per-group counts are at most 32768 blocks and inodes: they fit 16 bits. The
        // bitmap checksums keep the crc32c's low 16 bits (group_descr.rst,
        // bg_block_bitmap_csum_lo): without 64bit the high halves are not stored.
        let count16 = |n: u32| u16::try_from(n).map_err(|_| internal("group count"));
        #[allow(clippy::cast_possible_truncation)]
        let desc = GroupDesc {
            block_bitmap: group.block_bitmap,
            inode_bitmap: group.inode_bitmap,
            inode_table: group.inode_table,
            free_blocks: count16(free_blocks)?,
            free_inodes: count16(ipg - used_inodes)?,
            used_dirs: used_dirs[g as usize],
            flags: BG_INODE_ZEROED,
            block_bitmap_csum: ext4_chksum(seed, &bitmap) as u16,
            inode_bitmap_csum: ext4_chksum(seed, &ibitmap[..(ipg / 8) as usize]) as u16,
            itable_unused: count16(ipg - used_inodes)?,
        };
        free_blocks_total += u64::from(free_blocks);
        free_inodes_total += u64::from(ipg - used_inodes);
        descs.extend_from_slice(&encode_group_desc(&desc, g, seed));
    }
    descs.resize((geo.gdt_blocks * BLOCK_SIZE) as usize, 0);
    Ok((descs, free_blocks_total, free_inodes_total))
}

/// Writes the superblock and the group descriptor table in group 0 and every backup group.
fn write_superblocks(
    geo: &Geometry,
    descs: &[u8],
    fields: &SuperblockFields,
    out: &Target,
) -> Result<()> {
    let write_at = |bytes: &[u8], offset: u64| out.write_at(bytes, offset);
    for (g, group) in geo.groups.iter().enumerate() {
        let Some(backup) = group.backup else { continue };
        // s_block_group_nr is 16 bits; e2fsprogs (lib/ext2fs/closefs.c, write_primary_
        // superblock's callers) clamps larger group numbers to 65535, and so does d2l.
        let sb = encode_superblock(fields, u16::try_from(g).unwrap_or(u16::MAX));
        if g == 0 {
            write_at(&sb, SUPERBLOCK_OFFSET)?;
        } else {
            let mut block = vec![0u8; BLOCK_SIZE as usize];
            block[..sb.len()].copy_from_slice(&sb);
            write_at(&block, u64::from(backup.start) * BS)?;
        }
        write_at(descs, (u64::from(backup.start) + 1) * BS)?;
    }

    Ok(())
}

/// Where the filesystem goes: a disk, from byte `base` on (a partition in a disk image).
struct Target<'a> {
    disk: &'a dyn VirtualDisk,
    base: u64,
}

impl Target<'_> {
    /// Writes `bytes` at `offset` from the filesystem's start.
    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        self.disk
            .write_at(bytes, self.base + offset)
            .map_err(Error::Io)
    }
}

/// Where everything outside the fixed metadata went.
struct Allocation {
    /// Per inode number.
    placed: Vec<Placed>,
    /// Extents of all inodes, each inode's a slice given by `Placed::extents`.
    extents: Vec<Extent>,
    /// Extent tree blocks of all inodes, sliced by `Placed::tree`.
    tree_blocks: Vec<u32>,
    contiguous_files: Vec<crate::ContiguousFile>,
    journal_extents: Vec<Extent>,
    journal_tree: Vec<u32>,
    resize_dind: u32,
    /// Distinct external xattr blocks: contents (checksum not yet set), number, references.
    xattr_blocks: Vec<(Box<[u8; 4096]>, u32, u32)>,
    /// Every block in use outside the fixed metadata, sorted and merged.
    used: Vec<Range>,
}

/// Allocates every block outside the fixed metadata (`taken` also holds the data already on
/// the disk), in the order the writes will go.
#[allow(clippy::too_many_arguments)]
fn allocate(
    tree: &Tree,
    numbering: &Numbering,
    geo: &Geometry,
    taken: &[Range],
    journal_blocks: u32,
    dir_blocks: &[u32],
    options: &Ext4Options,
    source: &FileSource<'_>,
) -> Result<Allocation> {
    let max_ino = numbering.max_ino;
    // Allocation, in write order: files that must be contiguous (first, in the large gap after
    // group 0's metadata), journal, resize block, then every inode in number order. Files
    // already on the disk keep their blocks.
    let mut alloc = Allocator {
        metadata: taken,
        next_meta: 0,
        cursor: 0,
        limit: geo.blocks_count,
        given: Vec::new(),
    };
    let mut placed = vec![Placed::default(); max_ino as usize + 1];
    let mut in_place: Vec<Range> = Vec::new();
    let mut all_extents: Vec<Extent> = Vec::new();
    let mut all_tree: Vec<u32> = Vec::new();
    let mut contiguous_files = Vec::with_capacity(options.contiguous.len());
    for path in &options.contiguous {
        let shown = || String::from_utf8_lossy(path).into_owned();
        let fail = |reason: &str| Error::Contiguous {
            path: shown(),
            reason: reason.to_string(),
        };
        let id = tree
            .lookup(path)
            .ok_or_else(|| fail("no such file in the image"))?;
        let file = tree
            .inode(id)
            .as_file()
            .ok_or_else(|| fail("not a regular file"))?;
        let ino = numbering.ino_of[id.index()];
        let count = u32::try_from(file.size.div_ceil(BS)).map_err(|_| fail("too large"))?;
        if placed[ino as usize].extents.1 > 0 || count == 0 {
            return Err(fail(if count == 0 {
                "the file is empty"
            } else {
                "named twice"
            }));
        }
        let start = index(all_extents.len())?;
        // Already in one run of blocks on the disk, holes none: kept there.
        if let Some(extents) = source.in_place(file).filter(|e| {
            e.first().is_some_and(|f| f.logical == 0)
                && e.windows(2)
                    .all(|w| w[0].physical + w[0].len == w[1].physical)
                && e.iter().map(|x| x.len).sum::<u32>() == count
                && e.windows(2)
                    .all(|w| w[0].logical + w[0].len == w[1].logical)
        }) {
            let first = extents[0].physical;
            in_place.push(Range {
                start: first,
                len: count,
            });
            all_extents.extend(extents);
            placed[ino as usize].extents = (start, index(all_extents.len())? - start);
            contiguous_files.push(crate::ContiguousFile {
                path: path.clone(),
                ino,
                first_block: first,
                blocks: count,
            });
            continue;
        }
        let first = alloc
            .contiguous(count)
            .ok_or_else(|| fail("no free run of blocks that long"))?;
        let mut logical = 0;
        while logical < count {
            let len = (count - logical).min(MAX_EXTENT_LEN);
            all_extents.push(Extent {
                logical,
                physical: first + logical,
                len,
            });
            logical += len;
        }
        placed[ino as usize].extents = (start, index(all_extents.len())? - start);
        placed[ino as usize].copy = true;
        contiguous_files.push(crate::ContiguousFile {
            path: path.clone(),
            ino,
            first_block: first,
            blocks: count,
        });
    }
    let mut journal_extents = Vec::new();
    if journal_blocks > 0 {
        alloc.extents(0, u64::from(journal_blocks), &mut journal_extents)?;
    }
    let journal_tree = alloc.blocks(index(extent::tree_blocks(journal_extents.len()))?)?;
    let resize_dind = alloc.blocks(1)?[0];
    // Identical external xattr blocks are shared, up to the kernel's limit of references.
    let mut xattr_blocks: Vec<(Box<[u8; 4096]>, u32, u32)> = Vec::new();
    let mut xattr_open: HashMap<Box<[u8; 4096]>, usize> = HashMap::new();
    for ino in ROOT_INO..=max_ino {
        let tree_id = numbering.tree_of.get(ino as usize).copied().flatten();
        if tree_id.is_none() && ino != LOST_FOUND_INO {
            continue;
        }
        let pinned = placed[ino as usize].extents;
        let mut copy = placed[ino as usize].copy;
        let start = if pinned.1 > 0 {
            pinned.0
        } else {
            index(all_extents.len())?
        };
        match tree_id.map(|id| &tree.inode(id).kind) {
            Some(InodeKind::File(_)) if pinned.1 > 0 => {}
            Some(InodeKind::File(f)) => match source.in_place(f) {
                Some(extents) => {
                    in_place.extend(extents.iter().map(|e| Range {
                        start: e.physical,
                        len: e.len,
                    }));
                    all_extents.extend(extents);
                }
                None => {
                    for (first, count) in source.data_runs(f)? {
                        alloc.extents(first, count, &mut all_extents)?;
                    }
                    copy = true;
                }
            },
            Some(InodeKind::Directory(_)) | None => {
                let count = if ino == LOST_FOUND_INO && numbering.synthetic_lost_found {
                    LOST_FOUND_BLOCKS
                } else {
                    dir_blocks[ino as usize] as usize
                };
                alloc.extents(0, count as u64, &mut all_extents)?;
            }
            Some(InodeKind::Symlink(target)) if target.len() > FAST_SYMLINK_MAX => {
                alloc.extents(0, 1, &mut all_extents)?;
            }
            Some(_) => {}
        }
        let count = if pinned.1 > 0 {
            pinned.1
        } else {
            index(all_extents.len())? - start
        };
        let tree_start = index(all_tree.len())?;
        all_tree.extend(alloc.blocks(index(extent::tree_blocks(count as usize))?)?);
        let mut xattr_block = 0;
        if let Some(id) = tree_id {
            let placement =
                xattr::place_xattrs(&tree.inode(id).xattrs).map_err(|error| Error::Xattr {
                    path: path_of(tree, id),
                    error,
                })?;
            if let Some(block) = placement.block {
                let index = match xattr_open.get(&block) {
                    Some(&i) if xattr_blocks[i].2 < XATTR_REFCOUNT_MAX => i,
                    _ => {
                        let nr = alloc.blocks(1)?[0];
                        xattr_blocks.push((block.clone(), nr, 0));
                        xattr_open.insert(block, xattr_blocks.len() - 1);
                        xattr_blocks.len() - 1
                    }
                };
                xattr_blocks[index].2 += 1;
                xattr_block = xattr_blocks[index].1;
            }
        }
        placed[ino as usize] = Placed {
            extents: (start, count),
            copy,
            tree: (tree_start, index(all_tree.len())? - tree_start),
            xattr_block,
            indexed: false,
        };
    }
    let mut used = alloc.given;
    used.extend(in_place);
    used.sort_unstable();
    Ok(Allocation {
        placed,
        extents: all_extents,
        tree_blocks: all_tree,
        contiguous_files,
        journal_extents,
        journal_tree,
        resize_dind,
        xattr_blocks,
        used: merge(used),
    })
}

/// A count or index of this filesystem's inodes, blocks, extents or groups: each fits 32 bits
/// (block numbers are 32-bit without the 64bit feature, and every extent holds a block).
fn index(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| internal("more than 2^32 entries"))
}

fn internal(what: &str) -> Error {
    Error::Internal(format!("{what} beyond the on-disk field"))
}

fn ts(seconds: u32) -> Timestamp {
    Timestamp {
        seconds: i64::from(seconds),
        nanoseconds: 0,
    }
}

fn words_to_bytes(words: &[u32; 15]) -> [u8; 60] {
    let mut b = [0u8; 60];
    for (i, w) in words.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    b
}

fn block_numbers(extents: &[Extent]) -> Vec<u32> {
    extents
        .iter()
        .flat_map(|e| e.physical..e.physical + e.len)
        .collect()
}

/// The fields of a tree inode (or the synthetic lost+found), writing its extent tree blocks.
#[allow(clippy::too_many_arguments)]
fn inode_fields(
    tree: &Tree,
    numbering: &Numbering,
    ino: u32,
    p: Placed,
    all_extents: &[Extent],
    all_tree: &[u32],
    seed: u32,
    timestamp: u32,
    write_block: &mut dyn FnMut(u32, &[u8]) -> Result<()>,
) -> Result<InodeFields> {
    let extents = &all_extents[p.extents.0 as usize..(p.extents.0 + p.extents.1) as usize];
    let tree_blocks = &all_tree[p.tree.0 as usize..(p.tree.0 + p.tree.1) as usize];
    let mut f = InodeFields::default();
    let data_blocks: u64 =
        extents.iter().map(|e| u64::from(e.len)).sum::<u64>() + tree_blocks.len() as u64;
    let mut use_extents = |f: &mut InodeFields| -> Result<()> {
        let (root, blocks) = extent::build(extents, tree_blocks, inode_seed(seed, ino, 0));
        for (nr, block) in blocks {
            write_block(nr, &block[..])?;
        }
        f.block = root;
        f.flags |= FLAG_EXTENTS;
        Ok(())
    };
    let Some(id) = numbering.tree_of.get(ino as usize).copied().flatten() else {
        // lost+found made by d2l.
        f.mode = 0o040700;
        f.links = 2;
        f.size = data_blocks * BS;
        f.blocks_512 = data_blocks * (BS / 512);
        f.time = ts(timestamp);
        use_extents(&mut f)?;
        return Ok(f);
    };
    let inode = tree.inode(id);
    // S_IFMT bits (at most 0o170000) and the 12 permission bits: 16 bits.
    #[allow(clippy::cast_possible_truncation)]
    let mode = (inode.file_type_bits() | u32::from(inode.mode)) as u16;
    f.mode = mode;
    f.uid = inode.uid;
    f.gid = inode.gid;
    f.time = inode.mtime;
    match &inode.kind {
        InodeKind::Directory(d) => {
            let mut subdirs = d
                .entries()
                .filter(|(_, c)| tree.inode(*c).as_directory().is_some())
                .count() as u64;
            if ino == ROOT_INO && numbering.synthetic_lost_found {
                subdirs += 1;
            }
            // dir_nlink: a directory with too many subdirectories counts 1.
            f.links = u16::try_from(2 + subdirs)
                .ok()
                .filter(|&n| n < 65000)
                .unwrap_or(1);
            f.size = data_blocks.saturating_sub(tree_blocks.len() as u64) * BS;
            if p.indexed {
                f.flags |= FLAG_INDEX;
            }
            use_extents(&mut f)?;
        }
        InodeKind::File(file) => {
            f.links = inode.link_count().min(65000) as u16;
            f.size = file.size;
            use_extents(&mut f)?;
        }
        InodeKind::Symlink(target) => {
            f.links = inode.link_count().min(65000) as u16;
            f.size = target.len() as u64;
            if target.len() <= FAST_SYMLINK_MAX {
                f.block[..target.len()].copy_from_slice(target);
            } else {
                use_extents(&mut f)?;
            }
        }
        InodeKind::CharDevice(dev) | InodeKind::BlockDevice(dev) => {
            f.links = inode.link_count().min(65000) as u16;
            // Old encoding when it fits in 8+8 bits, else the new one in i_block[1], as the
            // kernel's ext4_write_inode does.
            if dev.major < 256 && dev.minor < 256 {
                f.block[0..4].copy_from_slice(&((dev.major << 8) | dev.minor).to_le_bytes());
            } else {
                let new = (dev.minor & 0xff) | (dev.major << 8) | ((dev.minor & !0xff) << 12);
                f.block[4..8].copy_from_slice(&new.to_le_bytes());
            }
        }
        InodeKind::Fifo => {
            f.links = inode.link_count().min(65000) as u16;
        }
    }
    let placement = xattr::place_xattrs(&inode.xattrs).map_err(|error| Error::Xattr {
        path: path_of(tree, id),
        error,
    })?;
    f.ibody_xattrs = placement.ibody;
    f.file_acl = p.xattr_block;
    let xattr_blocks = u64::from(p.xattr_block != 0);
    f.blocks_512 = (data_blocks + xattr_blocks) * (BS / 512);
    Ok(f)
}
