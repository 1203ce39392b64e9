//! Writes a tree as a POSIX pax tar archive, like `docker export`: numeric owners, full modes,
//! nanosecond mtimes and xattrs in PAX records, hard links as link entries, entries in
//! [`Tree::walk`] order. The same tree gives the same bytes.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use crate::error::EntryError;
use crate::tar_reader::{BLOCK, BLOCK_LEN, MAX_XATTR_BYTES};
use d2l_disk::bytes::is_zero;
use d2l_disk::VirtualDisk;
use d2l_rootfs::SpillReader;
use d2l_rootfs::{DataExtent, InodeId, InodeKind, Timestamp, Tree};

/// Largest value of an 8-byte octal header field (uid, gid, mode): 7 digits.
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value of a 12-byte octal header field (size, mtime): 11 digits.
const MAX_OCTAL_12: u64 = 0o77777777777;
/// Directory a sparse member's header names it in, before its base name, where a reader that
/// knows no sparse files puts it: GNU tar's `%d/GNUSparseFile.%p/%f` with the process id
/// fixed at 0, for reproducible output.
const SPARSE_DIR: &[u8] = b"GNUSparseFile.0/";
/// Name of the PAX extended header entries (fixed, for reproducible output).
const PAX_HEADER_NAME: &[u8] = b"././@PaxHeader";

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Entries written (PAX headers not counted).
    pub entries: u64,
    /// Bytes written in all.
    pub bytes: u64,
}

/// Files at least this large are copied inside the kernel when writing to a file.
const KERNEL_COPY_MIN: u64 = 64 * 1024;
/// Zero blocks in file data this size, aligned in the file, are written as holes (the
/// block `build` leaves as a hole in ext4 too).
const ZERO_BLOCK: u64 = 4096;
/// Most data runs one file's zero scan cuts it into; past it the rest of the file is written
/// as data. Bounds the run list in memory (24 bytes a run) and the member's sparse map.
pub const MAX_EXPORT_RUNS: usize = 1 << 14;

/// Writes `tree` as a tar stream to `out`, reading file data from `data`.
pub fn write_tar(tree: &Tree, data: &SpillReader, out: &mut dyn Write) -> io::Result<ExportStats> {
    let mut sink = StreamSink {
        out,
        bytes: 0,
        scratch: vec![0u8; 1 << 20],
    };
    write_entries(tree, data, &mut sink)
}

/// Writes `tree` as a tar file at the current end of `file`. Large file contents are copied
/// from the spill file inside the kernel (`copy_file_range`), not through this process, on
/// two threads once the headers are written.
pub fn write_tar_to_file(tree: &Tree, data: &SpillReader, file: &File) -> io::Result<ExportStats> {
    let position = file.metadata()?.len();
    let mut sink = FileSink {
        file,
        position,
        start: position,
        buffer: Vec::with_capacity(1 << 20),
        scratch: vec![0u8; 1 << 20],
        jobs: Vec::new(),
    };
    let stats = write_entries(tree, data, &mut sink)?;
    sink.flush_buffer()?;
    run_copy_jobs(&sink.jobs, data, file)?;
    Ok(stats)
}

/// Large file contents, copied after the headers are written: `len` bytes at `from` in the
/// spill file go to `to` in the archive.
struct CopyJob {
    from: u64,
    len: u64,
    to: u64,
}

/// Runs the copy jobs on two threads, split in half by bytes: positioned in-kernel copies to
/// disjoint ranges of the archive.
fn run_copy_jobs(jobs: &[CopyJob], data: &SpillReader, file: &File) -> io::Result<()> {
    let total: u64 = jobs.iter().map(|j| j.len).sum();
    let mut running = 0;
    let split = jobs
        .iter()
        .position(|j| {
            running += j.len;
            running * 2 >= total
        })
        .map_or(jobs.len(), |i| i + 1);
    let (first, second) = jobs.split_at(split);
    let run = |part: &[CopyJob]| -> io::Result<()> {
        for job in part {
            // In the kernel where it can, else through this process.
            file.copy_from(data.as_file(), job.from, job.len, job.to)?;
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        let helper = scope.spawn(|| run(second));
        let here = run(first);
        let there = helper
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("copy thread panicked")));
        here.and(there)
    })
}

/// Where the archive goes: plain bytes, and file data from the spill file.
trait TarSink: Write {
    fn copy_data(&mut self, data: &SpillReader, offset: u64, len: u64) -> io::Result<()>;
    fn written(&self) -> u64;
}

