//! What layer application needs of an image: each layer's blob (digest, size, media type),
//! the config's diff_ids, and a way to open a blob's bytes. The source of those bytes (an OCI
//! layout, an archive, a registry's cache) is the caller's; this crate verifies them.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

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

/// A blob that lies in a file, `len` bytes from `offset` (a blob file of an OCI layout or of
/// the cache, an archive's entry read in place): positional reads give random access, which
/// the parallel gzip decoder needs.
#[derive(Debug, Clone)]
pub struct BlobFile {
    /// The file holding the blob.
    pub file: Arc<File>,
    /// Where the blob starts in it.
    pub offset: u64,
    /// The blob's size.
    pub len: u64,
}

impl BlobFile {
    /// Reads at most `buf.len()` bytes from `pos` bytes into the blob (0 at its end).
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.len.saturating_sub(pos);
        let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
        if want == 0 {
            return Ok(0);
        }
        std::os::unix::fs::FileExt::read_at(&*self.file, &mut buf[..want], self.offset + pos)
    }
}

/// Opens layer blobs.
pub trait BlobSource: Sync {
    /// The raw bytes of blob `index` (0 is the base layer), as stored: [`apply_layers`]
    /// checks their size and digest as it reads them.
    ///
    /// [`apply_layers`]: crate::apply_layers
    fn open_blob(&self, index: usize) -> Result<Box<dyn Read + Send>, BlobError>;

    /// Blob `index` as a range of a file, when it is one (`None`, the default, for a stream).
    /// [`apply_layers`] decodes large gzip blobs from it on several threads, and still checks
    /// the size and digest of what [`BlobSource::open_blob`] reads.
    ///
    /// [`apply_layers`]: crate::apply_layers
    fn blob_file(&self, index: usize) -> Result<Option<BlobFile>, BlobError> {
        let _ = index;
        Ok(None)
    }
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
