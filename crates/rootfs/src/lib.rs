//! The flattened root filesystem of an image: the edge between layer application and the
//! filesystem writers.
//!
//! A [`Tree`] is an arena of inodes (metadata, xattrs, names, directory entries marked with
//! the layer that declared them); file data lives in a [`ContentStore`], never in memory:
//! [`SpillFile`] (an unlinked temporary file) or a writer's own store that puts the bytes
//! straight into their final place. A [`Rootfs`] is a tree with its store and the operations
//! that change it: linking, unlinking, resolving paths with chroot semantics, and the edit
//! API that makes a container's filesystem a machine's ([`Rootfs::write_file`],
//! [`Rootfs::create_dir_all`], [`Rootfs::remove`], [`Rootfs::read_file`]).
//!
//! ```
//! use d2l_rootfs::{Metadata, Rootfs, SpillFile, Timestamp};
//! let mut rootfs = Rootfs::new(SpillFile::new().unwrap(), Timestamp::default());
//! let meta = Metadata { mode: 0o644, ..Metadata::default() };
//! rootfs.write_file(b"/etc/hostname", meta, b"d2l\n").unwrap();
//! assert_eq!(rootfs.read_file(b"etc/hostname", 64).unwrap().unwrap(), b"d2l\n");
//! ```
#![deny(missing_docs)]
#![warn(clippy::cast_possible_truncation)]

mod edit;
mod error;
pub mod path;
mod rootfs;
mod store;
mod tree;

pub use error::{Error, Result};
pub use rootfs::{Parent, Rootfs};
pub use store::{ContentStore, SpillFile, SpillReader};
pub use tree::{
    DataExtent, Device, DirEntry, Directory, FileData, Inode, InodeId, InodeKind, Metadata,
    Timestamp, Tree, Walk, WalkEntry, Xattr, ROOT,
};