struct StreamSink<'a> {
    out: &'a mut dyn Write,
    bytes: u64,
    scratch: Vec<u8>,
}

impl Write for StreamSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl TarSink for StreamSink<'_> {
    fn copy_data(&mut self, data: &SpillReader, offset: u64, len: u64) -> io::Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = data.copy_to(offset, len, self, &mut scratch);
        self.scratch = scratch;
        result
    }
    fn written(&self) -> u64 {
        self.bytes
    }
}

struct FileSink<'a> {
    file: &'a File,
    /// File offset where the buffer's first byte goes.
    position: u64,
    start: u64,
    buffer: Vec<u8>,
    scratch: Vec<u8>,
    /// Large copies, left as gaps and done at the end.
    jobs: Vec<CopyJob>,
}

impl FileSink<'_> {
    fn flush_buffer(&mut self) -> io::Result<()> {
        self.file.write_all_at(&self.buffer, self.position)?;
        self.position += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }
}

impl Write for FileSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + buf.len() > self.buffer.capacity() {
            self.flush_buffer()?;
        }
        if buf.len() >= self.buffer.capacity() {
            self.file.write_all_at(buf, self.position)?;
            self.position += buf.len() as u64;
        } else {
            self.buffer.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flush_buffer()
    }
}

impl TarSink for FileSink<'_> {
    fn copy_data(&mut self, data: &SpillReader, offset: u64, len: u64) -> io::Result<()> {
        if len >= KERNEL_COPY_MIN {
            self.flush_buffer()?;
            self.jobs.push(CopyJob {
                from: offset,
                len,
                to: self.position,
            });
            self.position += len;
            return Ok(());
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = data.copy_to(offset, len, self, &mut scratch);
        self.scratch = scratch;
        result
    }
    fn written(&self) -> u64 {
        self.position + self.buffer.len() as u64 - self.start
    }
}

fn write_entries(
    tree: &Tree,
    data: &SpillReader,
    out: &mut dyn TarSink,
) -> io::Result<ExportStats> {
    let mut first_name: std::collections::HashMap<InodeId, Vec<u8>> = Default::default();
    let mut scratch = vec![0u8; SCAN_CHUNK];
    let mut entries = 0u64;
    let mut walk = tree.walk();
    while let Some(item) = walk.next_entry() {
        entries += 1;
        let inode = tree.inode(item.inode);
        let xattr_bytes = crate::xattr::total_bytes(&inode.xattrs);
        if xattr_bytes > MAX_XATTR_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{:?}: {}",
                    String::from_utf8_lossy(item.path),
                    EntryError::XattrsTooLarge(xattr_bytes)
                ),
            ));
        }
        let mut name = item.path.to_vec();
        if inode.as_directory().is_some() {
            name.push(b'/');
        }
        let mut fields = Fields {
            uid: inode.uid,
            gid: inode.gid,
            mtime: inode.mtime,
            mode: inode.mode,
            ..Fields::default()
        };
        if inode.as_directory().is_none() && inode.link_count() > 1 {
            if let Some(target) = first_name.get(&item.inode) {
                let link = Fields {
                    link: target,
                    ..fields
                };
                write_header(out, &name, b'1', &link)?;
                continue;
            }
            first_name.insert(item.inode, item.path.to_vec());
        }
        let type_flag = match &inode.kind {
            InodeKind::Directory(_) => b'5',
            InodeKind::File(f) => {
                fields.size = f.size;
                b'0'
            }
            InodeKind::Symlink(target) => {
                fields.link = target;
                b'2'
            }
            InodeKind::CharDevice(d) => {
                fields.device = (d.major, d.minor);
                b'3'
            }
            InodeKind::BlockDevice(d) => {
                fields.device = (d.major, d.minor);
                b'4'
            }
            InodeKind::Fifo => b'6',
        };
        fields.xattrs = &inode.xattrs;
        match &inode.kind {
            InodeKind::File(file) => {
                let runs = without_zero_blocks(data, &file.extents, &mut scratch)?;
                if file.is_sparse() || runs.len() != file.extents.len() {
                    write_sparse_file(out, data, &name, file.size, &runs, fields)?;
                } else {
                    write_header(out, &name, type_flag, &fields)?;
                    for extent in &file.extents {
                        out.copy_data(data, extent.store_offset, extent.len)?;
                    }
                    write_zeros(out, padding(file.size))?;
                }
            }
            _ => write_header(out, &name, type_flag, &fields)?,
        }
    }
    // End of archive: two zero blocks.
    out.write_all(&[0u8; 2 * BLOCK_LEN])?;
    Ok(ExportStats {
        entries,
        bytes: out.written(),
    })
}

