//! Allocate-on-first-write storage shared by the dynamic formats (qcow2 clusters, VDI and
//! VHD blocks, VMDK grains).
//!
//! The guest disk is cut into units of one size; a unit gets the next slot of the host file
//! the first time non-zero bytes are written into it, whatever the order of the writes and
//! from however many threads. Slots sit one after another from a fixed host offset; the host
//! file is sparse, so the part of a slot nothing was written to reads as zeros and a unit
//! written piecewise needs no read-modify-write. The map (4 bytes per unit, kept in chunks
//! allocated as the disk is used) stays in memory behind a mutex, held only to look up or
//! allocate, never during I/O. At the end [`ClusterMap::into_allocation`] fills the slots that
//! discards freed with the last ones, so the slots are dense, and hands the map to the format,
//! which writes its tables and headers around them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, MutexGuard};

use crate::usize_from;
use crate::{Error, Result};
use d2l_disk::bytes::is_zero;

/// Units per chunk of the map: chunks are allocated when a unit in them is first used.
const CHUNK_UNITS: u64 = 8192;
/// Bytes copied at a time by `copy_from`.
const COPY_BUFFER: usize = 1 << 20;
/// An owner entry of a slot that a discard freed.
const FREE: u32 = u32::MAX;

/// Where the slots sit in the host file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotLayout {
    /// Guest bytes per unit (cluster, block, grain): a power of two.
    pub unit: u64,
    /// Host offset of slot 0.
    pub first: u64,
    /// Host bytes from one slot to the next (the unit and any per-slot header, aligned).
    pub stride: u64,
    /// Offset of the unit's data in its slot (after a per-slot header such as VHD's bitmap).
    pub data: u64,
}

impl SlotLayout {
    /// Host offset where slot `slot` starts.
    pub fn slot_offset(&self, slot: u32) -> u64 {
        self.first + u64::from(slot) * self.stride
    }

    /// Host offset of the data of slot `slot`.
    pub fn data_offset(&self, slot: u32) -> u64 {
        self.slot_offset(slot) + self.data
    }
}

/// The map from guest units to slots.
#[derive(Debug, Default)]
struct State {
    /// Chunks of [`CHUNK_UNITS`] entries: slot + 1, or 0 for a unit never written.
    chunks: Vec<Option<Box<[u32]>>>,
    /// Slot -> the unit it holds, or [`FREE`].
    owners: Vec<u32>,
    /// Slots freed by discards (already punched), to reuse.
    free: Vec<u32>,
    /// Units a discard zeroed in part: all zero by the end if other discards zeroed the
    /// rest, and then freed by [`ClusterMap::into_allocation`].
    partly_discarded: Vec<u64>,
    /// The virtual size: the largest of `grow_to` and the end of any write.
    size: u64,
}

impl State {
    fn slot(&self, unit: u64) -> Option<u32> {
        let chunk = self.chunks.get((unit / CHUNK_UNITS) as usize)?.as_ref()?;
        match chunk[(unit % CHUNK_UNITS) as usize] {
            0 => None,
            s => Some(s - 1),
        }
    }

    fn set(&mut self, unit: u64, slot: Option<u32>) {
        let index = (unit / CHUNK_UNITS) as usize;
        if self.chunks.len() <= index {
            self.chunks.resize_with(index + 1, || None);
        }
        let chunk =
            self.chunks[index].get_or_insert_with(|| vec![0; usize_from(CHUNK_UNITS)].into());
        chunk[(unit % CHUNK_UNITS) as usize] = slot.map_or(0, |s| s + 1);
    }

    fn allocate(&mut self, unit: u64) -> io::Result<u32> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => u32::try_from(self.owners.len())
                .ok()
                .filter(|&s| s != FREE)
                .ok_or_else(|| io::Error::other("more slots than a 32-bit map holds"))?,
        };
        let owner = u32::try_from(unit).map_err(|_| io::Error::other("unit number overflow"))?;
        if slot as usize == self.owners.len() {
            self.owners.push(owner);
        } else {
            self.owners[slot as usize] = owner;
        }
        self.set(unit, Some(slot));
        Ok(slot)
    }
}

