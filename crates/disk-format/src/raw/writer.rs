//! Writing raw images: every write goes to its own offset.

use std::fs::File;
use std::io;

use d2l_disk::VirtualDisk;

use crate::{ImageWriter, Result};

/// Writes a raw image: the file is the disk, its length the disk's size (whole MiB for the
/// disks `d2l build` plans; a bare filesystem keeps the exact size asked for).
#[derive(Debug)]
pub(crate) struct RawWriter {
    file: File,
}

impl RawWriter {
    pub fn new(file: File) -> Self {
        RawWriter { file }
    }
}

impl VirtualDisk for RawWriter {
    fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        VirtualDisk::write_at(&self.file, bytes, offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        VirtualDisk::read_at(&self.file, buf, offset)
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.file.discard(offset, len)
    }

    fn virtual_size(&self) -> io::Result<u64> {
        self.file.virtual_size()
    }

    fn grow_to(&self, len: u64) -> io::Result<()> {
        self.file.grow_to(len)
    }

    fn copy_from(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        self.file.copy_from(src, src_offset, len, offset)
    }
}

impl ImageWriter for RawWriter {
    fn as_disk(&self) -> &dyn VirtualDisk {
        self
    }

    fn finish(self: Box<Self>) -> Result<()> {
        // Nothing to add: every write went to its place.
        Ok(())
    }
}
