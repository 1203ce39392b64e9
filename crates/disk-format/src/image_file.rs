//! An image file opened for reading: its length, the integer fields of its structures, and
//! reads that first check that what a header or table points at lies inside the file.
//!
//! Every reader goes through it, so a damaged or truncated image of any format is reported
//! the same way: one line naming the structure, where it was said to be, and the file's
//! length.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;

use d2l_disk::bytes::{FromBytes, Immutable, IntoBytes};

use crate::{Error, Result};

/// An image being read.
#[derive(Debug)]
pub(crate) struct ImageFile {
    file: File,
    len: u64,
}

impl ImageFile {
    /// Takes `file` and its current length.
    pub fn new(file: File) -> Result<Self> {
        let len = file
            .metadata()
            .map_err(Error::input("reading the image's size", 0))?
            .len();
        Ok(ImageFile { file, len })
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The file itself.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Errors unless the `len` bytes at `offset` lie inside the file; `what` names them
    /// ("VDI block 3 (map entry 2)").
    pub fn check(&self, what: impl fmt::Display, offset: u64, len: u64) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(past_the_end(what, offset, len, self.len)),
        }
    }

    /// Reads exactly `buf.len()` bytes at `offset`, after [`check`](Self::check)ing them.
    pub fn read(&self, what: impl fmt::Display, buf: &mut [u8], offset: u64) -> Result<()> {
        self.check(what, offset, buf.len() as u64)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(Error::input("reading the image", offset))
    }

    /// Reads a table of `count` 32-bit entries of type `E` (an endian-typed integer:
    /// `le::U32`, `be::U32`) at `offset`, after checking it lies inside the file.
    pub fn read_u32s<E>(&self, what: impl fmt::Display, offset: u64, count: u64) -> Result<Vec<u32>>
    where
        E: FromBytes + IntoBytes + Immutable + Copy,
        u32: From<E>,
    {
        let entry = size_of::<E>() as u64;
        let bytes = count
            .checked_mul(entry)
            .ok_or_else(|| past_the_end(&what, offset, u64::MAX, self.len))?;
        // Checked before the buffer is allocated: a damaged count must not exhaust memory.
        self.check(&what, offset, bytes)?;
        let count =
            usize::try_from(count).map_err(|_| past_the_end(&what, offset, u64::MAX, self.len))?;
        let mut raw = vec![E::new_zeroed(); count];
        self.read(what, raw.as_mut_bytes(), offset)?;
        Ok(raw.into_iter().map(u32::from).collect())
    }
}

/// The error for `len` bytes at `offset`, named `what`, that a file of `file_len` bytes
/// does not hold.
pub(crate) fn past_the_end(what: impl fmt::Display, offset: u64, len: u64, file_len: u64) -> Error {
    let size = if len == u64::MAX {
        String::from("more bytes than a file can hold")
    } else {
        format!("{len} bytes")
    };
    Error::Corrupt(format!(
        "{what} ({size} at {offset:#x}) lies past the end of the file ({file_len:#x} bytes): the image is truncated or damaged"
    ))
}

/// A damaged image: `message` says what is wrong where.
pub(crate) fn corrupt(message: String) -> Error {
    Error::Corrupt(message)
}

#[cfg(test)]
mod tests {
    use d2l_disk::bytes::le;

    use super::*;

    #[test]
    fn reads_inside_the_file_and_names_what_is_not() {
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(&[1, 0, 0, 0, 0, 0, 0, 2], 0).unwrap();
        let image = ImageFile::new(file).unwrap();
        assert_eq!(image.len(), 8);
        assert_eq!(
            image.read_u32s::<le::U32>("a table", 0, 2).unwrap(),
            [1, 0x0200_0000]
        );
        let err = image.read_u32s::<le::U32>("a table", 4, 2);
        assert_eq!(
            err.unwrap_err().to_string(),
            "a table (8 bytes at 0x4) lies past the end of the file (0x8 bytes): the image is truncated or damaged"
        );
        let err = image.check("the end", u64::MAX, 2).unwrap_err().to_string();
        assert!(
            err.starts_with("the end (2 bytes at 0xffffffffffffffff)"),
            "{err}"
        );
        assert!(image.read_u32s::<le::U32>("huge", 0, u64::MAX / 2).is_err());
    }
}
