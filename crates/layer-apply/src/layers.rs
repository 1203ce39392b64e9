//! What layer application needs of an image: each layer's blob (digest, size, media type),
//! the config's diff_ids, and a way to open a blob's bytes. The source of those bytes (an OCI
//! layout, an archive, a registry's cache) is the caller's; this crate verifies them.

use std::io::Read;

use d2l_blob::Digest;

/// An error from a [`BlobSource`], kept whole as the source of [`Error::Blob`](crate::Error).
pub type BlobError = Box<dyn std::error::Error + Send + Sync>;

/// A layer blob as the manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobDescriptor {
    /// Digest of the (compressed) blob.
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Media type, e.g. `application/vnd.oci.image.layer.v1.tar+gzip`; empty when the source
    /// has none (the magic bytes decide the compression then).
    pub media_type: String,
}

/// Opens layer blobs.
pub trait BlobSource: Sync {
    /// The raw bytes of blob `index` (0 is the base layer), as stored: [`apply_layers`]
    /// checks their size and digest as it reads them.
    ///
    /// [`apply_layers`]: crate::apply_layers
    fn open_blob(&self, index: usize) -> Result<Box<dyn Read + Send>, BlobError>;
}

impl<F> BlobSource for F
where
    F: Fn(usize) -> Result<Box<dyn Read + Send>, BlobError> + Sync,
{
    fn open_blob(&self, index: usize) -> Result<Box<dyn Read + Send>, BlobError> {
        self(index)
    }
}

/// An image's layers, base first, ready to apply.
pub struct Layers<'a> {
    /// The manifest's layer blobs.
    pub blobs: Vec<BlobDescriptor>,
    /// The config's `rootfs.diff_ids`: sha256 of each layer's uncompressed tar.
    pub diff_ids: Vec<Digest>,
    /// Where the blobs' bytes come from.
    pub source: &'a dyn BlobSource,
}
