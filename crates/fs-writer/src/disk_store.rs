//! A content store that writes file data once, straight into the disk, at the blocks it keeps
//! in the filesystem (see [`crate::data_space`] for which blocks those can be).
//!
//! Each stored run starts in a fresh block, at the same offset within its block as in its
//! file, so its blocks can become the file's extents as they are. Whole blocks of zeros are
//! not written and take no block: they become holes in the file (see [`crate::holes`]). Data
//! a later layer deletes is discarded from the disk at once: it never reaches the output.

use std::io::{self, Read};

use d2l_rootfs::ContentStore;

use crate::data_space::DataSpace;
use crate::geometry::Range;
use crate::holes::Holes;
use crate::layout::BLOCK_SIZE;
use d2l_disk::bytes::is_zero;
use d2l_disk::VirtualDisk;

const BS: u64 = BLOCK_SIZE as u64;
/// Bytes gathered before one write to the disk.
const WRITE_BUFFER: usize = 1 << 20;

/// Writes file data into `disk` for an ext4 filesystem that starts at byte `base`; give what
/// [`finish`](DiskStore::finish) returns to [`write_ext4_placed`](crate::write_ext4_placed)
/// with the same disk and `base` as [`Ext4Options::offset`](crate::Ext4Options::offset).
pub struct DiskStore<'d> {
    disk: &'d dyn VirtualDisk,
    base: u64,
    space: DataSpace,
    /// Next free data-space block.
    next: u64,
    /// Next free store block (data-space blocks and the holes of zero blocks).
    next_store: u64,
    /// Store blocks of zeros, not written.
    holes: Holes,
    /// Bytes not yet written: `buffer[..filled]`, from data-space byte `buffered_at` on.
    /// Allocated (and zeroed) once. Input is read straight into it, then checked for zero
    /// blocks in place: one copy fewer than reading into a buffer of its own.
    buffer: Vec<u8>,
    filled: usize,
    buffered_at: u64,
    /// Data-space block ranges whose data died, as (first, count).
    released: Vec<(u64, u64)>,
}

/// Where a [`DiskStore`] put the data: what the filesystem writer must build around.
pub struct PlacedData {
    pub(crate) space: DataSpace,
    /// Store blocks that are holes (zeros, never written).
    pub(crate) holes: Holes,
    pub(crate) base: u64,
    /// Filesystem blocks holding live data, sorted and merged.
    pub(crate) live: Vec<Range>,
    /// Blocks of live data.
    pub(crate) live_blocks: u64,
    /// First filesystem block after all stored data, dead or alive.
    pub(crate) end: u32,
}

