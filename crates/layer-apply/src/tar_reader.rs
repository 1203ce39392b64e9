//! A streaming reader of layer tar archives.
//!
//! The `tar` crate parses single header blocks; everything that spans blocks is done here:
//! PAX records (parsed by their length prefix, so binary xattr values with newlines survive),
//! GNU long names, GNU and PAX sparse files. Numbers follow POSIX pax and GNU tar (base-256
//! numeric fields included).

// Sizes, offsets and counts here come from the archive: arithmetic on them is checked or
// saturating; the few functions whose arithmetic is bounded by construction say why.
#![warn(clippy::arithmetic_side_effects)]

use std::io::{self, Read};

use crate::error::EntryError;
use d2l_rootfs::Timestamp;

/// Size of a tar block.
pub const BLOCK: u64 = 512;
/// [`BLOCK`] as a buffer length.
pub const BLOCK_LEN: usize = 512;
const _: () = assert!(BLOCK_LEN as u64 == BLOCK);

/// Most metadata one entry may carry before its data, in bytes of the archive: the payloads of
/// all its PAX (`x`, `g`) and GNU long-name (`L`, `K`) headers together, its GNU sparse
/// extension blocks (512 bytes each) and its PAX sparse 1.0 map. What the reader holds for
/// one entry is bounded by it (at most 16 bytes of sparse map per 4 bytes of archive, e.g.
/// `1,1,`: 64 MiB for a 16 MiB map). 16 MiB is a sparse map of about a million runs (a
/// file with data every other 4 KiB block for 8 GiB) or a few hundred maximal xattr sets,
/// and it caps the payload of any one header too. Past it: [`EntryError::MetadataTooLarge`],
/// before the header that goes past it is read.
pub const MAX_ENTRY_METADATA: u64 = 16 << 20;

/// Most bytes of extended attributes one inode may have: names plus values, after the keep
/// and drop rules. Linux's VFS caps one value at `XATTR_SIZE_MAX` and the list of an inode's
/// names at `XATTR_LIST_MAX`, both 64 KiB, so no filesystem a layer was made on held more
/// than about that; ext4 holds far less without the `ea_inode` feature (one 4 KiB block plus
/// 96 bytes in the inode, which the ext4 writer checks on its own). Past it:
/// [`EntryError::XattrsTooLarge`] when applying, and an error naming the path from
/// [`write_tar`](crate::write_tar).
pub const MAX_XATTR_BYTES: usize = 64 << 10;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file ('0', NUL, '7', or GNU sparse 'S').
    File,
    /// Hard link to `link_target` ('1').
    HardLink,
    /// Symbolic link to `link_target` ('2').
    Symlink,
    /// Character device ('3').
    CharDevice,
    /// Block device ('4').
    BlockDevice,
    /// Directory ('5').
    Directory,
    /// Named pipe ('6').
    Fifo,
}

/// One data run of a sparse file: `len` bytes at `offset` in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseRun {
    /// Offset in the expanded file.
    pub offset: u64,
    /// Length of the run.
    pub len: u64,
}

/// A tar entry's header, with PAX and GNU extensions applied.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path as stored (not yet normalised), bytes.
    pub path: Vec<u8>,
    /// Link target for hard and symbolic links.
    pub link_target: Vec<u8>,
    /// Entry type.
    pub kind: EntryKind,
    /// Mode bits from the header (file type bits not included).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// Device numbers for device entries.
    pub device: (u32, u32),
    /// Extended attributes in archive order (SCHILY and LIBARCHIVE forms, not yet filtered).
    pub xattrs: Vec<PaxXattr>,
    /// Logical size of a regular file (the expanded size for sparse files).
    pub size: u64,
    /// For sparse files, the stored data runs in file order; `None` for ordinary files.
    pub sparse: Option<Vec<SparseRun>>,
    /// Offset of this entry's first header block in the decompressed stream.
    pub offset: u64,
}

/// An xattr as found in a PAX header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaxXattr {
    /// Attribute name.
    pub name: Vec<u8>,
    /// Raw value.
    pub value: Vec<u8>,
    /// True for `SCHILY.xattr.*`, false for `LIBARCHIVE.xattr.*`.
    pub schily: bool,
}

/// Reads entries one after the other from a decompressed layer stream.
pub struct TarReader<R> {
    inner: R,
    /// Bytes consumed from `inner`.
    position: u64,
    /// Data bytes of the current entry not yet read by the caller.
    data_left: u64,
    /// Padding after the current entry's data.
    padding_left: u64,
    /// Path of the current entry, for a failure while skipping the rest of its data.
    current_path: Vec<u8>,
    finished: bool,
}

