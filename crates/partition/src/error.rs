//! The one error type of this crate.

/// Everything that can go wrong while planning or writing a partition table.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem of zero bytes cannot be given a partition.
    #[error("filesystem is empty: nothing to partition")]
    EmptyFilesystem,
    /// The requested table kind is not `mbr` or `gpt`.
    #[error("unknown partition table kind {0:?}: expected \"mbr\" or \"gpt\"")]
    UnknownTableKind(String),
    /// An MBR partition must end below 2 TiB: its LBA fields are 32-bit sectors.
    #[error(
        "partition would end at byte {end:#x}, past the MBR limit of {limit:#x} (2 TiB); use --table gpt"
    )]
    TooLargeForMbr {
        /// First byte after the partition.
        end: u64,
        /// First byte MBR cannot address.
        limit: u64,
    },
    /// The layout does not hold together (hand-built rather than from `DiskLayout::plan`).
    #[error("invalid layout: {0}")]
    InvalidLayout(&'static str),
    /// The disk file is larger than the layout: the GPT backup header would land in the wrong place.
    #[error("disk file is {actual:#x} bytes, larger than the planned {planned:#x}")]
    DiskFileTooLarge {
        /// Current file length.
        actual: u64,
        /// `DiskLayout::disk_bytes`.
        planned: u64,
    },
    /// Reading, sizing or writing the disk file failed.
    #[error("I/O on disk file at offset {offset:#x}: {source}")]
    Io {
        /// Byte offset of the failed operation.
        offset: u64,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The mbrman crate refused to encode the MBR.
    #[error("writing MBR at offset 0x0: {0}")]
    Mbr(#[from] mbrman::Error),
    /// The gpt crate refused to build or write the GPT.
    #[error("writing GPT: {0}")]
    Gpt(#[from] gpt::GptError),
    /// The gpt crate refused to write the protective MBR.
    #[error("writing protective MBR at offset 0x0: {0}")]
    ProtectiveMbr(#[from] gpt::mbr::MBRError),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
