//! A sequential writer for the formats written front to back (compressed qcow2,
//! streamOptimized VMDK): bytes gather in a buffer and go out in large positioned writes.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::usize_from;
use crate::{Error, Result};

/// Bytes gathered before a write.
const BUFFER: usize = 4 << 20;

/// Writes `file` from an offset on, in order.
#[derive(Debug)]
pub(crate) struct SeqWriter<'a> {
    file: &'a File,
    /// File offset of `buf[0]`.
    start: u64,
    buf: Vec<u8>,
}

impl<'a> SeqWriter<'a> {
    /// A writer whose first byte goes to `offset`.
    pub fn new(file: &'a File, offset: u64) -> Self {
        SeqWriter {
            file,
            start: offset,
            buf: Vec::with_capacity(BUFFER),
        }
    }

    /// The file offset the next byte goes to.
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

    /// Appends zeros up to the next multiple of `align`.
    pub fn pad_to(&mut self, align: u64) -> Result<()> {
        let pad = self.pos().next_multiple_of(align) - self.pos();
        self.buf.resize(self.buf.len() + usize_from(pad), 0);
        Ok(())
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> Result<()> {
        self.file
            .write_all_at(&self.buf, self.start)
            .map_err(Error::output("writing the image", self.start))?;
        self.start += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}