/// One contiguous piece of an I/O: `len` bytes at host offset `host`, from or to
/// `buf[at..at + len]`.
#[derive(Debug, Clone, Copy)]
struct Run {
    host: u64,
    at: usize,
    len: usize,
}

/// Appends a run, merging it into the previous one when both are contiguous.
fn push_run(runs: &mut Vec<Run>, run: Run) {
    if let Some(last) = runs.last_mut() {
        if last.host + last.len as u64 == run.host && last.at + last.len == run.at {
            last.len += run.len;
            return;
        }
    }
    runs.push(run);
}

/// A guest disk stored in slots of a host file; see the module documentation.
#[derive(Debug)]
pub(crate) struct ClusterMap {
    file: File,
    layout: SlotLayout,
    /// The format's name, for errors.
    format: &'static str,
    /// The largest virtual size the format's tables can describe.
    max_size: u64,
    state: Mutex<State>,
}

/// The map once writing is done: slots are dense (`0..slots`).
#[derive(Debug)]
pub(crate) struct Allocation {
    /// The host file.
    pub file: File,
    /// The slot layout.
    pub layout: SlotLayout,
    /// Virtual size (not rounded).
    pub size: u64,
    /// Number of slots in use.
    pub slots: u32,
    chunks: Vec<Option<Box<[u32]>>>,
}

impl Allocation {
    /// The slot of guest unit `unit`, if it was written.
    pub fn slot(&self, unit: u64) -> Option<u32> {
        let chunk = self.chunks.get((unit / CHUNK_UNITS) as usize)?.as_ref()?;
        match chunk[(unit % CHUNK_UNITS) as usize] {
            0 => None,
            s => Some(s - 1),
        }
    }

    /// Moves the start of the slot area `k` slots further into the file (room for a larger
    /// table before it): the data of the first `k` slots moves to the end, and every unit is
    /// renumbered so the slots stay `0..slots` from the new start.
    pub fn shift_start(&mut self, k: u32) -> Result<()> {
        let n = self.slots;
        let moved = k.min(n);
        let old = self.layout;
        let mut new = old;
        new.first += u64::from(k) * old.stride;
        let renumber = |slot: u32| {
            if slot >= moved {
                slot - k
            } else {
                n - moved + slot
            }
        };
        let mut buf = vec![0u8; usize_from(old.unit)];
        for slot in 0..moved {
            let (src, dst) = (old.data_offset(slot), new.data_offset(renumber(slot)));
            let got = read_up_to(&self.file, &mut buf, src)
                .map_err(Error::output("reading a block to move", src))?;
            buf[got..].fill(0);
            self.file
                .write_all_at(&buf, dst)
                .map_err(Error::output("moving a block", dst))?;
            punch(&self.file, src, old.unit)
                .map_err(Error::output("freeing a moved block", src))?;
        }
        for chunk in self.chunks.iter_mut().flatten() {
            for entry in chunk.iter_mut().filter(|e| **e != 0) {
                *entry = renumber(*entry - 1) + 1;
            }
        }
        self.layout = new;
        Ok(())
    }

    /// Host offset of the end of the last slot's data (where the data area ends).
    pub fn data_end(&self) -> u64 {
        match self.slots {
            0 => self.layout.first,
            n => self.layout.data_offset(n - 1) + self.layout.unit,
        }
    }
}