/// Why [`TarReader::next_entry`] failed: where, the best path known, what.
#[derive(Debug)]
pub struct ReadFailure {
    /// Offset of the entry's first header block in the decompressed stream.
    pub offset: u64,
    /// The entry's path from its extension headers or its header's name field, as stored.
    pub path: Vec<u8>,
    /// What is wrong.
    pub error: EntryError,
}

/// Extensions collected from PAX and GNU meta entries, applied to the next real header.
#[derive(Default)]
struct Pending {
    /// Metadata bytes of the entry so far (see [`MAX_ENTRY_METADATA`]).
    spent: u64,
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    uid: Option<u64>,
    gid: Option<u64>,
    size: Option<u64>,
    mtime: Option<Timestamp>,
    xattrs: Vec<PaxXattr>,
    sparse: PaxSparse,
}

impl Pending {
    /// Counts `bytes` more of the entry's metadata against [`MAX_ENTRY_METADATA`].
    fn spend(&mut self, bytes: u64) -> Result<(), EntryError> {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > MAX_ENTRY_METADATA {
            return Err(EntryError::MetadataTooLarge(self.spent));
        }
        Ok(())
    }
}

#[derive(Default)]
struct PaxSparse {
    major: Option<u64>,
    minor: Option<u64>,
    name: Option<Vec<u8>>,
    real_size: Option<u64>,
    /// Version 0.1 `GNU.sparse.map`, or 0.0 offset/numbytes pairs.
    map: Vec<u64>,
}

