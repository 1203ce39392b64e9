//! Where file data comes from and how it reaches its blocks: copied from a spill file, or
//! already on the disk where a [`DiskStore`](crate::DiskStore) put it, in which case a file
//! keeps those blocks as its extents and is copied only when it cannot (runs sharing a block,
//! or a file that must be contiguous and is not).

use d2l_rootfs::{FileData, SpillReader};

use crate::disk_store::PlacedData;
use crate::error::{Error, Result};
use crate::extent::{Extent, MAX_EXTENT_LEN};
use crate::geometry::Range;
use crate::layout::BLOCK_SIZE;
use crate::sizing::block_runs;
use d2l_disk::bytes::is_zero;
use d2l_disk::VirtualDisk;
use std::os::unix::fs::FileExt;

const BS: u64 = BLOCK_SIZE as u64;
/// Buffer for copies within the disk.
const COPY_BUFFER: u64 = 1 << 20;
const COPY_BUFFER_LEN: usize = 1 << 20;
const _: () = assert!(COPY_BUFFER_LEN as u64 == COPY_BUFFER);
const BLOCK_LEN: usize = BLOCK_SIZE as usize;

/// The source of every regular file's bytes.
#[derive(Clone, Copy)]
pub(crate) enum FileSource<'a> {
    /// In a spill file, at the runs' store offsets.
    Spill(&'a SpillReader),
    /// On the disk already, at the data-space offsets a `DiskStore` handed out.
    Placed(&'a PlacedData),
}

impl FileSource<'_> {
    /// Blocks that stored data occupies before anything is allocated (sorted, merged).
    pub fn occupied(&self) -> &[Range] {
        match self {
            FileSource::Spill(_) => &[],
            FileSource::Placed(placed) => &placed.live,
        }
    }

    /// First block after all stored data: the filesystem must reach at least this far.
    pub fn end(&self) -> u32 {
        match self {
            FileSource::Spill(_) => 0,
            FileSource::Placed(placed) => placed.end,
        }
    }

    /// Blocks that stored data spans without holding live data (backup areas, deleted data).
    pub fn waste(&self) -> u64 {
        match self {
            FileSource::Spill(_) => 0,
            FileSource::Placed(placed) => u64::from(placed.end).saturating_sub(placed.live_blocks),
        }
    }

    /// The extents of a file whose data already lies where the filesystem can keep it.
    pub fn in_place(&self, file: &FileData) -> Option<Vec<Extent>> {
        let FileSource::Placed(placed) = self else {
            return None;
        };
        let mut extents: Vec<Extent> = Vec::new();
        let mut next_logical = 0u64;
        for run in file.extents.iter().filter(|r| r.len > 0) {
            if run.store_offset % BS != run.file_offset % BS {
                return None;
            }
            let first = run.file_offset / BS;
            if first < next_logical {
                return None; // shares a block with the run before it
            }
            let count = (run.file_offset % BS + run.len).div_ceil(BS);
            next_logical = first + count;
            // Zero blocks the store left out stay holes: no extent maps them.
            let stored = placed.holes.segments(run.store_offset / BS, count);
            for (segment, data) in stored.iter().filter_map(|s| Some((s, s.data?))) {
                let mut logical = u32::try_from(first + segment.offset).ok()?;
                for r in placed.space.runs(data, segment.len)? {
                    let mut physical = r.start;
                    let mut left = r.len;
                    while left > 0 {
                        match extents.last_mut() {
                            Some(e)
                                if e.logical + e.len == logical
                                    && e.physical + e.len == physical
                                    && e.len < MAX_EXTENT_LEN =>
                            {
                                let len = left.min(MAX_EXTENT_LEN - e.len);
                                e.len += len;
                                logical += len;
                                physical += len;
                                left -= len;
                            }
                            _ => {
                                let len = left.min(MAX_EXTENT_LEN);
                                extents.push(Extent {
                                    logical,
                                    physical,
                                    len,
                                });
                                logical += len;
                                physical += len;
                                left -= len;
                            }
                        }
                    }
                }
            }
        }
        Some(extents)
    }

    /// Logical block runs `(first block, count)` of a file that need blocks of their own:
    /// [`block_runs`] without the whole blocks of zeros, which stay holes. From a spill file
    /// this reads the file's data.
    pub fn data_runs(&self, file: &FileData) -> Result<Vec<(u64, u64)>> {
        let mut zeros: Vec<u64> = Vec::new();
        let spill = match self {
            FileSource::Placed(placed) if placed.holes.is_empty() => return Ok(block_runs(file)),
            FileSource::Placed(placed) => {
                for run in file.extents.iter().filter(|r| r.len > 0) {
                    let first = run.file_offset / BS;
                    let count = (run.file_offset % BS + run.len).div_ceil(BS);
                    for segment in placed.holes.segments(run.store_offset / BS, count) {
                        if segment.data.is_none() {
                            let at = first + segment.offset;
                            zeros.extend(at..at + segment.len);
                        }
                    }
                }
                return Ok(without(block_runs(file), &zeros));
            }
            FileSource::Spill(spill) => spill,
        };
        let mut buf = vec![0u8; COPY_BUFFER_LEN];
        for run in &file.extents {
            // The blocks that lie wholly inside this run.
            let mut block = run.file_offset.div_ceil(BS);
            let end = (run.file_offset + run.len) / BS;
            while block < end {
                let n = (end - block).min(COPY_BUFFER / BS);
                let bytes = &mut buf[..BLOCK_LEN * usize::try_from(n).expect("a buffer's blocks")];
                let from = run.store_offset + (block * BS - run.file_offset);
                spill
                    .as_file()
                    .read_exact_at(bytes, from)
                    .map_err(Error::Io)?;
                for (i, data) in bytes.chunks_exact(BLOCK_LEN).enumerate() {
                    if is_zero(data) {
                        zeros.push(block + i as u64);
                    }
                }
                block += n;
            }
        }
        Ok(without(block_runs(file), &zeros))
    }

    /// Copies a file's stored runs to `extents` (its new blocks) on `disk`, whose filesystem
    /// starts at byte `base`; on the disk, the old blocks are discarded afterwards.
    pub fn copy_file(
        &self,
        file: &FileData,
        extents: &[Extent],
        disk: &dyn VirtualDisk,
        base: u64,
    ) -> Result<()> {
        for run in &file.extents {
            let mut pos = run.file_offset;
            let end = run.file_offset + run.len;
            while pos < end {
                let block = pos / BS;
                let i = extents.partition_point(|e| u64::from(e.logical + e.len) <= block);
                let Some(e) = extents.get(i).filter(|e| u64::from(e.logical) <= block) else {
                    // A block of zeros left a hole (`data_runs`): nothing to copy.
                    pos = ((block + 1) * BS).min(end);
                    continue;
                };
                let extent_end = u64::from(e.logical + e.len) * BS;
                let chunk = (end - pos).min(extent_end - pos);
                let target =
                    base + (u64::from(e.physical) + block - u64::from(e.logical)) * BS + pos % BS;
                let from = run.store_offset + (pos - run.file_offset);
                match self {
                    FileSource::Spill(spill) => disk
                        .copy_from(spill.as_file(), from, chunk, target)
                        .map_err(Error::Io)?,
                    FileSource::Placed(placed) => copy_within(placed, disk, from, chunk, target)?,
                }
                pos += chunk;
            }
        }
        if let FileSource::Placed(placed) = self {
            for run in file.extents.iter().filter(|r| r.len > 0) {
                let first = run.store_offset / BS;
                let blocks = (run.store_offset + run.len).div_ceil(BS) - first;
                for (at, _, len) in pieces(placed, first * BS, blocks * BS)? {
                    disk.discard(at, len as u64).map_err(Error::Io)?;
                }
            }
        }
        Ok(())
    }
}

