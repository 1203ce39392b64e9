//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading or patching syslinux pieces.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A piece of the syslinux build is malformed or does not match the others.
    #[error("{path}: {reason}")]
    Invalid {
        /// The piece (file name or path) that failed validation.
        path: PathBuf,
        /// What was wrong, with byte offsets in hex.
        reason: String,
    },
    /// The host lacks the tools or files to extract syslinux from its packages.
    #[error(
        "{what} not found on this host; install the Debian packages \
         `syslinux syslinux-common extlinux mtools` (or pass --syslinux-dir DIR holding \
         ldlinux.bss, ldlinux.sys, ldlinux.c32, mbr.bin, gptmbr.bin)"
    )]
    Missing {
        /// The tool or file that was looked for.
        what: String,
    },
    /// An external tool ran but failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Tool {
        /// The command line run.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The requested placement cannot be expressed in ldlinux.sys or the boot sector.
    #[error("placement: {0}")]
    Placement(String),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