/// Bytes of file data read at a time to look for zero blocks (a multiple of [`ZERO_BLOCK`]).
const SCAN_CHUNK: usize = 1 << 20;

/// The stored `extents` of a file with every whole [`ZERO_BLOCK`] of zeros (aligned in the
/// file) cut out: the runs of data an export writes. Equal to `extents` when there are none.
/// Once there are [`MAX_EXPORT_RUNS`] runs, the last one grows over the zeros to the next
/// data of its extent instead of a new run starting.
fn without_zero_blocks(
    data: &SpillReader,
    extents: &[DataExtent],
    scratch: &mut [u8],
) -> io::Result<Vec<DataExtent>> {
    let mut runs: Vec<DataExtent> = Vec::with_capacity(extents.len());
    let keep = |runs: &mut Vec<DataExtent>, piece: DataExtent| {
        let full = runs.len() >= MAX_EXPORT_RUNS;
        match runs.last_mut() {
            Some(last)
                if last.store_offset + (piece.file_offset - last.file_offset)
                    == piece.store_offset
                    && (last.file_offset + last.len == piece.file_offset || full) =>
            {
                // Adjacent, or past the cap: the zeros between stay data (contiguous in the
                // store, as they came from one extent).
                last.len = piece.file_offset + piece.len - last.file_offset;
            }
            _ => runs.push(piece),
        }
    };
    for extent in extents {
        let end = extent.file_offset + extent.len;
        let mut start = extent.file_offset;
        // Only extents that hold a whole aligned block can have one to cut.
        let first_block = start.next_multiple_of(ZERO_BLOCK);
        if first_block + ZERO_BLOCK > end {
            keep(&mut runs, *extent);
            continue;
        }
        while start < end {
            // A chunk ends on a block boundary (or at the extent's end).
            let mut chunk_end = (start + scratch.len() as u64).min(end);
            if chunk_end < end {
                chunk_end -= chunk_end % ZERO_BLOCK;
            }
            let store = extent.store_offset + (start - extent.file_offset);
            let chunk = &mut scratch[..usize::try_from(chunk_end - start).expect("<= scratch")];
            data.read_exact_at(chunk, store)?;
            let mut piece_start = start;
            while piece_start < chunk_end {
                let piece_end = (piece_start + 1)
                    .next_multiple_of(ZERO_BLOCK)
                    .min(chunk_end);
                let at = usize::try_from(piece_start - start).expect("<= scratch");
                let bytes =
                    &chunk[at..at + usize::try_from(piece_end - piece_start).expect("<= block")];
                let hole = bytes.len() as u64 == ZERO_BLOCK && is_zero(bytes);
                if !hole {
                    let piece = DataExtent {
                        file_offset: piece_start,
                        len: piece_end - piece_start,
                        store_offset: extent.store_offset + (piece_start - extent.file_offset),
                    };
                    keep(&mut runs, piece);
                }
                piece_start = piece_end;
            }
            start = chunk_end;
        }
    }
    Ok(runs)
}