impl<'d> DiskStore<'d> {
    /// A store for a filesystem at byte `base` of `disk` (its partition's start).
    pub fn new(disk: &'d dyn VirtualDisk, base: u64) -> DiskStore<'d> {
        DiskStore {
            disk,
            base,
            space: DataSpace::new(),
            next: 0,
            next_store: 0,
            holes: Holes::default(),
            buffer: vec![0; WRITE_BUFFER],
            filled: 0,
            buffered_at: 0,
            released: Vec::new(),
        }
    }

    /// Writes what is buffered and says where everything went.
    pub fn finish(mut self) -> io::Result<PlacedData> {
        self.flush()?;
        self.released.sort_unstable();
        let mut live = Vec::new();
        let mut live_blocks = 0;
        let mut at = 0u64;
        let mut add = |from: u64, to: u64, live: &mut Vec<Range>| -> io::Result<()> {
            if to > from {
                for run in self.space.runs(from, to - from).ok_or_else(full)? {
                    live_blocks += u64::from(run.len);
                    match live.last_mut() {
                        Some(last) if last.end() == run.start => last.len += run.len,
                        _ => live.push(run),
                    }
                }
            }
            Ok(())
        };
        for &(first, count) in &self.released {
            add(at, first.max(at), &mut live)?;
            at = at.max(first + count);
        }
        add(at, self.next.max(at), &mut live)?;
        let end = match self.next {
            0 => 0,
            n => self.space.block(n - 1).ok_or_else(full)? + 1,
        };
        Ok(PlacedData {
            space: self.space,
            holes: self.holes,
            base: self.base,
            live,
            live_blocks,
            end,
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.filled > 0 {
            for (disk_at, from, len) in self.pieces(self.buffered_at, self.filled as u64)? {
                self.disk
                    .write_at(&self.buffer[from..from + len], disk_at)?;
            }
            self.buffered_at += self.filled as u64;
            self.filled = 0;
        }
        Ok(())
    }

    fn pieces(&self, at: u64, len: u64) -> io::Result<Vec<(u64, usize, usize)>> {
        self.space.pieces(self.base, at, len).ok_or_else(full)
    }

    /// Makes data-space byte `at`, at or after what is buffered, the next byte buffered. The
    /// gap since the last run (the rest of its last block, the head of this one) is zeros:
    /// written as such when it fits in the buffer, else left a hole.
    fn seek(&mut self, at: u64) -> io::Result<()> {
        let end = self.buffered_at + self.filled as u64;
        let gap = usize::try_from(at - end).unwrap_or(usize::MAX);
        if gap > 0 || self.filled == 0 {
            if self.filled > 0 && gap <= WRITE_BUFFER - self.filled {
                self.buffer[self.filled..self.filled + gap].fill(0);
                self.filled += gap;
            } else {
                self.flush()?;
                self.buffered_at = at;
            }
        }
        Ok(())
    }

    /// Reads `n` bytes of a run (at most a buffer, ending on a block boundary or at the
    /// run's end), whose first byte is store byte `pos`, into the buffer at data-space byte
    /// `at`, dropping whole blocks of zeros (they become holes). Returns the bytes kept.
    fn read_chunk(&mut self, data: &mut dyn Read, pos: u64, n: usize, at: u64) -> io::Result<u64> {
        self.seek(at)?;
        if WRITE_BUFFER - self.filled < n {
            self.flush()?;
        }
        let start = self.filled;
        read_full(data, &mut self.buffer[start..start + n])?;
        let mut kept = start;
        let mut off = 0;
        while off < n {
            let block_pos = pos + off as u64;
            let take = usize::try_from(BS - block_pos % BS)
                .expect("a block")
                .min(n - off);
            let piece = start + off..start + off + take;
            if take as u64 == BS && is_zero(&self.buffer[piece.clone()]) {
                self.holes.push(block_pos / BS);
            } else {
                if kept != piece.start {
                    self.buffer.copy_within(piece, kept);
                }
                kept += take;
            }
            off += take;
        }
        self.filled = kept;
        Ok((kept - start) as u64)
    }
}

/// Fills `buf` from `data`; an early end is `UnexpectedEof`.
fn read_full(data: &mut dyn Read, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match data.read(&mut buf[done..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl ContentStore for DiskStore<'_> {
    fn store(&mut self, file_offset: u64, len: u64, data: &mut dyn Read) -> io::Result<u64> {
        let within = file_offset % BS;
        let store_start = self.next_store * BS + within;
        let start = self.next * BS + within;
        if len == 0 {
            // Nothing to write, but the run still starts where the next one would.
            self.seek(start)?;
        }
        // Data-space byte where the next bytes that are not a zero block go.
        let mut at = start;
        let mut pos = store_start;
        let end = store_start + len;
        while pos < end {
            let chunk_end = (pos / BS * BS + WRITE_BUFFER as u64).min(end);
            let n = usize::try_from(chunk_end - pos).expect("at most WRITE_BUFFER");
            at += self.read_chunk(data, pos, n, at)?;
            pos = chunk_end;
        }
        self.next = at.div_ceil(BS);
        self.next_store = end.div_ceil(BS);
        // Fail here, not at the end, when the data outgrows a 32-bit filesystem.
        self.space.block(self.next).ok_or_else(full)?;
        Ok(store_start)
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.flush()?;
        buf.fill(0); // holes read as zeros
        let pieces = self
            .holes
            .pieces(&self.space, self.base, offset, buf.len() as u64)
            .ok_or_else(full)?;
        for (disk_at, from, len) in pieces {
            self.disk.read_at(&mut buf[from..from + len], disk_at)?;
        }
        Ok(())
    }

    fn release(&mut self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        // The run's blocks are its own (runs start in fresh blocks): free them whole; its
        // holes take no data-space block.
        let first = self.holes.data_block(offset / BS);
        let end = self.holes.data_block((offset + len).div_ceil(BS));
        if end == first {
            return Ok(());
        }
        if self.filled > 0 && self.holes.data_offset(offset + len) > self.buffered_at {
            self.flush()?;
        }
        for (disk_at, _, bytes) in self.pieces(first * BS, (end - first) * BS)? {
            self.disk.discard(disk_at, bytes as u64)?;
        }
        self.released.push((first, end - first));
        Ok(())
    }
}

fn full() -> io::Error {
    io::Error::other("file data exceeds the largest ext4 filesystem d2l writes (16 TiB)")
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // fixtures: small, known values
mod tests {
    use super::*;
    use crate::data_space::BACKUP_AREA_BLOCKS;

    #[test]
    fn runs_start_in_fresh_blocks_at_their_file_offset() {
        let disk = tempfile::tempfile().unwrap();
        let mut store = DiskStore::new(&disk, 1 << 20);
        let a = store.store(0, 5, &mut &b"hello"[..]).unwrap();
        let b = store.store(4096 + 10, 3, &mut &b"abc"[..]).unwrap();
        assert_eq!(a, 0);
        assert_eq!(b, 4096 + 10);
        let mut back = [0u8; 3];
        store.read_at(&mut back, b).unwrap();
        assert_eq!(&back, b"abc");
        let placed = store.finish().unwrap();
        assert_eq!(
            placed.live,
            vec![Range {
                start: BACKUP_AREA_BLOCKS,
                len: 2
            }]
        );
        let mut raw = [0u8; 5];
        VirtualDisk::read_at(
            &disk,
            &mut raw,
            (1 << 20) + u64::from(BACKUP_AREA_BLOCKS) * BS,
        )
        .unwrap();
        assert_eq!(&raw, b"hello");
    }

    #[test]
    fn released_data_never_reaches_the_disk_and_its_blocks_are_free() {
        let disk = tempfile::tempfile().unwrap();
        let mut store = DiskStore::new(&disk, 0);
        let secret = vec![0x5au8; 3 * 4096];
        let a = store
            .store(0, secret.len() as u64, &mut &secret[..])
            .unwrap();
        let b = store.store(0, 4, &mut &b"kept"[..]).unwrap();
        store.release(a, secret.len() as u64).unwrap();
        let placed = store.finish().unwrap();
        assert_eq!(b, 3 * 4096);
        assert_eq!(placed.live_blocks, 1);
        assert_eq!(placed.live[0].start, BACKUP_AREA_BLOCKS + 3);
        let mut all = vec![0u8; VirtualDisk::virtual_size(&disk).unwrap() as usize];
        VirtualDisk::read_at(&disk, &mut all, 0).unwrap();
        assert!(!all.windows(4).any(|w| w == [0x5a; 4]));
        assert!(all.windows(4).any(|w| w == b"kept"));
    }

    #[test]
    fn zero_blocks_inside_a_run_take_no_block_and_read_back_as_zeros() {
        let disk = tempfile::tempfile().unwrap();
        let mut store = DiskStore::new(&disk, 0);
        let mut data = vec![0x11u8; 4096];
        data.extend([0u8; 2 * 4096]);
        data.extend([0x22u8; 100]);
        let first = store.store(0, 5, &mut &b"small"[..]).unwrap();
        let run = store.store(0, data.len() as u64, &mut &data[..]).unwrap();
        assert_eq!((first, run), (0, 4096));
        let mut back = vec![0xffu8; data.len()];
        store.read_at(&mut back, run).unwrap();
        assert_eq!(back, data);
        let placed = store.finish().unwrap();
        // "small", the 0x11 block and the 0x22 tail: three blocks, the zeros none.
        assert_eq!(placed.live_blocks, 3);
        let mut raw = vec![0u8; 3 * 4096];
        VirtualDisk::read_at(&disk, &mut raw, u64::from(BACKUP_AREA_BLOCKS) * BS).unwrap();
        assert_eq!(&raw[..5], b"small");
        assert!(raw[5..4096].iter().all(|&b| b == 0));
        assert!(raw[4096..8192].iter().all(|&b| b == 0x11));
        assert!(raw[8192..8292].iter().all(|&b| b == 0x22));
    }

    #[test]
    fn short_input_is_an_error() {
        let disk = tempfile::tempfile().unwrap();
        let mut store = DiskStore::new(&disk, 0);
        let err = store.store(0, 10, &mut &b"short"[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
