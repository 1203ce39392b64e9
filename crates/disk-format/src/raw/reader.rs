//! Reading raw images: the file is the disk, holes are skipped.

use std::fs::File;

use crate::read::DiskReader;
use crate::{Error, Format, Result};

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