/// A file with holes as a PAX sparse member, format 1.0 (GNU tar's `--sparse-version=1.0`,
/// its `sparse.c` and "Sparse Formats" in its manual): the header is named
/// `DIR/GNUSparseFile.0/NAME` (what a reader that knows no sparse files extracts) and its PAX
/// records give `GNU.sparse.major=1`, `GNU.sparse.minor=0`, `GNU.sparse.name` (the real path)
/// and `GNU.sparse.realsize`; the member's data is the map (decimal lines: the number of runs,
/// then each run's offset and length), zero-padded to a block, then the runs' bytes.
///
/// GNU tar reads each run from the start of a block, so every run but the last starts and
/// ends on a block boundary: the stored extents are widened to 512-byte boundaries (the
/// widening is hole, written as zeros) and merged where they meet. A file that ends in a hole
/// ends its map with a run of length 0 at its size, as GNU tar writes it, so that readers set
/// the size. Holes of a block or more are never written.
fn write_sparse_file<'a>(
    out: &mut dyn TarSink,
    data: &SpillReader,
    name: &'a [u8],
    size: u64,
    extents: &[DataExtent],
    mut fields: Fields<'a>,
) -> io::Result<()> {
    // (start, end) of each run, block aligned but the end of the file.
    let mut runs: Vec<(u64, u64)> = Vec::with_capacity(extents.len() + 1);
    for extent in extents {
        let start = extent.file_offset - extent.file_offset % BLOCK;
        let end = (extent.file_offset + extent.len)
            .div_ceil(BLOCK)
            .saturating_mul(BLOCK)
            .min(size);
        match runs.last_mut() {
            Some((_, last_end)) if *last_end >= start => *last_end = end.max(*last_end),
            _ => runs.push((start, end)),
        }
    }
    let data_bytes: u64 = runs.iter().map(|(start, end)| end - start).sum();
    if runs.last().is_none_or(|&(_, end)| end < size) {
        runs.push((size, size));
    }
    let mut map = format!("{}\n", runs.len()).into_bytes();
    for (start, end) in &runs {
        map.extend_from_slice(format!("{start}\n{}\n", end - start).as_bytes());
    }
    map.resize(map.len().next_multiple_of(BLOCK_LEN), 0);
    let stored = map.len() as u64 + data_bytes;

    let placeholder = {
        let (dir, base) = match name.iter().rposition(|&b| b == b'/') {
            Some(slash) => (&name[..=slash], &name[slash + 1..]),
            None => (&b""[..], name),
        };
        let mut p = dir.to_vec();
        p.extend_from_slice(SPARSE_DIR);
        p.extend_from_slice(base);
        p
    };
    fields.size = stored;
    fields.sparse = Some((name, size));
    write_header(out, &placeholder, b'0', &fields)?;
    out.write_all(&map)?;
    let mut extents = extents.iter().peekable();
    for &(start, end) in &runs {
        let mut position = start;
        while let Some(extent) = extents.next_if(|e| e.file_offset < end) {
            write_zeros(out, extent.file_offset - position)?;
            out.copy_data(data, extent.store_offset, extent.len)?;
            position = extent.file_offset + extent.len;
        }
        write_zeros(out, end - position)?;
    }
    write_zeros(out, padding(stored))
}

fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

fn write_zeros(out: &mut dyn Write, mut n: u64) -> io::Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0u8; 64 * 1024];
    while n > 0 {
        let k = ZEROS.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        out.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// What a header says besides its name and type.
#[derive(Default)]
struct Fields<'a> {
    /// Size of the member's data.
    size: u64,
    uid: u32,
    gid: u32,
    mtime: Timestamp,
    /// Link target (hard and symbolic links).
    link: &'a [u8],
    device: (u32, u32),
    xattrs: &'a [d2l_rootfs::Xattr],
    mode: u16,
    /// For a sparse member: the real name and size (`GNU.sparse.name`, `.realsize`).
    sparse: Option<(&'a [u8], u64)>,
}

/// Writes a ustar header, preceded by a PAX header when a value does not fit the ustar
/// fields or cannot be said in them (nanoseconds, xattrs, long names, sparse files).
fn write_header(
    out: &mut dyn Write,
    name: &[u8],
    type_flag: u8,
    fields: &Fields<'_>,
) -> io::Result<()> {
    let &Fields {
        size,
        uid,
        gid,
        mtime,
        link,
        device,
        xattrs,
        mode,
        sparse,
    } = fields;
    let mut pax: Vec<u8> = Vec::new();
    if name.len() > 100 {
        pax_record(&mut pax, b"path", name);
    }
    if link.len() > 100 {
        pax_record(&mut pax, b"linkpath", link);
    }
    if u64::from(uid) > MAX_OCTAL_8 {
        pax_record(&mut pax, b"uid", uid.to_string().as_bytes());
    }
    if u64::from(gid) > MAX_OCTAL_8 {
        pax_record(&mut pax, b"gid", gid.to_string().as_bytes());
    }
    if size > MAX_OCTAL_12 {
        pax_record(&mut pax, b"size", size.to_string().as_bytes());
    }
    // The ustar field holds 0..=MAX_OCTAL_12 whole seconds; anything else goes in a record.
    let ustar_seconds = u64::try_from(mtime.seconds)
        .ok()
        .filter(|&s| s <= MAX_OCTAL_12);
    let mtime_fits = mtime.nanoseconds == 0 && ustar_seconds.is_some();
    if !mtime_fits {
        pax_record(&mut pax, b"mtime", format_pax_time(mtime).as_bytes());
    }
    // After `path` and `size`, which name and size the placeholder: readers that apply
    // records in order (Python's tarfile) take the real name and size from these.
    if let Some((real_name, real_size)) = sparse {
        pax_record(&mut pax, b"GNU.sparse.major", b"1");
        pax_record(&mut pax, b"GNU.sparse.minor", b"0");
        pax_record(&mut pax, b"GNU.sparse.name", real_name);
        pax_record(
            &mut pax,
            b"GNU.sparse.realsize",
            real_size.to_string().as_bytes(),
        );
    }
    for (xname, value) in xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(xname);
        pax_record(&mut pax, &key, value);
    }
    if !pax.is_empty() {
        let header = ustar_header(
            PAX_HEADER_NAME,
            b'x',
            pax.len() as u64,
            0,
            0,
            0,
            b"",
            (0, 0),
            0o644,
        );
        out.write_all(&header)?;
        out.write_all(&pax)?;
        write_zeros(out, padding(pax.len() as u64))?;
    }
    // Out of range: the nearest end of the field (the PAX record has the exact time).
    let seconds = ustar_seconds.unwrap_or(if mtime.seconds < 0 { 0 } else { MAX_OCTAL_12 });
    let header = ustar_header(
        &name[..name.len().min(100)],
        type_flag,
        size.min(MAX_OCTAL_12),
        u64::from(uid).min(MAX_OCTAL_8),
        u64::from(gid).min(MAX_OCTAL_8),
        seconds,
        &link[..link.len().min(100)],
        device,
        mode,
    );
    out.write_all(&header)
}