impl<R: Read> TarReader<R> {
    /// A reader at the start of an archive.
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            position: 0,
            data_left: 0,
            padding_left: 0,
            current_path: Vec::new(),
            finished: false,
        }
    }

    /// The underlying reader (e.g. to drain what follows the end-of-archive marker).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next entry, or `None` at the end-of-archive marker or a clean end of stream. Data
    /// the caller did not read of the previous entry is skipped. A failure says where, and
    /// the best path known for the entry: from its PAX or GNU long-name header, else its
    /// header's name field (empty when no header of the entry was read yet).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ReadFailure> {
        let mut path = Vec::new();
        self.next_entry_inner(&mut path)
            .map_err(|(offset, error)| ReadFailure {
                offset,
                path,
                error,
            })
    }

    fn next_entry_inner(
        &mut self,
        known_path: &mut Vec<u8>,
    ) -> Result<Option<Entry>, (u64, EntryError)> {
        let mut pending = Pending::default();
        let mut first_offset = None;
        loop {
            if let Err(e) = self.skip_rest() {
                known_path.clone_from(&self.current_path);
                return Err((self.position, e));
            }
            if self.finished {
                return Ok(None);
            }
            let offset = self.position;
            let first = *first_offset.get_or_insert(offset);
            let mut block = [0u8; BLOCK_LEN];
            match self.read_block(&mut block) {
                Ok(true) => {}
                Ok(false) => {
                    if first != offset {
                        return Err((first, EntryError::Truncated));
                    }
                    // End of stream without an end-of-archive marker: accepted, as tar does.
                    self.finished = true;
                    return Ok(None);
                }
                Err(e) => return Err((offset, e)),
            }
            if block.iter().all(|&b| b == 0) {
                if first != offset {
                    return Err((
                        first,
                        EntryError::BadHeader("zero block after an extension header".into()),
                    ));
                }
                self.finished = true;
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block);
            let type_byte = block[156];
            let is_meta = matches!(type_byte, b'x' | b'g' | b'L' | b'K');
            if !is_meta && pending.path.is_none() {
                *known_path = name_field(&block);
            }
            check_checksum(&block).map_err(|e| (offset, e))?;
            let size = pending
                .size
                .take()
                .map(Ok)
                .unwrap_or_else(|| header.entry_size())
                .map_err(|e| (offset, EntryError::BadHeader(format!("size field: {e}"))))?;
            if is_meta {
                pending.spend(size).map_err(|e| (offset, e))?;
            }
            match type_byte {
                b'x' => {
                    let payload = self.read_meta_payload(size).map_err(|e| (offset, e))?;
                    let parsed = parse_pax(&payload, &mut pending);
                    if let Some(p) = &pending.path {
                        known_path.clone_from(p);
                    }
                    parsed.map_err(|e| (offset, e))?;
                    continue;
                }
                b'g' => {
                    // Global PAX headers carry nothing a rootfs needs (they set defaults that
                    // image builders do not use); skip them.
                    self.read_meta_payload(size).map_err(|e| (offset, e))?;
                    continue;
                }
                b'L' => {
                    let payload = self.read_meta_payload(size).map_err(|e| (offset, e))?;
                    let p = trim_nuls(payload);
                    known_path.clone_from(&p);
                    pending.path = Some(p);
                    continue;
                }
                b'K' => {
                    let payload = self.read_meta_payload(size).map_err(|e| (offset, e))?;
                    pending.link = Some(trim_nuls(payload));
                    continue;
                }
                _ => {}
            }
            if let Some(p) = &pending.path {
                known_path.clone_from(p);
            }
            let entry = self
                .finish_entry(header, &block, size, pending, first)
                .map_err(|e| (offset, e))?;
            return Ok(Some(entry));
        }
    }

    fn finish_entry(
        &mut self,
        header: &tar::Header,
        block: &[u8; BLOCK_LEN],
        stored_size: u64,
        mut pending: Pending,
        offset: u64,
    ) -> Result<Entry, EntryError> {
        let type_byte = block[156];
        let kind = match type_byte {
            b'0' | b'\0' | b'7' | b'S' => EntryKind::File,
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            other => return Err(EntryError::UnsupportedType(other)),
        };
        let num = |r: io::Result<u64>, what: &str| {
            r.map_err(|e| EntryError::BadHeader(format!("{what} field: {e}")))
        };
        let mode = header
            .mode()
            .map_err(|e| EntryError::BadHeader(format!("mode field: {e}")))?;
        let uid = match pending.uid {
            Some(v) => v,
            None => num(header.uid(), "uid")?,
        };
        let gid = match pending.gid {
            Some(v) => v,
            None => num(header.gid(), "gid")?,
        };
        let mtime = match pending.mtime {
            Some(t) => t,
            None => Timestamp {
                seconds: i64::try_from(num(header.mtime(), "mtime")?).unwrap_or(i64::MAX),
                nanoseconds: 0,
            },
        };
        let device = if matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
            // devmajor and devminor fields of the ustar header; some writers leave them empty.
            let number = |field: &[u8]| {
                parse_numeric(field).and_then(|v| {
                    u32::try_from(v)
                        .map_err(|_| EntryError::BadHeader(format!("device number {v} too large")))
                })
            };
            (number(&block[329..337])?, number(&block[337..345])?)
        } else {
            (0, 0)
        };
        let mut path = pending
            .path
            .take()
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let link_target = pending
            .link
            .take()
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
            .unwrap_or_default();

        // Entries other than files carry no data, whatever the size field says (hard links
        // may, in some writers' output, and the data is then ignored).
        self.data_left = stored_size;
        self.padding_left = padding(stored_size);

        let mut size = stored_size;
        let mut sparse = None;
        if type_byte == b'S' {
            let (runs, real) = self.gnu_sparse_map(header, &mut pending)?;
            sparse = Some(runs);
            size = real;
        } else if pending.sparse.major.is_some()
            || pending.sparse.real_size.is_some()
            || !pending.sparse.map.is_empty()
        {
            let sp = std::mem::take(&mut pending.sparse);
            let runs = match (sp.major, sp.minor) {
                (Some(1), Some(0)) => self.pax_sparse_1_0_map(&mut pending)?,
                (None, _) | (Some(0), _) => pairs_to_runs(&sp.map)?,
                (major, minor) => {
                    return Err(EntryError::BadPax(format!(
                        "unsupported GNU sparse format {}.{}",
                        major.unwrap_or(0),
                        minor.unwrap_or(0)
                    )))
                }
            };
            if let Some(name) = sp.name {
                path = name;
            }
            size = sp.real_size.ok_or_else(|| {
                EntryError::BadPax("sparse file without GNU.sparse.realsize".into())
            })?;
            sparse = Some(runs);
        }
        if let Some(runs) = &sparse {
            validate_runs(runs, size, self.data_left)?;
        }
        self.current_path.clone_from(&path);
        Ok(Entry {
            path,
            link_target,
            kind,
            mode,
            uid,
            gid,
            mtime,
            device,
            xattrs: pending.xattrs,
            size,
            sparse,
            offset,
        })
    }

    /// The sparse map of an old GNU 'S' header: four slots in the header, then extension
    /// blocks of 21 slots while the "is extended" flag is set.
    fn gnu_sparse_map(
        &mut self,
        header: &tar::Header,
        budget: &mut Pending,
    ) -> Result<(Vec<SparseRun>, u64), EntryError> {
        let gnu = header
            .as_gnu()
            .ok_or_else(|| EntryError::BadHeader("sparse entry without a GNU header".into()))?;
        let bad = |e: io::Error| EntryError::BadHeader(format!("GNU sparse map: {e}"));
        let mut runs = Vec::new();
        for slot in &gnu.sparse {
            if slot.is_empty() {
                break;
            }
            runs.push(SparseRun {
                offset: slot.offset().map_err(bad)?,
                len: slot.length().map_err(bad)?,
            });
        }
        let mut extended = gnu.is_extended();
        while extended {
            budget.spend(BLOCK)?;
            let mut block = [0u8; BLOCK_LEN];
            if !self.read_block(&mut block)? {
                return Err(EntryError::Truncated);
            }
            // Layout of a GNU sparse extension block: 21 slots of 24 bytes (offset and
            // length, 12 octal bytes each), then the "is extended" flag at byte 504.
            for slot in block[..504].chunks_exact(24) {
                if slot[0] == 0 {
                    break;
                }
                let offset = parse_numeric(&slot[..12])?;
                let len = parse_numeric(&slot[12..24])?;
                runs.push(SparseRun { offset, len });
            }
            extended = block[504] != 0;
        }
        let real = gnu.real_size().map_err(bad)?;
        Ok((runs, real))
    }

    /// The map of a PAX sparse 1.0 file, at the start of its data: decimal numbers, one per
    /// line (count, then offset/length pairs), padded to a block.
    fn pax_sparse_1_0_map(&mut self, budget: &mut Pending) -> Result<Vec<SparseRun>, EntryError> {
        let mut numbers = Vec::new();
        let mut consumed = 0u64;
        let mut line = Vec::new();
        let mut expected: Option<u64> = None;
        loop {
            if let Some(count) = expected {
                if numbers.len() as u64 == count.saturating_mul(2) {
                    break;
                }
            }
            let mut byte = [0u8; 1];
            if self.data_left == 0 {
                return Err(EntryError::BadPax(
                    "sparse 1.0 map runs past the data".into(),
                ));
            }
            budget.spend(1)?;
            self.read_data_exact(&mut byte)?;
            consumed = consumed.saturating_add(1);
            if byte[0] == b'\n' {
                let value = parse_decimal(&line)?;
                line.clear();
                if expected.is_none() {
                    // Not allocated for: the map's bytes count against MAX_ENTRY_METADATA.
                    expected = Some(value);
                } else {
                    numbers.push(value);
                }
            } else {
                line.push(byte[0]);
                if line.len() > 20 {
                    return Err(EntryError::BadPax("bad number in sparse 1.0 map".into()));
                }
            }
        }
        // The map is padded with zeros to a block boundary.
        let pad = padding(consumed);
        if pad > self.data_left {
            return Err(EntryError::Truncated);
        }
        // pad < BLOCK: the conversion cannot fail.
        let mut skip = [0u8; BLOCK_LEN];
        self.read_data_exact(&mut skip[..usize::try_from(pad).unwrap_or(0)])?;
        pairs_to_runs(&numbers)
    }

    fn read_data_exact(&mut self, buf: &mut [u8]) -> Result<(), EntryError> {
        let mut data = self.data();
        data.read_exact(buf).map_err(io_to_entry)
    }

    /// The current entry's stored data (for sparse files the data runs back to back).
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { reader: self }
    }

    fn skip_rest(&mut self) -> Result<(), EntryError> {
        // A size field can say up to u64::MAX: saturate, the stream ends long before.
        let n = self.data_left.saturating_add(self.padding_left);
        if n > 0 {
            let copied =
                io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(io_to_entry)?;
            self.position = self.position.saturating_add(copied);
            if copied < n {
                return Err(EntryError::Truncated);
            }
            self.data_left = 0;
            self.padding_left = 0;
        }
        Ok(())
    }

    /// Reads one block; `Ok(false)` at a clean end of stream before its first byte.
    fn read_block(&mut self, block: &mut [u8; BLOCK_LEN]) -> Result<bool, EntryError> {
        let mut filled = 0;
        while filled < block.len() {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled = filled.saturating_add(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_to_entry(e)),
            }
        }
        self.position = self.position.saturating_add(filled as u64);
        match filled {
            0 => Ok(false),
            512 => Ok(true),
            _ => Err(EntryError::Truncated),
        }
    }

    fn read_meta_payload(&mut self, size: u64) -> Result<Vec<u8>, EntryError> {
        // The caller counted `size` against MAX_ENTRY_METADATA: at most 16 MiB.
        let len = usize::try_from(size).map_err(|_| EntryError::MetadataTooLarge(size))?;
        let mut payload = vec![0u8; len];
        self.inner.read_exact(&mut payload).map_err(io_to_entry)?;
        self.position = self.position.saturating_add(size);
        self.padding_left = padding(size);
        Ok(payload)
    }
}

