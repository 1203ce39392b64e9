//! Applies container image layers into an in-memory rootfs tree, verifying every digest.
//!
//! [`apply_image`] reads an [`Image`](d2l_registry::Image)'s layers through a pipeline of
//! threads (read and hash the blob, decompress, hash the diff_id, apply the tar entries) and
//! builds a [`Tree`]: inodes with their metadata, xattrs and link counts in memory, file data
//! in a [`ContentStore`] ([`SpillFile`] by default). The rules for whiteouts, paths, hard
//! links and xattrs are those of `shared/notes/layer-semantics.md`.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use d2l_layer_apply::{apply_image, write_tar, ApplyOptions, SpillFile};
//! let source = "oci:/tmp/layout:latest".parse()?;
//! let image = d2l_registry::open_image(&source, &Default::default())?;
//! let applied = apply_image(&image, SpillFile::new()?, ApplyOptions::from_env())?;
//! let data = applied.store.into_reader()?;
//! write_tar(&applied.tree, &data, &mut std::io::stdout().lock())?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod apply;
mod compression;
mod edit;
mod error;
mod export;
mod path;
mod pipeline;
mod store;
mod tar_reader;
mod tree;
mod xattr;

pub use apply::{source_date_epoch, ApplyOptions, EntryFailure, LayerStats, Rootfs};
pub use compression::Compression;
pub use error::{EntryError, Error, Result};
pub use export::{write_tar, write_tar_to_file, ExportStats};
pub use pipeline::{apply_image, chain_ids, AppliedImage, AppliedLayer};
pub use store::{copy_in_kernel, ContentStore, SpillFile, SpillReader};
pub use tree::{
    DataExtent, Device, DirEntry, Directory, FileData, Inode, InodeId, InodeKind, Metadata,
    Timestamp, Tree, Walk, WalkEntry, Xattr,
};
pub use xattr::XattrPolicy;
