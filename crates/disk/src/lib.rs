//! The disk every writer of d2l writes to, and the bytes its structures are made of.
//!
//! - [`VirtualDisk`]: a disk image being written, addressed by the guest's byte offsets. A raw
//!   image is a [`std::fs::File`]; the container formats (qcow2, VDI, VMDK, VHD) implement it
//!   over their own layout, so the filesystem, the boot code and the partition table are
//!   written once, straight into the format asked for. [`DiskCursor`] makes one a seekable
//!   stream.
//! - [`bytes`]: the one family of byte-order helpers: endian-typed integers for `#[repr(C)]`
//!   on-disk structures (zerocopy), and reads of single fields at an offset.
//!
//! ```
//! use d2l_disk::VirtualDisk;
//! let disk = tempfile::tempfile().unwrap();
//! disk.grow_to(4096).unwrap();
//! disk.write_at(b"boot", 510).unwrap();
//! ```
#![deny(missing_docs)]

pub mod bytes;
mod cursor;
mod sink;

pub use cursor::DiskCursor;
pub use sink::{copy_in_kernel, write_zeros, VirtualDisk};