/// Reader over the current entry's data; see [`TarReader::data`].
pub struct EntryData<'a, R> {
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.reader.data_left;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.reader.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // n <= want <= left.
        self.reader.data_left = left.saturating_sub(n as u64);
        self.reader.position = self.reader.position.saturating_add(n as u64);
        Ok(n)
    }
}

fn io_to_entry(e: io::Error) -> EntryError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        EntryError::Truncated
    } else {
        EntryError::Io(e.to_string())
    }
}

fn padding(size: u64) -> u64 {
    // size % BLOCK < BLOCK: no wrap.
    BLOCK.wrapping_sub(size % BLOCK) % BLOCK
}

/// The name field of a ustar header (with its prefix field when the magic says ustar), up to
/// the first NUL of each.
fn name_field(block: &[u8; BLOCK_LEN]) -> Vec<u8> {
    let until_nul = |f: &[u8]| {
        f.iter()
            .position(|&b| b == 0)
            .map_or(f, |n| &f[..n])
            .to_vec()
    };
    // Field offsets of the POSIX ustar header: name 0..100, magic 257..263, prefix 345..500.
    let name = until_nul(&block[..100]);
    if &block[257..263] == b"ustar\0" {
        let prefix = until_nul(&block[345..500]);
        if !prefix.is_empty() {
            let mut full = prefix;
            full.push(b'/');
            full.extend_from_slice(&name);
            return full;
        }
    }
    name
}

