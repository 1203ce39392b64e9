//! Applies container image layers to a rootfs tree, verifying every digest.
//!
//! [`apply_layers`] reads an image's [`Layers`] (blob descriptors, diff_ids, and a
//! [`BlobSource`] that opens each blob) through a pipeline of threads (read and hash the
//! blob, decompress, hash the diff_id, apply the tar entries) and builds a
//! [`Rootfs`](d2l_rootfs::Rootfs): inodes with their metadata, xattrs and link counts in
//! memory, file data in a [`ContentStore`](d2l_rootfs::ContentStore). The rules for
//! whiteouts, paths, hard links and xattrs are those of `shared/notes/layer-semantics.md`.
//! [`write_tar`] writes a tree back out as one deterministic PAX tar. A gzip blob of
//! [`PARALLEL_GZIP_MIN_BYTES`] or more that lies in a file ([`BlobSource::blob_file`]) is
//! decoded on several threads.
//!
//! Hostile layers meet limits, each an error naming the entry: [`MAX_PATH_LEN`] and
//! [`MAX_DEPTH`] where a name really lands (symlinks followed), [`MAX_ENTRY_METADATA`] for
//! the extension headers and sparse map of one entry, [`MAX_XATTR_BYTES`] per inode (on
//! export too) and [`MAX_INODES`] per tree. Nothing recurses once per directory level.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use d2l_layer_apply::{apply_layers, write_tar, ApplyOptions, BlobError, Layers};
//! use d2l_rootfs::SpillFile;
//! let open = |_: usize| -> Result<Box<dyn std::io::Read + Send>, BlobError> {
//!     Ok(Box::new(std::fs::File::open("layer.tar.gz")?))
//! };
//! let layers = Layers { blobs: vec![/* from the manifest */], diff_ids: vec![], source: &open };
//! let applied = apply_layers(&layers, SpillFile::new()?, ApplyOptions::default())?;
//! let (tree, store) = applied.rootfs.into_parts();
//! write_tar(&tree, &store.into_reader()?, &mut std::io::stdout().lock())?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![warn(clippy::cast_possible_truncation)]

mod apply;
mod compression;
mod error;
mod export;
mod layers;
mod parallel_gzip;
mod pipeline;
mod tar_reader;
mod xattr;

pub use apply::{Applier, ApplyOptions, EntryFailure, LayerStats, MAX_INODES};
pub use compression::Compression;
/// Limits on paths, re-exported from [`d2l_rootfs::path`].
pub use d2l_rootfs::path::{MAX_DEPTH, MAX_PATH_LEN, NAME_MAX};
pub use error::{EntryError, Error, Result};
pub use export::{write_tar, write_tar_to_file, ExportStats, MAX_EXPORT_RUNS};
pub use layers::{BlobDescriptor, BlobError, BlobFile, BlobSource, Layers};
pub use parallel_gzip::{default_decoder_threads, MAX_DECODER_THREADS, PARALLEL_GZIP_MIN_BYTES};
pub use pipeline::{apply_layers, chain_ids, AppliedImage, AppliedLayer};
pub use tar_reader::{MAX_ENTRY_METADATA, MAX_XATTR_BYTES};
pub use xattr::XattrPolicy;
