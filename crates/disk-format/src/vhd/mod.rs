//! Virtual Hard Disk (VHD) images (Microsoft's "Virtual Hard Disk Image Format
//! Specification" 1.0), dynamic or fixed.
//!
//! The footer names "win " (Hyper-V) as the creator application: QEMU (block/vpc.c) takes
//! the disk's size from the footer's current size only for creators it knows to mean it
//! (Hyper-V, Disk2vhd, XenServer, XenConverter, and QEMU with force_size); for others it
//! computes the size from the CHS geometry, which cannot express most sizes exactly. Hyper-V,
//! Azure and VirtualBox read the current size. The geometry is the specification's, for
//! BIOSes. Sizes are whole MiB, as Azure requires of fixed disks.
//!
//! Dynamic: a copy of the footer at 0, the dynamic disk header at 512, then blocks of 2 MiB,
//! each after its sector bitmap, in the order they were first written, then the footer. The
//! block allocation table (BAT) sits between the header and the blocks when the caller knows
//! the disk's size before the first write ([`WriteOptions::max_virtual_size`], as QEMU lays
//! it out); otherwise `finish` writes it after the last block, before the footer: its place
//! is the dynamic header's table offset, and QEMU and VirtualBox read it there. Fixed: the
//! disk's bytes, then the footer.
//!
//! Reading (`open`, for `d2l convert`): fixed or dynamic, footers, dynamic header and BAT
//! checked against each other and the file; see `reader.rs`.

mod header;
mod reader;
mod writer;

pub use header::{VHD_MAX_BAT_ENTRIES, VHD_MAX_BLOCK_SIZE, VHD_MIN_BLOCK_SIZE};
pub(crate) use reader::open;
pub(crate) use writer::{DynamicWriter, FixedWriter};
