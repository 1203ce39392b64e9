//! A [`VirtualDisk`] seen as a seekable byte stream, which is what the gpt crate writes to.

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::VirtualDisk;

/// Reads and writes a disk from a current position, like a block device file.
pub struct DiskCursor<'a> {
    disk: &'a dyn VirtualDisk,
    position: u64,
}

impl<'a> DiskCursor<'a> {
    /// A cursor at offset 0 of `disk`.
    pub fn new(disk: &'a dyn VirtualDisk) -> Self {
        DiskCursor { disk, position: 0 }
    }
}

impl std::fmt::Debug for DiskCursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCursor")
            .field("position", &self.position)
            .finish()
    }
}

impl Read for DiskCursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.disk.virtual_size()?;
        let n = len.saturating_sub(self.position).min(buf.len() as u64) as usize;
        self.disk.read_at(&mut buf[..n], self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl Write for DiskCursor<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.disk.write_at(buf, self.position)?;
        self.position += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for DiskCursor<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(delta) => self.disk.virtual_size()?.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = target.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before the disk's start")
        })?;
        Ok(self.position)
    }
}
