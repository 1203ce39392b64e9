//! A bootable disk from a flattened rootfs, in two steps around the moment the tree is
//! final:
//!
//! 1. [`prepare_rootfs`] makes the container's tree a machine's (fstab, accounts, network,
//!    SSH, identity, growing: [`d2l_machine::prepare`]) and puts the boot loader in (`/boot/syslinux`, with
//!    `ldlinux.sys` marked to be placed contiguously);
//! 2. [`write_disk`] writes the ext4 filesystem around the file data already placed, patches
//!    `ldlinux.sys` for where it landed, and writes the partition boot sector, the partition
//!    table and the MBR boot code, all through one [`VirtualDisk`](d2l_disk::VirtualDisk).
//!
//! A [`DiskPlan`] says what disk to make; it is the same for both steps.
#![deny(missing_docs)]

mod error;
mod plan;
mod prepare;
mod write;

pub use error::{Error, Result};
pub use plan::{creation_time, DiskPlan, BLOCK_BYTES, LDLINUX_SYS, SECTOR_BYTES, SYSLINUX_DIR};
pub use prepare::prepare_rootfs;
pub use write::{write_disk, WrittenDisk};