fn trim_nuls(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Header checksum: the sum of all bytes with the checksum field counted as spaces. Old
/// writers summed signed bytes; both are accepted, as GNU tar does.
// 512 bytes of at most 255 each: the sums stay far below any overflow.
#[allow(clippy::arithmetic_side_effects)]
fn check_checksum(block: &[u8; BLOCK_LEN]) -> Result<(), EntryError> {
    const FIELD: std::ops::Range<usize> = 148..156;
    let stored = parse_octal(&block[FIELD])
        .map_err(|_| EntryError::BadHeader("unreadable header checksum".into()))?;
    // Whole-block sums, then the field swapped for spaces: loops the compiler vectorizes
    // (this was 5% of a build of a million small files).
    let sums = |bytes: &[u8]| -> (u32, i32) {
        let unsigned = bytes.iter().map(|&b| u32::from(b)).sum();
        let signed = bytes
            .iter()
            .map(|&b| i32::from(i8::from_ne_bytes([b])))
            .sum();
        (unsigned, signed)
    };
    let (block_unsigned, block_signed) = sums(block);
    let (field_unsigned, field_signed) = sums(&block[FIELD]);
    let spaces = 8 * u32::from(b' ');
    let unsigned = u64::from(block_unsigned - field_unsigned + spaces);
    let signed = i64::from(block_signed - field_signed) + i64::from(spaces);
    if stored == unsigned || i64::try_from(stored).ok() == Some(signed) {
        Ok(())
    } else {
        Err(EntryError::BadHeader(format!(
            "header checksum is {stored:o}, block sums to {unsigned:o}"
        )))
    }
}

/// An octal text field: digits up to the first NUL, spaces ignored; empty is 0.
fn parse_octal(field: &[u8]) -> Result<u64, EntryError> {
    let bad = || {
        EntryError::BadHeader(format!(
            "bad octal field {:?}",
            String::from_utf8_lossy(field).trim_end_matches('\0')
        ))
    };
    let mut value: u64 = 0;
    for &b in field
        .iter()
        .take_while(|&&b| b != 0)
        .filter(|&&b| b != b' ')
    {
        let digit = match b {
            b'0'..=b'7' => u64::from(b & 7),
            _ => return Err(bad()),
        };
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(digit))
            .ok_or_else(bad)?;
    }
    Ok(value)
}

