//! Errors of the ext4 writer.

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong writing a filesystem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--size` is smaller than the content needs.
    #[error("the filesystem needs at least {needed} bytes ({} MiB) but the size given is {given} bytes", needed.div_ceil(1 << 20))]
    TooSmall {
        /// Bytes needed.
        needed: u64,
        /// Bytes given.
        given: u64,
    },
    /// The content did not fit after all (an exact `--size` just above the estimate).
    #[error("the content does not fit in a filesystem of {} MiB; give a larger --size", (u64::from(*blocks) * 4096) >> 20)]
    Full {
        /// Blocks in the filesystem.
        blocks: u32,
    },
    /// Larger than ext4 without the 64bit feature can be (16 TiB with 4 KiB blocks).
    #[error("a filesystem of {bytes} bytes is too large (at most 16 TiB without the 64bit feature, which extlinux cannot read)")]
    TooLarge {
        /// Bytes asked for.
        bytes: u64,
    },
    /// An inode's xattrs cannot be stored.
    #[error("{path}: {error}")]
    Xattr {
        /// The file's path in the image.
        path: String,
        /// Why.
        error: crate::xattr::XattrError,
    },
    /// A file asked to be contiguous is missing, not a regular file, or too large.
    #[error("cannot place {path:?} contiguously: {reason}")]
    Contiguous {
        /// The path asked for.
        path: String,
        /// Why not.
        reason: String,
    },
    /// Something in the image that ext4 cannot hold.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file's path in the image.
        path: String,
        /// What is beyond ext4's limits.
        reason: String,
    },
    /// A directory with more entries than a two-level htree holds.
    #[error("{path}: directory entries take {bytes} bytes, more than the {max} bytes ext4 can index without the largedir feature (which extlinux cannot read)", max = crate::MAX_DIRECTORY_ENTRY_BYTES)]
    DirectoryTooLarge {
        /// The directory's path in the image.
        path: String,
        /// Bytes its entries take (the sum of their `rec_len`).
        bytes: usize,
    },
    /// A regular file larger than ext4 can hold.
    #[error("{path}: file of {size} bytes is larger than ext4 can hold ({max} bytes with 4 KiB blocks)", max = crate::MAX_FILE_SIZE)]
    FileTooLarge {
        /// The file's path in the image.
        path: String,
        /// Its size (apparent size, holes included).
        size: u64,
    },
    /// Writing the output failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// A broken invariant of this crate.
    #[error("internal error: {0}")]
    Internal(String),
}
