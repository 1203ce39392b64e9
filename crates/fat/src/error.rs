//! The one error type of this crate, for the writer and the reader.

/// Everything that can go wrong while building a tree, writing a volume or reading one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The volume is smaller than the smallest FAT16 volume (4085 clusters of 512 bytes).
    #[error("FAT volume of {size} bytes is too small: the minimum is {minimum} bytes")]
    VolumeTooSmall {
        /// The size asked for.
        size: u64,
        /// [`crate::MIN_VOLUME_BYTES`].
        minimum: u64,
    },
    /// The volume has more sectors than the 32-bit sector count of the boot sector holds.
    #[error("FAT volume of {size} bytes is too large: the maximum is {maximum} bytes")]
    VolumeTooLarge {
        /// The size asked for.
        size: u64,
        /// [`crate::MAX_VOLUME_BYTES`].
        maximum: u64,
    },
    /// The volume must start on a sector boundary, below 2 TiB (its hidden-sector count).
    #[error("FAT volume offset {offset:#x} is not a 512-byte sector below 2 TiB")]
    BadOffset {
        /// The offset asked for.
        offset: u64,
    },
    /// The files and directories need more clusters than the volume has.
    #[error("the FAT tree needs {needed} bytes of clusters, the volume has {available}")]
    TreeTooLarge {
        /// Bytes of the clusters the tree needs.
        needed: u64,
        /// Bytes of the clusters of the volume.
        available: u64,
    },
    /// A file is larger than FAT's 32-bit file size.
    #[error("{path}: {size} bytes is larger than a FAT file can be (4 GiB - 1)")]
    FileTooLarge {
        /// The file's path in the tree.
        path: String,
        /// Its size.
        size: u64,
    },
    /// A directory has more entries than FAT allows (65536 of 32 bytes; the FAT16 root: 512).
    #[error("directory {path:?} needs {entries} entries, more than the {max} it can hold")]
    DirectoryTooLarge {
        /// The directory's path in the tree ("" for the root).
        path: String,
        /// Entries needed, long-name entries included.
        entries: u64,
        /// Entries it can hold.
        max: u64,
    },
    /// A path cannot be a FAT name, or clashes with what the tree holds.
    #[error("invalid FAT path {path:?}: {reason}")]
    InvalidName {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The volume label is not 0 to 11 characters of the short-name character set.
    #[error("invalid FAT volume label {label:?}: {reason}")]
    InvalidLabel {
        /// The label as given.
        label: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Reading or writing the disk failed.
    #[error("I/O on the FAT volume at disk offset {offset:#x}: {source}")]
    Io {
        /// Byte offset on the disk of the failed operation.
        offset: u64,
        /// The underlying error.
        source: std::io::Error,
    },
    /// What is on the disk is not a FAT volume this crate reads, or is damaged.
    #[error("FAT volume at disk offset {offset:#x} is corrupt: {reason}")]
    Corrupt {
        /// Byte offset on the disk of the volume.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// No entry of that name in the volume.
    #[error("{path}: no such file or directory on the FAT volume")]
    NotFound {
        /// The path looked up.
        path: String,
    },
    /// A directory was expected.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path looked up.
        path: String,
    },
    /// A file was expected.
    #[error("{path}: is a directory")]
    IsADirectory {
        /// The path looked up.
        path: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
