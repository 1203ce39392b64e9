//! Raw images: the disk's bytes at their own offsets, unwritten ranges left as holes.

use std::fs::File;
use std::io;

use d2l_disk::VirtualDisk;

use crate::read::DiskReader;
use crate::{Error, Format, ImageWriter, Result};

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

/// Reads a raw image: its data ranges are what `SEEK_DATA`/`SEEK_HOLE` report.
#[derive(Debug)]
pub(crate) struct RawReader {
    file: File,
    len: u64,
}

impl RawReader {
    pub fn open(file: File) -> Result<Self> {
        let len = file
            .metadata()
            .map_err(Error::input("reading the image's size", 0))?
            .len();
        Ok(RawReader { file, len })
    }
}

impl DiskReader for RawReader {
    fn format(&self) -> Format {
        Format::Raw
    }

    fn virtual_size(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let n = crate::cluster_map::read_up_to(&self.file, buf, offset)
            .map_err(Error::input("reading the image", offset))?;
        buf[n..].fill(0);
        Ok(())
    }

    fn data_ranges(&self, found: &mut dyn FnMut(u64, u64) -> Result<()>) -> Result<()> {
        data_ranges(&self.file, self.len, found)
    }
}

/// Calls `found(start, len)` for each range of the first `len` bytes of `file` that holds
/// data as `SEEK_DATA`/`SEEK_HOLE` see it (all of it on filesystems that cannot tell).
pub(crate) fn data_ranges(
    file: &File,
    len: u64,
    found: &mut dyn FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    use rustix::fs::{seek, SeekFrom};
    let mut pos = 0u64;
    while pos < len {
        let start = match seek(file, SeekFrom::Data(pos)) {
            Ok(start) if start >= len => break,
            Ok(start) => start,
            // No data after `pos`.
            Err(rustix::io::Errno::NXIO) => break,
            // A filesystem that cannot tell: all of it may be data.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) => {
                return found(pos, len - pos)
            }
            Err(e) => return Err(Error::input("looking for data", pos)(e.into())),
        };
        let end = match seek(file, SeekFrom::Hole(start)) {
            Ok(end) => end.min(len),
            Err(e) => return Err(Error::input("looking for a hole", start)(e.into())),
        };
        if end > start {
            found(start, end - start)?;
        }
        pos = end.max(start + 1);
    }
    Ok(())
}