/// A numeric header field: octal text, or GNU base-256 (high bit of the first byte set, the
/// rest a big-endian binary number) for values that do not fit in octal.
fn parse_numeric(field: &[u8]) -> Result<u64, EntryError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| EntryError::BadHeader("base-256 field overflows".into()))?;
        }
        return Ok(value);
    }
    parse_octal(field)
}

fn parse_decimal(text: &[u8]) -> Result<u64, EntryError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            EntryError::BadPax(format!("bad number {:?}", String::from_utf8_lossy(text)))
        })
}

fn pairs_to_runs(numbers: &[u64]) -> Result<Vec<SparseRun>, EntryError> {
    if !numbers.len().is_multiple_of(2) {
        return Err(EntryError::BadPax(
            "odd number of values in sparse map".into(),
        ));
    }
    Ok(numbers
        .chunks_exact(2)
        .map(|p| SparseRun {
            offset: p[0],
            len: p[1],
        })
        .collect())
}

/// Runs must be in order, not overlapping, inside the file, and add up to the stored data.
fn validate_runs(runs: &[SparseRun], size: u64, stored: u64) -> Result<(), EntryError> {
    let mut end = 0u64;
    let mut total = 0u64;
    for run in runs {
        let run_end = run
            .offset
            .checked_add(run.len)
            .ok_or_else(|| EntryError::BadPax("sparse run overflows".into()))?;
        if run.offset < end || run_end > size {
            return Err(EntryError::BadPax(format!(
                "sparse run {}+{} out of order or beyond the file size {size}",
                run.offset, run.len
            )));
        }
        end = run_end;
        // Runs are in order, apart and inside the file: the total is at most its size.
        total = total.saturating_add(run.len);
    }
    if total != stored {
        return Err(EntryError::BadPax(format!(
            "sparse map covers {total} bytes but the entry stores {stored}"
        )));
    }
    Ok(())
}

/// Parses PAX extended header records: `LEN KEY=VALUE\n`, where LEN counts the whole record.
/// The value is taken by length, not up to a newline, so binary values are preserved.
// Index arithmetic only, each checked against the record before use (`space < rest.len()`,
// `space + 1 < len <= rest.len()`, `eq < record.len()`).
#[allow(clippy::arithmetic_side_effects)]
fn parse_pax(payload: &[u8], pending: &mut Pending) -> Result<(), EntryError> {
    let mut rest = payload;
    while !rest.is_empty() {
        // Some writers pad the payload with NULs.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| EntryError::BadPax("record without a length".into()))?;
        let len = usize::try_from(parse_decimal(&rest[..space])?).unwrap_or(usize::MAX);
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(EntryError::BadPax(format!("record length {len} is wrong")));
        }
        let record = &rest[space + 1..len - 1];
        rest = &rest[len..];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| EntryError::BadPax("record without '='".into()))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        apply_pax_record(key, value, pending)?;
    }
    Ok(())
}

fn apply_pax_record(key: &[u8], value: &[u8], pending: &mut Pending) -> Result<(), EntryError> {
    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
        pending.xattrs.push(PaxXattr {
            name: name.to_vec(),
            value: value.to_vec(),
            schily: true,
        });
        return Ok(());
    }
    if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
        pending.xattrs.push(PaxXattr {
            name: url_decode(name)?,
            value: base64_decode(value)?,
            schily: false,
        });
        return Ok(());
    }
    match key {
        b"path" => pending.path = Some(value.to_vec()),
        b"linkpath" => pending.link = Some(value.to_vec()),
        b"uid" => pending.uid = Some(parse_decimal(value)?),
        b"gid" => pending.gid = Some(parse_decimal(value)?),
        b"size" => pending.size = Some(parse_decimal(value)?),
        b"mtime" => pending.mtime = Some(parse_pax_time(value)?),
        b"GNU.sparse.major" => pending.sparse.major = Some(parse_decimal(value)?),
        b"GNU.sparse.minor" => pending.sparse.minor = Some(parse_decimal(value)?),
        b"GNU.sparse.name" => pending.sparse.name = Some(value.to_vec()),
        b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
            pending.sparse.real_size = Some(parse_decimal(value)?)
        }
        b"GNU.sparse.map" => {
            for part in value.split(|&b| b == b',') {
                pending.sparse.map.push(parse_decimal(part)?);
            }
        }
        // Version 0.0: pairs of records, in order.
        b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
            pending.sparse.map.push(parse_decimal(value)?)
        }
        // atime, ctime, uname, gname, charset, comment...: nothing a rootfs keeps.
        _ => {}
    }
    Ok(())
}

