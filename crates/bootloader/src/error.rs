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
    /// The host lacks a Debian package d2l takes a boot loader from.
    #[error("{what} not found on this host; install the Debian package `{package}`")]
    MissingPackage {
        /// The tool or directory that was looked for.
        what: String,
        /// The package that provides it.
        package: &'static str,
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
    /// The image holds no kernel that d2l can boot.
    #[error(
        "no kernel in the image (looked for {searched}); add one to the image, e.g. \
         `apt-get install linux-image-amd64 systemd-sysv` (Debian, Ubuntu: linux-image-generic), \
         `dnf install kernel systemd` (Fedora, RHEL), `apk add linux-virt openrc` (Alpine), \
         or build without a boot loader with `--boot none`"
    )]
    NoKernel {
        /// The places and name patterns searched, for the message.
        searched: String,
    },
    /// A `--kernel` or `--initrd` path (inside the image) is not a regular file.
    #[error("{option} {path}: {reason}")]
    BootFile {
        /// `--kernel` or `--initrd`.
        option: &'static str,
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
