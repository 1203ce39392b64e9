//! The one error type of this crate.

use std::io;

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong writing or reading a disk image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the image file (or its scratch file) failed.
    #[error("{what} at byte {offset:#x}: {source}")]
    Io {
        /// What was being read or written.
        what: &'static str,
        /// Byte offset in that file.
        offset: u64,
        /// The system's error.
        source: io::Error,
    },
    /// The disk would be larger than this format (as d2l writes it) can hold.
    #[error("a {format} disk written by d2l holds at most {max} bytes ({} GiB); this one needs {size}", max >> 30)]
    TooLarge {
        /// The format's name.
        format: &'static str,
        /// Bytes asked for.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The input image is damaged: a header, table or offset that cannot be right.
    #[error("{0}")]
    Corrupt(String),
    /// The input image uses a feature d2l does not read (backing file, encryption...).
    #[error("{0}")]
    Unsupported(String),
    /// Options that do not go together (`--compress` with a format other than qcow2...).
    #[error("{0}")]
    Options(String),
}

impl Error {
    /// [`Error::TooLarge`] unless a `format` disk of `size` bytes fits its `max`.
    pub(crate) fn check_size(format: &'static str, size: u64, max: u64) -> Result<()> {
        if size > max {
            return Err(Error::TooLarge { format, size, max });
        }
        Ok(())
    }
}

impl Error {
    /// An I/O error at `offset` while doing `what`.
    pub(crate) fn io(what: &'static str, offset: u64) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io {
            what,
            offset,
            source,
        }
    }
}

impl From<Error> for io::Error {
    /// Errors raised inside [`VirtualDisk`](d2l_disk::VirtualDisk) methods travel as
    /// `io::Error`s; the original is kept as the source, so its message survives.
    fn from(error: Error) -> io::Error {
        match error {
            Error::Io { source, .. } => source,
            other => io::Error::other(other),
        }
    }
}