#[allow(clippy::too_many_arguments)]
fn ustar_header(
    name: &[u8],
    type_flag: u8,
    size: u64,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: &[u8],
    device: (u32, u32),
    mode: u16,
) -> [u8; BLOCK_LEN] {
    // Field offsets of the POSIX ustar header (POSIX.1-2017, pax "ustar Interchange Format").
    let mut h = [0u8; BLOCK_LEN];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], u64::from(mode & 0o7777));
    octal(&mut h[108..116], uid);
    octal(&mut h[116..124], gid);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = type_flag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // Written for every entry, as GNU tar does: some readers reject empty numeric fields.
    octal(&mut h[329..337], u64::from(device.0));
    octal(&mut h[337..345], u64::from(device.1));
    // Checksum: sum of all bytes with the checksum field read as spaces; six octal digits,
    // NUL, space.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let digits = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(digits.as_bytes());
    h
}

/// Zero-padded octal digits filling the field but its last byte, which stays NUL.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(&text.as_bytes()[text.len() - width..]);
}

fn format_pax_time(t: Timestamp) -> String {
    if t.nanoseconds == 0 {
        return t.seconds.to_string();
    }
    if t.seconds >= 0 {
        format!("{}.{:09}", t.seconds, t.nanoseconds)
    } else {
        // -1.25 is seconds -2 plus 0.75.
        // (seconds + 1) is at most 0, so its negation cannot overflow.
        let whole = -(t.seconds + 1);
        let frac = 1_000_000_000u32.saturating_sub(t.nanoseconds);
        format!("-{whole}.{frac:09}")
    }
}

/// Appends `LEN KEY=VALUE\n`, where LEN counts the whole record, its own digits included.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = 1 + key.len() + 1 + value.len() + 1; // " KEY=VALUE\n"
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"abc");
        assert_eq!(v, b"12 path=abc\n");
        let mut v = Vec::new();
        let value = vec![b'x'; 91];
        pax_record(&mut v, b"path", &value);
        // " path=" + 91 + "\n" = 98 bytes: with 2 digits 100, which needs 3, so 101.
        assert_eq!(&v[..4], b"101 ");
        assert_eq!(v.len(), 101);
    }

    #[test]
    fn negative_and_fractional_times() {
        assert_eq!(
            format_pax_time(Timestamp {
                seconds: 5,
                nanoseconds: 1
            }),
            "5.000000001"
        );
        assert_eq!(
            format_pax_time(Timestamp {
                seconds: -2,
                nanoseconds: 750_000_000
            }),
            "-1.250000000"
        );
        assert_eq!(
            format_pax_time(Timestamp {
                seconds: -3,
                nanoseconds: 0
            }),
            "-3"
        );
    }

    #[test]
    fn header_checksum_is_valid_for_the_tar_crate() {
        let h = ustar_header(
            b"etc/passwd",
            b'0',
            10,
            0,
            0,
            1_700_000_000,
            b"",
            (0, 0),
            0o4755,
        );
        let header = tar::Header::from_byte_slice(&h);
        assert_eq!(header.cksum().unwrap(), {
            let mut copy = h;
            copy[148..156].fill(b' ');
            copy.iter().map(|&b| u32::from(b)).sum::<u32>()
        });
        assert_eq!(header.mode().unwrap(), 0o4755);
        assert_eq!(header.mtime().unwrap(), 1_700_000_000);
        assert_eq!(&*header.path_bytes(), b"etc/passwd");
    }
}