/// `SECONDS[.FRACTION]`, possibly negative: an optional "-", at least one decimal digit, and
/// optionally "." and decimal digits (beyond nanoseconds, ignored). Anything else is an error
/// (`--1`, `+1`, `1e9`, `1.`, ` 1`). A well-formed time beyond what a [`Timestamp`] holds
/// (about ±2.9e11 years) is clamped to its nearest end: `i64::MAX` seconds and 999999999
/// nanoseconds, or `i64::MIN` seconds and 0.
// Digits are checked to be ASCII digits first; the seconds saturate; nanoseconds stay below
// 1e9 (nine digits times descending powers of ten) and `1e9 - nanos` is taken only when
// `0 < nanos < 1e9`.
#[allow(clippy::arithmetic_side_effects)]
fn parse_pax_time(value: &[u8]) -> Result<Timestamp, EntryError> {
    let bad = || EntryError::BadPax(format!("bad time {:?}", String::from_utf8_lossy(value)));
    let (negative, text) = match value.strip_prefix(b"-") {
        Some(t) => (true, t),
        None => (false, value),
    };
    let (whole, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], Some(&text[dot + 1..])),
        None => (text, None),
    };
    let digits = |t: &[u8]| !t.is_empty() && t.iter().all(u8::is_ascii_digit);
    if !digits(whole) || frac.is_some_and(|f| !digits(f)) {
        return Err(bad());
    }
    // Magnitude of the seconds, saturating: only digits, so no sign to misread.
    let magnitude = whole.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    let mut nanos: u32 = 0;
    let mut scale: u32 = 100_000_000;
    for &digit in frac.unwrap_or_default().iter().take(9) {
        nanos += u32::from(digit - b'0') * scale;
        scale /= 10;
    }
    const MAX: Timestamp = Timestamp {
        seconds: i64::MAX,
        nanoseconds: 999_999_999,
    };
    const MIN: Timestamp = Timestamp {
        seconds: i64::MIN,
        nanoseconds: 0,
    };
    if !negative {
        return Ok(match i64::try_from(magnitude) {
            Ok(seconds) => Timestamp {
                seconds,
                nanoseconds: nanos,
            },
            Err(_) => MAX,
        });
    }
    // -S.F is -(S+1) plus (1 - 0.F) seconds.
    let (magnitude, nanos) = if nanos == 0 {
        (Some(magnitude), 0)
    } else {
        (magnitude.checked_add(1), 1_000_000_000 - nanos)
    };
    let seconds = magnitude.and_then(|m| 0i64.checked_sub_unsigned(m));
    Ok(match seconds {
        Some(seconds) => Timestamp {
            seconds,
            nanoseconds: nanos,
        },
        None => MIN,
    })
}

