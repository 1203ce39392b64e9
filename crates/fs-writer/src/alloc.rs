//! Block allocation: one forward pass over the filesystem that skips what is taken already
//! (metadata areas, and file data a store put on the disk). What it hands out is recorded
//! for the block bitmaps.

use crate::error::{Error, Result};
use crate::extent::{Extent, MAX_EXTENT_LEN};
use crate::geometry::Range;

/// Hands out blocks in order, skipping taken ones.
pub(crate) struct Allocator<'g> {
    /// Blocks not to hand out, sorted and merged.
    pub metadata: &'g [Range],
    pub next_meta: usize,
    pub cursor: u32,
    pub limit: u32,
    /// Everything handed out, in order.
    pub given: Vec<Range>,
}

impl Allocator<'_> {
    pub fn alloc(&mut self, mut count: u32) -> Result<Vec<Range>> {
        let mut out = Vec::new();
        while count > 0 {
            while let Some(m) = self.metadata.get(self.next_meta) {
                if m.end() <= self.cursor {
                    self.next_meta += 1;
                } else if m.start <= self.cursor {
                    self.cursor = m.end();
                    self.next_meta += 1;
                } else {
                    break;
                }
            }
            let stop = self
                .metadata
                .get(self.next_meta)
                .map_or(self.limit, |m| m.start);
            let len = count.min(stop - self.cursor);
            if len == 0 {
                return Err(Error::Full { blocks: self.limit });
            }
            let range = Range {
                start: self.cursor,
                len,
            };
            out.push(range);
            match self.given.last_mut() {
                Some(last) if last.end() == range.start => last.len += len,
                _ => self.given.push(range),
            }
            self.cursor += len;
            count -= len;
        }
        Ok(out)
    }

    /// Allocates blocks for logical blocks `first..first+count` as extents.
    pub fn extents(&mut self, first: u64, count: u64, out: &mut Vec<Extent>) -> Result<()> {
        // Files are at most MAX_FILE_SIZE (checked when measured): block numbers fit 32 bits.
        let beyond = || Error::Internal(format!("logical blocks {first}+{count} beyond 32 bits"));
        let mut logical = u32::try_from(first).map_err(|_| beyond())?;
        let count = u32::try_from(count).map_err(|_| beyond())?;
        logical.checked_add(count).ok_or_else(beyond)?;
        for range in self.alloc(count)? {
            let mut start = range.start;
            let mut left = range.len;
            while left > 0 {
                let len = left.min(MAX_EXTENT_LEN);
                out.push(Extent {
                    logical,
                    physical: start,
                    len,
                });
                logical += len;
                start += len;
                left -= len;
            }
        }
        Ok(())
    }

    /// `count` blocks in one run, from the current gap between metadata areas.
    pub fn contiguous(&mut self, count: u32) -> Option<u32> {
        let ranges = self.alloc(count).ok()?;
        (ranges.len() == 1).then(|| ranges[0].start)
    }

    pub fn blocks(&mut self, count: u32) -> Result<Vec<u32>> {
        Ok(self
            .alloc(count)?
            .into_iter()
            .flat_map(|r| r.start..r.end())
            .collect())
    }
}
