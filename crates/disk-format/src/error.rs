//! The one error type of this crate.

use std::io;

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong writing or reading a disk image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the input image (`d2l convert`'s source) failed.
    #[error("{what} at byte {offset:#x}: {source}")]
    Input {
        /// What was being read.
        what: &'static str,
        /// Byte offset in the input file.
        offset: u64,
        /// The system's error.
        source: io::Error,
    },
    /// Writing the output image (or reading back its own file or scratch file) failed.
    #[error("{what} at byte {offset:#x}: {source}")]
    Output {
        /// What was being written.
        what: &'static str,
        /// Byte offset in the output (or scratch) file.
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
    /// The input image is damaged: a header, table or offset that cannot be right, or a
    /// value past what its specification allows.
    #[error("{0}")]
    Corrupt(String),
    /// A compressed cluster or grain of the input image does not inflate to what its table
    /// says.
    #[error("{what} does not inflate to a {unit} of {expected} bytes: {source}")]
    Inflate {
        /// The unit and its coordinates ("qcow2 compressed cluster for guest offset 0x...
        /// at 0x...").
        what: String,
        /// What the format calls the unit: "cluster", "grain".
        unit: &'static str,
        /// Bytes it should inflate to.
        expected: u64,
        /// What the decompressor said.
        source: io::Error,
    },
    /// The thread reading the input image panicked (a bug).
    #[error("the thread reading the input image panicked")]
    ReaderPanicked,
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
    /// An error reading the input image at `offset` while doing `what`.
    pub(crate) fn input(what: &'static str, offset: u64) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Input {
            what,
            offset,
            source,
        }
    }

    /// An error writing the output image at `offset` while doing `what`.
    pub(crate) fn output(what: &'static str, offset: u64) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Output {
            what,
            offset,
            source,
        }
    }

    /// Whether the error is the output's (writing it), not the input's: `d2l convert`
    /// names the file accordingly.
    pub fn is_output(&self) -> bool {
        matches!(
            self,
            Error::Output { .. } | Error::TooLarge { .. } | Error::Options(_)
        )
    }
}

impl From<Error> for io::Error {
    /// Errors raised inside [`VirtualDisk`](d2l_disk::VirtualDisk) methods travel as
    /// `io::Error`s; the original is kept as the source, so its message survives.
    fn from(error: Error) -> io::Error {
        match error {
            Error::Input { source, .. } | Error::Output { source, .. } => source,
            other => io::Error::other(other),
        }
    }
}