// Indices stay below the input's length (checked with `get`).
#[allow(clippy::arithmetic_side_effects)]
fn url_decode(input: &[u8]) -> Result<Vec<u8>, EntryError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hex = input
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| EntryError::BadPax("bad %-escape in xattr name".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A `LIBARCHIVE.xattr.*` value.
fn base64_decode(input: &[u8]) -> Result<Vec<u8>, EntryError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    // libarchive pads its values, other writers may not: padding is optional.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT
        .decode(input)
        .map_err(|e| EntryError::BadPax(format!("bad base64 xattr value: {e}")))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn pax_time_parses_fractions_and_negatives() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).unwrap();
        assert_eq!(
            t("1700000000.5"),
            Timestamp {
                seconds: 1700000000,
                nanoseconds: 500_000_000
            }
        );
        assert_eq!(
            t("12.000000001"),
            Timestamp {
                seconds: 12,
                nanoseconds: 1
            }
        );
        assert_eq!(
            t("12.1234567891"),
            Timestamp {
                seconds: 12,
                nanoseconds: 123_456_789
            }
        );
        assert_eq!(
            t("-1.25"),
            Timestamp {
                seconds: -2,
                nanoseconds: 750_000_000
            }
        );
        assert_eq!(
            t("-3"),
            Timestamp {
                seconds: -3,
                nanoseconds: 0
            }
        );
        assert!(parse_pax_time(b"abc").is_err());
    }

    #[test]
    fn pax_time_extremes_clamp_and_malformed_times_fail() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).unwrap();
        let min = Timestamp {
            seconds: i64::MIN,
            nanoseconds: 0,
        };
        let max = Timestamp {
            seconds: i64::MAX,
            nanoseconds: 999_999_999,
        };
        assert_eq!(t("-9223372036854775808"), min);
        assert_eq!(t("-9223372036854775808.5"), min);
        assert_eq!(
            t("-9223372036854775807.5"),
            Timestamp {
                seconds: i64::MIN,
                nanoseconds: 500_000_000
            }
        );
        assert_eq!(t("-99999999999999999999999999"), min);
        assert_eq!(
            t("9223372036854775807"),
            Timestamp {
                seconds: i64::MAX,
                nanoseconds: 0
            }
        );
        assert_eq!(t("9223372036854775808"), max);
        assert_eq!(t("99999999999999999999999999.9"), max);
        for bad in [
            "--9223372036854775808",
            "-",
            "",
            "+1",
            "1.",
            ".5",
            "1.-5",
            "1.+5",
            "- 1",
            " 1",
            "1e9",
            "1.5.5",
            "-+1",
        ] {
            assert!(parse_pax_time(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pax_records_keep_binary_values_with_newlines() {
        // A security.capability value that contains a newline byte (0x0a).
        let value = [0x01, 0x00, 0x00, 0x02, 0x0a, 0x20, 0x00, 0x00];
        let key = b"SCHILY.xattr.security.capability";
        let body_len = 1 + key.len() + 1 + value.len() + 1;
        let len = body_len + 2; // two digits of length
        let mut payload = format!("{len} ").into_bytes();
        payload.extend_from_slice(key);
        payload.push(b'=');
        payload.extend_from_slice(&value);
        payload.push(b'\n');
        assert_eq!(payload.len(), len);
        payload.extend_from_slice(b"16 path=a/b/cde\n");
        let mut pending = Pending::default();
        parse_pax(&payload, &mut pending).unwrap();
        assert_eq!(pending.xattrs[0].value, value);
        assert_eq!(pending.path.as_deref(), Some(&b"a/b/cde"[..]));
    }

    #[test]
    fn numeric_fields_in_octal_and_base_256() {
        assert_eq!(parse_numeric(b"0000644\0").unwrap(), 0o644);
        assert_eq!(parse_numeric(b"\0\0\0\0").unwrap(), 0);
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[7] = 0x02; // 2 << 32
        assert_eq!(parse_numeric(&field).unwrap(), 2 << 32);
    }

    #[test]
    fn octal_fields_allow_spaces_and_refuse_the_rest() {
        assert_eq!(parse_octal(b" 17 \0xx").unwrap(), 0o17);
        assert_eq!(parse_octal(b"").unwrap(), 0);
        assert!(parse_octal(b"0009").is_err());
        assert!(parse_octal(b"+17").is_err());
        // 23 octal digits: more than 64 bits.
        assert!(parse_octal(b"77777777777777777777777").is_err());
    }

    #[test]
    fn header_checksum_accepts_unsigned_and_signed_sums_only() {
        let mut header = tar::Header::new_ustar();
        header.set_path("usr/bin/\u{e9}t\u{e9}").unwrap();
        header.set_size(5);
        header.set_cksum();
        let mut block = [0u8; BLOCK_LEN];
        block.copy_from_slice(header.as_bytes());
        check_checksum(&block).unwrap();
        // Bytes of 128 and more: the signed sum (old writers) differs, and is accepted too.
        block[148..156].fill(b' ');
        let unsigned: i64 = block.iter().map(|&b| i64::from(b)).sum();
        let signed_sum = unsigned - 256 * block.iter().filter(|&&b| b >= 128).count() as i64;
        assert_ne!(signed_sum, unsigned);
        block[148..156].copy_from_slice(format!("{signed_sum:06o}\0 ").as_bytes());
        check_checksum(&block).unwrap();
        block[0] ^= 1;
        let err = check_checksum(&block).unwrap_err().to_string();
        assert!(err.contains("header checksum is"), "{err}");
    }

    #[test]
    fn libarchive_xattrs_are_decoded() {
        assert_eq!(url_decode(b"user.a%3Db").unwrap(), b"user.a=b");
        assert_eq!(base64_decode(b"aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode(b"AAECAw==").unwrap(), [0, 1, 2, 3]);
    }

    #[test]
    fn pax_record_with_wrong_length_is_rejected() {
        let mut pending = Pending::default();
        assert!(parse_pax(b"99 path=x\n", &mut pending).is_err());
        assert!(parse_pax(b"path=x\n", &mut pending).is_err());
    }
}
