//! Blocks of zeros in file data, kept as holes.
//!
//! ext4 reads a block that no extent maps as zeros (ext4 docs, "Extent Tree": a file's
//! logical blocks without an extent are a hole), so a whole block of zeros in a file need not
//! be written or allocated: a layer holding a large zero-filled file then costs no space.
//!
//! A [`DiskStore`](crate::DiskStore) hands out *store* offsets: the data-space offsets the
//! bytes would have if every block were written. Whole zero blocks are not written and take
//! no data-space block; [`Holes`] records them and maps store blocks to data-space blocks.
//! Without zero blocks the two are the same numbers.

use crate::data_space::DataSpace;
use crate::layout::BLOCK_SIZE;

const BS: u64 = BLOCK_SIZE as u64;

/// One run of hole blocks in store space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HoleRun {
    /// First store block.
    start: u64,
    /// Blocks.
    len: u64,
    /// Hole blocks before `start`.
    before: u64,
}

/// Store blocks that were zeros and are not stored, in order.
#[derive(Debug, Default)]
pub(crate) struct Holes {
    /// Sorted, disjoint, never adjacent.
    runs: Vec<HoleRun>,
}

/// A part of a store block range: `len` blocks from `offset` (counted from the range's
/// start), at data-space block `data` or a hole (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub offset: u64,
    pub len: u64,
    pub data: Option<u64>,
}

impl Holes {
    /// Whether no block is a hole.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Records store block `block` as a hole; blocks come in increasing order.
    pub fn push(&mut self, block: u64) {
        match self.runs.last_mut() {
            Some(last) if last.start + last.len == block => last.len += 1,
            last => {
                debug_assert!(last.as_ref().is_none_or(|l| l.start + l.len < block));
                let before = last.map_or(0, |l| l.before + l.len);
                self.runs.push(HoleRun {
                    start: block,
                    len: 1,
                    before,
                });
            }
        }
    }

    /// Data-space blocks before store block `block`: its own data-space block, or for a hole
    /// the data-space block of the next stored block.
    pub fn data_block(&self, block: u64) -> u64 {
        let i = self.runs.partition_point(|r| r.start <= block);
        match i.checked_sub(1).map(|i| self.runs[i]) {
            None => block,
            Some(r) => block - r.before - (block - r.start).min(r.len),
        }
    }

    /// The data-space byte of store byte `at` (see [`data_block`](Holes::data_block)).
    pub fn data_offset(&self, at: u64) -> u64 {
        self.data_block(at / BS) * BS + at % BS
    }

    /// Store blocks `[block, block + count)` cut into stored runs and holes, in order.
    pub fn segments(&self, block: u64, count: u64) -> Vec<Segment> {
        let end = block + count;
        let mut out = Vec::new();
        let mut pos = block;
        let mut i = self.runs.partition_point(|r| r.start + r.len <= pos);
        while pos < end {
            let (stop, data) = match self.runs.get(i) {
                Some(r) if r.start <= pos => {
                    i += 1;
                    ((r.start + r.len).min(end), None)
                }
                next => (
                    next.map_or(end, |r| r.start.min(end)),
                    Some(self.data_block(pos)),
                ),
            };
            out.push(Segment {
                offset: pos - block,
                len: stop - pos,
                data,
            });
            pos = stop;
        }
        out
    }

    /// The disk byte ranges of the stored bytes among store bytes `[at, at + len)` for a
    /// filesystem at disk byte `base`, as (disk offset, offset into the range, length).
    /// Bytes in holes are left out: they read as zeros.
    pub fn pieces(
        &self,
        space: &DataSpace,
        base: u64,
        at: u64,
        len: u64,
    ) -> Option<Vec<(u64, usize, usize)>> {
        if self.runs.is_empty() {
            return space.pieces(base, at, len);
        }
        let first = at / BS;
        let blocks = (at + len).div_ceil(BS) - first;
        let mut out = Vec::new();
        for segment in self.segments(first, blocks) {
            let Some(data) = segment.data else { continue };
            // The segment's bytes, clipped to the range asked for.
            let from = ((first + segment.offset) * BS).max(at);
            let to = ((first + segment.offset + segment.len) * BS).min(at + len);
            let data_at = data * BS + (from - (first + segment.offset) * BS);
            let shift = usize::try_from(from - at).ok()?;
            for (disk_at, offset, bytes) in space.pieces(base, data_at, to - from)? {
                out.push((disk_at, offset + shift, bytes));
            }
        }
        Some(out)
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // fixtures: small, known values
mod tests {
    use super::*;

    #[test]
    fn store_blocks_map_around_holes() {
        let mut holes = Holes::default();
        assert_eq!(holes.data_block(7), 7);
        for b in [3, 4, 10] {
            holes.push(b);
        }
        // Store blocks 0..3 are data blocks 0..3; 3 and 4 are holes; 5 is data block 3.
        assert_eq!(holes.data_block(2), 2);
        assert_eq!(holes.data_block(3), 3);
        assert_eq!(holes.data_block(4), 3);
        assert_eq!(holes.data_block(5), 3);
        assert_eq!(holes.data_block(9), 7);
        assert_eq!(holes.data_block(10), 8);
        assert_eq!(holes.data_block(11), 8);
        assert_eq!(holes.data_offset(5 * BS + 7), 3 * BS + 7);
        assert_eq!(
            holes.segments(2, 10),
            vec![
                Segment {
                    offset: 0,
                    len: 1,
                    data: Some(2)
                },
                Segment {
                    offset: 1,
                    len: 2,
                    data: None
                },
                Segment {
                    offset: 3,
                    len: 5,
                    data: Some(3)
                },
                Segment {
                    offset: 8,
                    len: 1,
                    data: None
                },
                Segment {
                    offset: 9,
                    len: 1,
                    data: Some(8)
                },
            ]
        );
    }

    #[test]
    fn pieces_skip_holes() {
        let space = DataSpace::new();
        let mut holes = Holes::default();
        holes.push(1);
        let first = u64::from(crate::data_space::BACKUP_AREA_BLOCKS) * BS;
        // Store bytes 100..(2 * BS + 50): data block 0 from 100, a hole, data block 1.
        let pieces = holes.pieces(&space, 0, 100, 2 * BS - 50).unwrap();
        assert_eq!(
            pieces,
            vec![
                (first + 100, 0, (BS - 100) as usize),
                (first + BS, (2 * BS - 100) as usize, 50)
            ]
        );
    }
}