/// `runs` (sorted) without the blocks in `holes` (sorted).
fn without(runs: Vec<(u64, u64)>, holes: &[u64]) -> Vec<(u64, u64)> {
    if holes.is_empty() {
        return runs;
    }
    let mut out = Vec::with_capacity(runs.len());
    let mut next_hole = holes.iter().copied().peekable();
    for (first, count) in runs {
        let mut start = first;
        let end = first + count;
        while let Some(hole) = next_hole.next_if(|&h| h < end) {
            if hole > start {
                out.push((start, hole - start));
            }
            start = start.max(hole + 1);
        }
        if end > start {
            out.push((start, end - start));
        }
    }
    out
}

/// Copies `len` stored bytes at data-space offset `from` to disk byte `target`.
fn copy_within(
    placed: &PlacedData,
    disk: &dyn VirtualDisk,
    from: u64,
    len: u64,
    target: u64,
) -> Result<()> {
    let mut buf = vec![0u8; len.min(COPY_BUFFER) as usize];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(COPY_BUFFER);
        let chunk = &mut buf[..n as usize];
        chunk.fill(0); // holes read as zeros
        for (at, offset, bytes) in pieces(placed, from + done, n)? {
            disk.read_at(&mut chunk[offset..offset + bytes], at)
                .map_err(Error::Io)?;
        }
        disk.write_at(chunk, target + done).map_err(Error::Io)?;
        done += n;
    }
    Ok(())
}

fn pieces(placed: &PlacedData, at: u64, len: u64) -> Result<Vec<(u64, usize, usize)>> {
    placed
        .holes
        .pieces(&placed.space, placed.base, at, len)
        .ok_or_else(|| Error::Internal("stored data beyond the largest filesystem".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_blocks_are_cut_out_of_runs() {
        assert_eq!(without(vec![(0, 10)], &[]), vec![(0, 10)]);
        assert_eq!(
            without(vec![(0, 4), (10, 3)], &[0, 2, 3, 11]),
            vec![(1, 1), (10, 1), (12, 1)]
        );
        assert_eq!(without(vec![(5, 2)], &[5, 6]), vec![]);
    }
}
