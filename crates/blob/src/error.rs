//! Errors about blobs: a string that is not a digest, bytes that are not what their digest
//! and size promise.

use crate::digest::Digest;

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What is wrong with a digest or a blob.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A string is not a valid digest (`ALG:HEX`).
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// The string as given.
        input: String,
        /// Why it is not a digest.
        reason: String,
    },
    /// A blob has more or fewer bytes than its descriptor says.
    #[error("blob {digest}: expected {expected} bytes, read {actual}")]
    SizeMismatch {
        /// The blob's expected digest.
        digest: Digest,
        /// Size from the descriptor.
        expected: u64,
        /// Bytes actually read (for an overlong blob, as soon as it overran).
        actual: u64,
    },
    /// A blob's content does not hash to its digest.
    #[error("blob {expected}: content hashes to {actual}")]
    DigestMismatch {
        /// The digest the blob is stored under.
        expected: Digest,
        /// The digest of the bytes actually read.
        actual: Digest,
    },
}

impl Error {
    /// Wraps this error in an [`std::io::Error`] of kind `InvalidData`, for `Read`
    /// implementations.
    pub(crate) fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }
}
