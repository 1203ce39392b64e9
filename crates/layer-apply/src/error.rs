//! Errors of layer application. Every message names the layer (index and blob digest) and,
//! for a bad entry, the tar path and its byte offset in the decompressed stream.

use d2l_blob::Digest;

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Something wrong with one tar entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The stream ended inside a header or a file's data.
    #[error("truncated tar stream")]
    Truncated,
    /// A header block is not valid.
    #[error("bad tar header: {0}")]
    BadHeader(String),
    /// A PAX record is not valid.
    #[error("bad PAX header: {0}")]
    BadPax(String),
    /// A type flag this reader does not handle.
    #[error("unsupported tar entry type {:?}", char::from(*.0))]
    UnsupportedType(u8),
    /// `.wh.`, `.wh..`, `.wh...`.
    #[error("invalid whiteout name")]
    BadWhiteout,
    /// The root entry is not a directory.
    #[error("the root entry is not a directory")]
    RootNotDirectory,
    /// A hard link whose target is not in this or a lower layer.
    #[error("hard link target {0:?} does not exist")]
    HardlinkTargetMissing(String),
    /// A hard link to a directory.
    #[error("hard link target {0:?} is a directory")]
    HardlinkToDirectory(String),
    /// The extension headers, GNU sparse blocks and sparse map of one entry exceed
    /// [`MAX_ENTRY_METADATA`](crate::MAX_ENTRY_METADATA).
    #[error("{0} bytes of extension headers and sparse map for one entry, more than {max}", max = crate::MAX_ENTRY_METADATA)]
    MetadataTooLarge(u64),
    /// The xattrs of one inode exceed [`MAX_XATTR_BYTES`](crate::MAX_XATTR_BYTES).
    #[error("{0} bytes of extended attributes (names and values), more than {max}", max = crate::MAX_XATTR_BYTES)]
    XattrsTooLarge(usize),
    /// A symlink target over [`MAX_PATH_LEN`](crate::MAX_PATH_LEN) bytes.
    #[error("link target of {0} bytes, more than {max} (PATH_MAX)", max = crate::MAX_PATH_LEN)]
    LinkTargetTooLong(usize),
    /// The tree would hold more inodes than allowed ([`MAX_INODES`](crate::MAX_INODES) by
    /// default).
    #[error("more than {0} inodes in the image")]
    TooManyInodes(usize),
    /// uid or gid over 32 bits.
    #[error("owner {0} does not fit in 32 bits")]
    IdTooLarge(u64),
    /// Reading the decompressed stream failed.
    #[error("{0}")]
    Io(String),
    /// The path cannot be resolved in the tree, or the content store failed.
    #[error(transparent)]
    Tree(#[from] d2l_rootfs::Error),
}

/// Errors of layer application.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image's source could not hand out a layer blob.
    #[error("layer {layer} ({digest}): {error}")]
    Blob {
        /// Layer index, from 0 (bottom layer).
        layer: usize,
        /// Layer blob digest.
        digest: Digest,
        /// What went wrong.
        error: crate::layers::BlobError,
    },
    /// Reading the blob failed, including size and digest mismatches found at its end.
    #[error("layer {layer} ({digest}): {error}")]
    Read {
        /// Layer index.
        layer: usize,
        /// Layer blob digest.
        digest: Digest,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The blob is not valid compressed data.
    #[error("layer {layer} ({digest}): {compression} data is corrupt: {message}")]
    Decompress {
        /// Layer index.
        layer: usize,
        /// Layer blob digest.
        digest: Digest,
        /// gzip or zstd.
        compression: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The layer is encrypted, which d2l cannot apply.
    #[error("layer {layer} ({digest}): media type {media_type} is not supported")]
    UnsupportedMediaType {
        /// Layer index.
        layer: usize,
        /// Layer blob digest.
        digest: Digest,
        /// The media type.
        media_type: String,
    },
    /// The decompressed content does not hash to the config's diff_id.
    #[error("layer {layer} ({digest}): diff_id mismatch: the config says {expected}, the content is {actual}")]
    DiffIdMismatch {
        /// Layer index.
        layer: usize,
        /// Layer blob digest.
        digest: Digest,
        /// From the image config.
        expected: Box<Digest>,
        /// Computed.
        actual: Box<Digest>,
    },
    /// The config lists a different number of diff_ids than the manifest has layers.
    #[error("the image config lists {diff_ids} diff_ids but the manifest has {layers} layers")]
    LayerCount {
        /// Layers in the manifest.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },
    /// A tar entry that cannot be applied.
    #[error("layer {layer} ({digest}): entry {path:?} at offset {offset:#x}: {error}")]
    Entry {
        /// Layer index.
        layer: usize,
        /// Layer blob digest.
        digest: Digest,
        /// The entry's path as stored (from its extension headers or its header's name
        /// field), "" only when the stream failed before any header of the entry.
        path: String,
        /// Offset of the entry's header in the decompressed stream.
        offset: u64,
        /// What is wrong.
        error: Box<EntryError>,
    },
    /// The tree could not be finished (releasing file data failed).
    #[error(transparent)]
    Tree(d2l_rootfs::Error),
    /// A pipeline thread panicked.
    #[error("internal error: a layer pipeline thread panicked")]
    Panicked,
}
