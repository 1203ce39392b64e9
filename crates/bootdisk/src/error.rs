//! Errors of assembling a disk, each keeping the error of the step that failed.

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong while making the disk.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or patching the boot loader failed.
    #[error(transparent)]
    Boot(#[from] d2l_bootloader::Error),
    /// Making the tree a machine's failed.
    #[error(transparent)]
    Machine(#[from] d2l_machine::Error),
    /// Adding a file to the tree failed.
    #[error("adding {path} to the image: {source}")]
    Tree {
        /// The file added.
        path: &'static str,
        /// What went wrong.
        #[source]
        source: d2l_rootfs::Error,
    },
    /// Writing the filesystem failed.
    #[error(transparent)]
    Filesystem(#[from] d2l_fs_writer::Error),
    /// An exact `--size` is smaller than what the disk needs.
    #[error(
        "the disk needs at least {needed} bytes ({} MiB) but --size gives {given} bytes ({} MiB)",
        needed.div_ceil(1 << 20),
        given >> 20
    )]
    TooSmall {
        /// Bytes the disk needs.
        needed: u64,
        /// Bytes the size gives.
        given: u64,
    },
    /// Planning or writing the partition table failed.
    #[error(transparent)]
    Partition(#[from] d2l_partition::Error),
    /// The filesystem writer did not report where `ldlinux.sys` went.
    #[error("ldlinux.sys was not placed")]
    LdlinuxNotPlaced,
    /// Writing the EFI System Partition failed.
    #[error("writing the EFI System Partition: {0}")]
    Esp(#[from] d2l_fat::Error),
    /// Writing boot code to the disk failed.
    #[error("writing the boot code: {0}")]
    Write(#[source] std::io::Error),
}
