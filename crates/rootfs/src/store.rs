//! Where file data goes while layers are applied.
//!
//! Layer application streams every regular file's bytes into a [`ContentStore`] and records
//! in the tree where they went. [`SpillFile`] is the general-purpose store (an unlinked
//! temporary file); a filesystem writer can supply its own store that puts the bytes straight
//! into their final place in its output, so each byte is written exactly once.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A sink for file contents.
pub trait ContentStore: Send {
    /// Stores exactly `len` bytes read from `data` and returns their offset in the store.
    /// They are the bytes at `file_offset` in their file, which a store that places data
    /// in filesystem blocks uses to align them. An early end of `data` is an error
    /// (`UnexpectedEof`).
    fn store(&mut self, file_offset: u64, len: u64, data: &mut dyn Read) -> io::Result<u64>;

    /// Reads stored bytes back (configuration files that are edited after the layers).
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Tells the store that `len` bytes at `offset` are dead: the file they belonged to was
    /// deleted or replaced by a later layer. A store must make sure they never reach its
    /// output; it may reuse the space.
    fn release(&mut self, offset: u64, len: u64) -> io::Result<()>;
}

/// Size of the write buffer in front of the spill file.
const SPILL_BUFFER: usize = 1 << 20;

/// A content store in an unlinked temporary file: file data lives on disk (page cache), not
/// in the process's memory, and the file disappears when the store is dropped.
pub struct SpillFile {
    file: File,
    buffer: Vec<u8>,
    /// Bytes handed out so far; the file holds `flushed` of them, the buffer the rest.
    len: u64,
    flushed: u64,
    released: u64,
}

impl SpillFile {
    /// A spill file in the system's temporary directory (`$TMPDIR`).
    pub fn new() -> io::Result<SpillFile> {
        Ok(SpillFile::from_file(tempfile::tempfile()?))
    }

    /// A spill file in `dir` (e.g. next to the output, on the same filesystem).
    pub fn new_in(dir: &Path) -> io::Result<SpillFile> {
        Ok(SpillFile::from_file(tempfile::tempfile_in(dir)?))
    }

    fn from_file(file: File) -> SpillFile {
        SpillFile {
            file,
            buffer: Vec::with_capacity(SPILL_BUFFER),
            len: 0,
            flushed: 0,
            released: 0,
        }
    }

    /// Bytes stored, released ones included.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes released by [`ContentStore::release`].
    pub fn released(&self) -> u64 {
        self.released
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.file.write_all_at(&self.buffer, self.flushed)?;
            self.flushed += self.buffer.len() as u64;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Ends writing and gives a reader for the stored data.
    pub fn into_reader(mut self) -> io::Result<SpillReader> {
        self.flush()?;
        Ok(SpillReader { file: self.file })
    }
}

impl ContentStore for SpillFile {
    /// Packs data back to back: the file offset does not matter here.
    fn store(&mut self, _file_offset: u64, len: u64, data: &mut dyn Read) -> io::Result<u64> {
        let offset = self.len;
        let mut remaining = len;
        while remaining > 0 {
            if self.buffer.len() == self.buffer.capacity() {
                self.flush()?;
            }
            let spare = self.buffer.capacity() - self.buffer.len();
            let want = spare.min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let start = self.buffer.len();
            self.buffer.resize(start + want, 0);
            let n = match data.read(&mut self.buffer[start..]) {
                Ok(n) => n,
                Err(e) => {
                    self.buffer.truncate(start);
                    return Err(e);
                }
            };
            self.buffer.truncate(start + n);
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            remaining -= n as u64;
            self.len += n as u64;
        }
        Ok(offset)
    }

    /// What is still buffered included.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.flush()?;
        self.file.read_exact_at(buf, offset)
    }

    fn release(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.released += len;
        // Give the disk space back for the part already in the file; the part still in the
        // buffer is simply never read. A spill file is private and unlinked, so this is about
        // space, not secrecy.
        let end = (offset + len).min(self.flushed);
        if end > offset {
            punch_hole(&self.file, offset, end - offset);
        }
        Ok(())
    }
}

/// Frees the disk blocks of a byte range. Best effort: a filesystem without hole punching
/// just keeps the bytes.
fn punch_hole(file: &File, offset: u64, len: u64) {
    use rustix::fs::{fallocate, FallocateFlags};
    let _ = fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    );
}

/// Read access to a finished [`SpillFile`].
pub struct SpillReader {
    file: File,
}

impl SpillReader {
    /// The spill file, for copies that the kernel can do (`copy_file_range`).
    pub fn as_file(&self) -> &File {
        &self.file
    }

    /// Reads exactly `buf.len()` bytes at `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Copies `len` bytes at `offset` to `out`, through `scratch` as a buffer.
    pub fn copy_to(
        &self,
        offset: u64,
        len: u64,
        out: &mut dyn Write,
        scratch: &mut [u8],
    ) -> io::Result<()> {
        let mut done = 0;
        while done < len {
            let n = scratch
                .len()
                .min(usize::try_from(len - done).unwrap_or(usize::MAX));
            self.file.read_exact_at(&mut scratch[..n], offset + done)?;
            out.write_all(&scratch[..n])?;
            done += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_reads_back_across_buffer_flushes() {
        let mut spill = SpillFile::new().unwrap();
        let big: Vec<u8> = (0..(3 * SPILL_BUFFER + 17))
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let a = spill.store(0, 5, &mut &b"hello"[..]).unwrap();
        let b = spill.store(0, big.len() as u64, &mut &big[..]).unwrap();
        let c = spill.store(0, 3, &mut &b"end"[..]).unwrap();
        assert_eq!((a, b, c), (0, 5, 5 + big.len() as u64));
        spill.release(b, 10).unwrap();
        assert_eq!(spill.released(), 10);
        let reader = spill.into_reader().unwrap();
        let mut buf = vec![0; big.len()];
        reader.read_exact_at(&mut buf, b).unwrap();
        // The released range was punched: it reads as zeros, the rest is intact.
        assert_eq!(buf[..10], [0u8; 10]);
        assert_ne!(big[1..10], [0u8; 9]);
        assert_eq!(buf[10..], big[10..]);
        let mut end = [0; 3];
        reader.read_exact_at(&mut end, c).unwrap();
        assert_eq!(&end, b"end");
    }

    #[test]
    fn short_input_is_an_error() {
        let mut spill = SpillFile::new().unwrap();
        let err = spill.store(0, 10, &mut &b"short"[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
