//! A sequential writer for the formats written front to back (compressed qcow2,
//! streamOptimized VMDK, the archives of `bundle/`): bytes gather in a buffer and go out in
//! large positioned writes, optionally hashed on the way.
//!
//! Positions are relative to a base offset in the file, so an image can be written inside an
//! archive member exactly as it would be alone: its own offsets and alignments count from
//! its first byte.

use std::fs::File;
use std::os::unix::fs::FileExt;

use d2l_blob::{Digest, Sha256};

use crate::usize_from;
use crate::{Error, Result};

/// Bytes gathered before a write.
const BUFFER: usize = 4 << 20;

/// Writes `file` from an offset on, in order.
#[derive(Debug)]
pub(crate) struct SeqWriter<'a> {
    file: &'a File,
    /// File offset of position 0.
    base: u64,
    /// Position of `buf[0]`.
    start: u64,
    buf: Vec<u8>,
    /// SHA-256 of every byte written since position 0, when asked for: then the writer
    /// must start at 0 and write every byte (no gaps).
    hash: Option<Sha256>,
}

impl<'a> SeqWriter<'a> {
    /// A writer whose first byte goes to file offset `offset` (position = file offset).
    pub fn new(file: &'a File, offset: u64) -> Self {
        SeqWriter::within(file, 0, offset)
    }

    /// A writer whose position 0 is file offset `base`, starting at position `start`.
    pub fn within(file: &'a File, base: u64, start: u64) -> Self {
        SeqWriter {
            file,
            base,
            start,
            buf: Vec::with_capacity(BUFFER),
            hash: None,
        }
    }

    /// A writer at file offset `base` (position 0) that hashes what it writes.
    pub fn hashing(file: &'a File, base: u64) -> Self {
        SeqWriter {
            hash: Some(Sha256::new()),
            ..SeqWriter::within(file, base, 0)
        }
    }

    /// The position the next byte goes to.
    pub fn pos(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends zeros up to the next multiple of `align` (counted from position 0).
    pub fn pad_to(&mut self, align: u64) -> Result<()> {
        let pad = self.pos().next_multiple_of(align) - self.pos();
        self.buf.resize(self.buf.len() + usize_from(pad), 0);
        Ok(())
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> Result<()> {
        let at = self.base + self.start;
        if let Some(hash) = &mut self.hash {
            hash.update(&self.buf);
        }
        self.file
            .write_all_at(&self.buf, at)
            .map_err(Error::output("writing the image", at))?;
        self.start += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes out what is buffered; returns the end position and, for a hashing writer,
    /// the SHA-256 of everything written.
    pub fn finish(mut self) -> Result<(u64, Option<Digest>)> {
        self.flush()?;
        Ok((self.start, self.hash.map(Sha256::finish)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_from_the_base_and_the_hash_covers_every_byte() {
        let file = tempfile::tempfile().unwrap();
        let mut w = SeqWriter::hashing(&file, 1000);
        w.write(b"abc").unwrap();
        w.pad_to(8).unwrap();
        assert_eq!(
            w.pos(),
            8,
            "aligned from position 0, not from the file's start"
        );
        w.write(b"z").unwrap();
        let (end, digest) = w.finish().unwrap();
        assert_eq!(end, 9);
        let mut back = vec![0u8; 9];
        file.read_exact_at(&mut back, 1000).unwrap();
        assert_eq!(back, b"abc\0\0\0\0\0z");
        assert_eq!(digest.unwrap(), Digest::sha256_of(&back));
    }
}