impl ClusterMap {
    /// An empty disk over `file` (which must be empty or hold only the format's reserved
    /// areas), holding at most `max_size` guest bytes.
    pub fn new(file: File, layout: SlotLayout, format: &'static str, max_size: u64) -> Self {
        debug_assert!(layout.unit.is_power_of_two());
        debug_assert!(layout.stride >= layout.data + layout.unit);
        ClusterMap {
            file,
            layout,
            format,
            max_size,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the map consistent (updates are single
        // assignments), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks that the disk may reach `end` bytes.
    fn check_size(&self, end: u64) -> io::Result<()> {
        Ok(Error::check_size(self.format, end, self.max_size)?)
    }

    /// Maps `len` bytes at guest `offset` to host runs, allocating units that have none
    /// when `allocate` says so for that unit's part of the range.
    fn map_range(
        &self,
        offset: u64,
        len: usize,
        mut allocate: impl FnMut(std::ops::Range<usize>) -> bool,
    ) -> io::Result<Vec<Run>> {
        let end = offset
            .checked_add(len as u64)
            .ok_or_else(|| io::Error::other("offset overflow"))?;
        self.check_size(end)?;
        let unit = self.layout.unit;
        let mut runs = Vec::new();
        let mut state = self.lock();
        state.size = state.size.max(end);
        let mut pos = offset;
        while pos < end {
            let index = pos / unit;
            let piece_end = end.min((index + 1) * unit);
            let at = usize_from(pos - offset);
            let piece = at..usize_from(piece_end - offset);
            let slot = match state.slot(index) {
                Some(slot) => Some(slot),
                None if allocate(piece.clone()) => Some(state.allocate(index)?),
                None => None,
            };
            if let Some(slot) = slot {
                push_run(
                    &mut runs,
                    Run {
                        host: self.layout.data_offset(slot) + pos % unit,
                        at,
                        len: piece.len(),
                    },
                );
            }
            pos = piece_end;
        }
        Ok(runs)
    }

    /// Consumes the map: frees units that discards left all zero, fills freed slots with the
    /// last ones (moving their data), so slots `0..slots` are all in use, and returns the
    /// result for the format to describe.
    pub fn into_allocation(self) -> Result<Allocation> {
        let layout = self.layout;
        let mut state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut partly_discarded = std::mem::take(&mut state.partly_discarded);
        partly_discarded.sort_unstable();
        partly_discarded.dedup();
        for unit in partly_discarded {
            let Some(slot) = state.slot(unit) else {
                continue;
            };
            let host = layout.data_offset(slot);
            if slot_is_zero(&self.file, host, layout.unit)
                .map_err(Error::output("reading a discarded block", host))?
            {
                punch(&self.file, host, layout.unit)
                    .map_err(Error::output("freeing a discarded block", host))?;
                state.set(unit, None);
                state.owners[slot as usize] = FREE;
                state.free.push(slot);
            }
        }
        state.free.sort_unstable_by(|a, b| b.cmp(a));
        loop {
            while state.owners.last() == Some(&FREE) {
                state.owners.pop();
            }
            // The lowest free slot below the end (the list is sorted high to low).
            while state
                .free
                .last()
                .is_some_and(|&f| f as usize >= state.owners.len())
            {
                state.free.pop();
            }
            let Some(hole) = state.free.pop() else { break };
            let last =
                u32::try_from(state.owners.len() - 1).expect("allocate numbers slots in u32");
            let unit = state.owners[last as usize];
            move_slot(&self.file, &layout, last, hole)?;
            state.owners[hole as usize] = unit;
            state.owners.pop();
            state.set(u64::from(unit), Some(hole));
        }
        Ok(Allocation {
            file: self.file,
            layout,
            size: state.size,
            slots: u32::try_from(state.owners.len()).expect("allocate numbers slots in u32"),
            chunks: state.chunks,
        })
    }
}

/// Moves the data of slot `from` into slot `to` (which is a hole) and punches `from`.
fn move_slot(file: &File, layout: &SlotLayout, from: u32, to: u32) -> Result<()> {
    let src = layout.data_offset(from);
    let dst = layout.data_offset(to);
    let mut buf = vec![0u8; usize_from(layout.unit)];
    let n =
        read_up_to(file, &mut buf, src).map_err(Error::output("reading a block to move", src))?;
    buf[n..].fill(0);
    file.write_all_at(&buf, dst)
        .map_err(Error::output("moving a block", dst))?;
    punch(file, src, layout.unit).map_err(Error::output("freeing a moved block", src))
}

/// Whether `len` bytes at `offset` of `file` read as zeros; holes are skipped unread.
fn slot_is_zero(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    use rustix::fs::{seek, SeekFrom};
    let end = offset + len;
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = offset;
    while pos < end {
        // The next data at or after `pos`; past the end of the file there is none.
        pos = match seek(file, SeekFrom::Data(pos)) {
            Ok(data) => data,
            Err(rustix::io::Errno::NXIO) => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        if pos >= end {
            return Ok(true);
        }
        let n = buf.len().min(usize_from(end - pos));
        let got = read_up_to(file, &mut buf[..n], pos)?;
        if !is_zero(&buf[..got]) {
            return Ok(false);
        }
        if got < n {
            return Ok(true);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns the bytes read.
pub(crate) fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Makes `len` bytes at `offset` of `file` a hole (zeros where holes are not supported).
pub(crate) fn punch(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    match fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    ) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) => {
            let zeros = vec![0u8; len.min(1 << 20) as usize];
            let mut done = 0;
            while done < len {
                let n = zeros.len().min(usize_from(len - done));
                file.write_all_at(&zeros[..n], offset + done)?;
                done += n as u64;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

impl d2l_disk::VirtualDisk for ClusterMap {
    fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        // A unit is allocated only for non-zero bytes; zeros written where nothing is
        // stored already read back as zeros.
        let runs = self.map_range(offset, bytes.len(), |piece| !is_zero(&bytes[piece]))?;
        for run in runs {
            self.file
                .write_all_at(&bytes[run.at..run.at + run.len], run.host)?;
        }
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        let unit = self.layout.unit;
        let mut runs = Vec::new();
        {
            let state = self.lock();
            let mut pos = offset;
            while pos < end {
                let index = pos / unit;
                let piece_end = end.min((index + 1) * unit);
                if let Some(slot) = state.slot(index) {
                    push_run(
                        &mut runs,
                        Run {
                            host: self.layout.data_offset(slot) + pos % unit,
                            at: usize_from(pos - offset),
                            len: usize_from(piece_end - pos),
                        },
                    );
                }
                pos = piece_end;
            }
        }
        buf.fill(0);
        for run in runs {
            // The unwritten tail of the last slot may lie past the end of the file.
            read_up_to(&self.file, &mut buf[run.at..run.at + run.len], run.host)?;
        }
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        let unit = self.layout.unit;
        let end = offset.saturating_add(len);
        let mut punches = Vec::new();
        let mut freed = Vec::new();
        {
            let mut state = self.lock();
            let mut pos = offset;
            let end = end.min(state.size);
            while pos < end {
                let index = pos / unit;
                let piece_end = end.min((index + 1) * unit);
                if let Some(slot) = state.slot(index) {
                    if pos.is_multiple_of(unit) && piece_end - pos == unit {
                        state.set(index, None);
                        state.owners[slot as usize] = FREE;
                        freed.push(slot);
                        punches.push((self.layout.data_offset(slot), unit));
                    } else {
                        punches.push((self.layout.data_offset(slot) + pos % unit, piece_end - pos));
                        if state.partly_discarded.last() != Some(&index) {
                            state.partly_discarded.push(index);
                        }
                    }
                }
                pos = piece_end;
            }
        }
        for (host, len) in punches {
            punch(&self.file, host, len)?;
        }
        // Reusable only once punched, so a new owner never sees the old data.
        if !freed.is_empty() {
            self.lock().free.extend(freed);
        }
        Ok(())
    }

    fn virtual_size(&self) -> io::Result<u64> {
        Ok(self.lock().size)
    }

    fn grow_to(&self, len: u64) -> io::Result<()> {
        self.check_size(len)?;
        let mut state = self.lock();
        state.size = state.size.max(len);
        Ok(())
    }

    fn copy_from(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        // Through a buffer, so file data that is all zeros allocates nothing either (as
        // qemu-img convert leaves such clusters out); the buffer is the thread's own.
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUFFER.with_borrow_mut(|buf| {
            buf.resize(COPY_BUFFER, 0);
            let mut done = 0u64;
            while done < len {
                let n = usize_from((len - done).min(COPY_BUFFER as u64));
                src.read_exact_at(&mut buf[..n], src_offset + done)?;
                self.write_at(&buf[..n], offset + done)?;
                done += n as u64;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use d2l_disk::VirtualDisk;

    const UNIT: u64 = 4096;

    fn map(max: u64) -> ClusterMap {
        let layout = SlotLayout {
            unit: UNIT,
            first: 8192,
            stride: UNIT + 512,
            data: 512,
        };
        ClusterMap::new(tempfile::tempfile().unwrap(), layout, "test", max)
    }

    fn read(disk: &ClusterMap, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0xAA; len];
        disk.read_at(&mut buf, offset).unwrap();
        buf
    }

    #[test]
    fn units_get_slots_in_the_order_first_written_and_zeros_allocate_nothing() {
        let disk = map(1 << 30);
        disk.write_at(&[0; 4096], 0).unwrap();
        disk.write_at(&[1; 10], 3 * UNIT + 5).unwrap();
        disk.write_at(&[2; 3], 7).unwrap();
        // Pieces of one unit at different times: the unit keeps its slot.
        disk.write_at(&[3; 2], 3 * UNIT + 100).unwrap();
        assert_eq!(disk.virtual_size().unwrap(), 3 * UNIT + 102);
        let got = read(&disk, 0, 4 * UNIT as usize);
        assert_eq!(&got[5..12], &[0, 0, 2, 2, 2, 0, 0]);
        assert_eq!(
            &got[3 * UNIT as usize + 4..3 * UNIT as usize + 16],
            &[0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
        );
        assert_eq!(
            &got[3 * UNIT as usize + 100..3 * UNIT as usize + 102],
            &[3, 3]
        );
        let alloc = disk.into_allocation().unwrap();
        assert_eq!(alloc.slots, 2);
        assert_eq!(alloc.slot(3), Some(0), "first written first");
        assert_eq!(alloc.slot(0), Some(1));
        assert_eq!(alloc.slot(1), None);
        // Slot 0's data starts after its 512-byte header.
        let mut byte = [0u8; 1];
        alloc.file.read_exact_at(&mut byte, 8192 + 512 + 5).unwrap();
        assert_eq!(byte, [1]);
    }

    #[test]
    fn a_write_across_units_and_a_copy_land_where_they_belong() {
        let disk = map(1 << 30);
        let data: Vec<u8> = (0..3 * UNIT as usize)
            .map(|i| (i % 251) as u8 + 1)
            .collect();
        disk.write_at(&data, 1000).unwrap();
        assert_eq!(read(&disk, 1000, data.len()), data);
        let src = tempfile::tempfile().unwrap();
        src.write_all_at(&data, 0).unwrap();
        disk.copy_from(&src, 10, 5000, 20 * UNIT + 7).unwrap();
        assert_eq!(read(&disk, 20 * UNIT + 7, 5000), &data[10..5010]);
        assert_eq!(read(&disk, 20 * UNIT, 7), vec![0; 7]);
    }

    #[test]
    fn discard_frees_whole_units_and_zeros_parts_and_the_end_is_compacted() {
        let disk = map(1 << 30);
        for unit in 0..4u64 {
            disk.write_at(&[unit as u8 + 1; UNIT as usize], unit * UNIT)
                .unwrap();
        }
        // Unit 1 whole, half of unit 2.
        disk.discard(UNIT, UNIT + UNIT / 2).unwrap();
        let got = read(&disk, 0, 4 * UNIT as usize);
        assert!(got[UNIT as usize..2 * UNIT as usize]
            .iter()
            .all(|&b| b == 0));
        assert!(got[2 * UNIT as usize..(2 * UNIT + UNIT / 2) as usize]
            .iter()
            .all(|&b| b == 0));
        assert!(got[(2 * UNIT + UNIT / 2) as usize..3 * UNIT as usize]
            .iter()
            .all(|&b| b == 3));
        // The freed slot is reused by the next unit written.
        disk.write_at(&[9; 1], 10 * UNIT).unwrap();
        disk.discard(0, UNIT).unwrap();
        let alloc = disk.into_allocation().unwrap();
        assert_eq!(alloc.slots, 3, "units 2, 3 and 10 remain, densely");
        let mut slots: Vec<u32> = [2, 3, 10].iter().map(|&u| alloc.slot(u).unwrap()).collect();
        slots.sort();
        assert_eq!(slots, [0, 1, 2]);
        assert_eq!(alloc.slot(0), None);
        assert_eq!(alloc.slot(1), None);
        // Unit 3's data survived the move.
        let mut buf = vec![0u8; UNIT as usize];
        let host = alloc.layout.data_offset(alloc.slot(3).unwrap());
        alloc.file.read_exact_at(&mut buf, host).unwrap();
        assert!(buf.iter().all(|&b| b == 4));
    }

    #[test]
    fn a_unit_zeroed_by_several_partial_discards_is_freed() {
        let disk = map(1 << 30);
        disk.write_at(&[1; UNIT as usize], 0).unwrap();
        disk.write_at(&[2; UNIT as usize], UNIT).unwrap();
        // Unit 0 in two halves; unit 1 only in part, so it stays.
        disk.discard(0, UNIT / 2).unwrap();
        disk.discard(UNIT / 2, UNIT / 2 + UNIT / 4).unwrap();
        let alloc = disk.into_allocation().unwrap();
        assert_eq!(alloc.slots, 1, "only unit 1 is stored");
        assert_eq!(alloc.slot(0), None);
        let mut buf = vec![0u8; UNIT as usize];
        alloc
            .file
            .read_exact_at(&mut buf, alloc.layout.data_offset(alloc.slot(1).unwrap()))
            .unwrap();
        assert!(buf[..UNIT as usize / 4].iter().all(|&b| b == 0));
        assert!(buf[UNIT as usize / 4..].iter().all(|&b| b == 2));
    }

    #[test]
    fn shifting_the_start_moves_the_first_slots_to_the_end() {
        for (units, k) in [(5u64, 2u32), (2, 4)] {
            let disk = map(1 << 30);
            for unit in 0..units {
                disk.write_at(&[unit as u8 + 1; UNIT as usize], unit * 10 * UNIT)
                    .unwrap();
            }
            let mut alloc = disk.into_allocation().unwrap();
            let first = alloc.layout.first;
            alloc.shift_start(k).unwrap();
            assert_eq!(
                alloc.layout.first,
                first + u64::from(k) * alloc.layout.stride
            );
            let mut slots: Vec<u32> = (0..units).map(|u| alloc.slot(u * 10).unwrap()).collect();
            for (unit, &slot) in slots.iter().enumerate() {
                let mut buf = vec![0u8; UNIT as usize];
                alloc
                    .file
                    .read_exact_at(&mut buf, alloc.layout.data_offset(slot))
                    .unwrap();
                assert!(buf.iter().all(|&b| b == unit as u8 + 1), "unit {unit}");
            }
            slots.sort();
            assert_eq!(slots, (0..units as u32).collect::<Vec<_>>(), "still dense");
        }
    }

    #[test]
    fn concurrent_writers_of_one_unit_share_its_slot() {
        let disk = map(1 << 30);
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let disk = &disk;
                s.spawn(move || {
                    for i in 0..64u64 {
                        let offset = i * UNIT + u64::from(t) * 1024;
                        disk.write_at(&[t + 1; 1024], offset).unwrap();
                    }
                });
            }
        });
        let got = read(&disk, 0, 64 * UNIT as usize);
        for (i, b) in got.iter().enumerate() {
            assert_eq!(*b, ((i % UNIT as usize) / 1024) as u8 + 1);
        }
        assert_eq!(disk.into_allocation().unwrap().slots, 64);
    }

    #[test]
    fn growing_past_the_limit_is_an_error() {
        let disk = map(1 << 20);
        disk.grow_to(1 << 20).unwrap();
        let err = disk.grow_to((1 << 20) + 1).unwrap_err();
        assert!(err.to_string().contains("at most 1048576 bytes"), "{err}");
        assert!(disk.write_at(&[1], 1 << 20).is_err());
    }
}
