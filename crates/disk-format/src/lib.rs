//! Disk image formats, written natively in one pass: the last stage of d2l
//! (tree -> ext4 -> disk -> **format**).
//!
//! [`create`] gives an [`ImageWriter`] for a [`Format`] over an output file. It is a
//! [`VirtualDisk`]: the filesystem, boot code and partition table write through it, in any
//! order, from several threads, before the disk's final size is known; then
//! [`ImageWriter::finish`] writes what only the end can write (tables, headers, footers).
//!
//! - [`Format::Raw`]: sparse, the disk's own size.
//! - [`Format::Qcow2`]: version 3, 64 KiB clusters allocated on first non-zero write; L2
//!   tables, L1 table and refcounts placed after the data at the end. With
//!   [`WriteOptions::compress`], deflated clusters.
//! - [`Format::Vdi`]: dynamic, 1 MiB blocks, header and block map as VirtualBox writes them.
//! - [`Format::Vmdk`]: monolithicSparse (grain directory and tables after the grains) or
//!   streamOptimized ([`VmdkSubformat::Stream`]).
//! - [`Format::Vhd`]: dynamic (2 MiB blocks) or fixed ([`VhdSubformat::Fixed`], size
//!   rounded up to 1 MiB as Azure requires).
//! - [`Format::Vhdx`]: dynamic, 1 MiB blocks (Hyper-V; generation 2 machines boot it
//!   through UEFI).
//!
//! Compressed qcow2 and streamOptimized VMDK need whole clusters in disk order: their writes
//! go to a sparse scratch file next to the output, which `finish` deflates into the format
//! on all cores.
//!
//! The archives other tools import wrap such a disk ([`Bundle`]: OVA, a Compute Engine
//! `image.tar.gz`, a Vagrant libvirt box): [`create_bundle`] gives the same kind of writer,
//! staged like the compressed formats, whose `finish` writes the archive around the disk.
//!
//! The reading side, for `d2l convert`: [`open`] reads raw, qcow2, VDI, VMDK, VHD and VHDX
//! images ([`DiskReader`]), validating every table against the file, and [`convert`] copies
//! one into an [`ImageWriter`].
//!
//! ```no_run
//! use d2l_disk_format::{create, Format, VirtualDisk, WriteOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let file = std::fs::File::create("linux.vdi")?;
//! let disk = create(file, &WriteOptions::new(Format::Vdi, "linux.vdi"))?;
//! disk.as_disk().write_at(b"hello", 1 << 20)?;
//! disk.finish()?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// Values read from image files must not be cut short silently: every narrowing conversion
// is checked, or allowed where a comment says why it cannot truncate. Unit tests, which
// build fixtures of known small values, are exempt.
#![cfg_attr(not(test), warn(clippy::cast_possible_truncation))]

mod bundle;
mod chs;
mod cluster_map;
mod compress;
mod convert;
mod error;
mod format;
mod image_file;
mod qcow2;
mod raw;
mod read;
mod seq;
mod staged;
mod unit_map;
mod vdi;
mod vhd;
mod vhdx;
mod vmdk;

use std::fs::File;
use std::path::PathBuf;

pub use bundle::{
    create_bundle, Bundle, BundleOptions, Hardware, VagrantSsh, GCE_DISK_NAME, GCE_SIZE_UNIT,
    MAX_CPUS, MIN_MEMORY_MIB, VAGRANT_DISK_NAME,
};
pub use convert::{convert, ConvertReport};
pub use d2l_disk::VirtualDisk;
pub use error::{Error, Result};
pub use format::{detect, detect_bytes, Format, VhdSubformat, VmdkSubformat};
pub use qcow2::{
    QCOW2_MAX_CLUSTER_BITS, QCOW2_MAX_L1_BYTES, QCOW2_MAX_REFCOUNT_ORDER,
    QCOW2_MAX_REFCOUNT_TABLE_BYTES, QCOW2_MIN_CLUSTER_BITS,
};
pub use read::{open, DiskReader};
pub use vdi::{VDI_MAX_BLOCKS, VDI_MAX_BLOCK_SIZE, VDI_MIN_BLOCK_SIZE};
pub use vhd::{VHD_MAX_BAT_ENTRIES, VHD_MAX_BLOCK_SIZE, VHD_MIN_BLOCK_SIZE};
pub use vhdx::{
    VHDX_MAX_BAT_ENTRIES, VHDX_MAX_BLOCK_SIZE, VHDX_MAX_VIRTUAL_SIZE, VHDX_MIN_BLOCK_SIZE,
};
pub use vmdk::{
    VMDK_MAX_COMPRESSED_GRAIN_SECTORS, VMDK_MAX_DESCRIPTOR_BYTES, VMDK_MAX_GD_BYTES,
    VMDK_MAX_GRAIN_SECTORS, VMDK_MAX_GTES_PER_GT, VMDK_MIN_GRAIN_SECTORS,
};

// d2l is built for 64-bit targets only, where a `u64` length or index always fits a `usize`.
const _: () = assert!(usize::BITS >= u64::BITS, "d2l needs a 64-bit target");

/// `n` as a `usize`, which it always fits (see the assertion above): lengths and indices of
/// buffers and tables already in memory, or bounded by a limit far below `usize::MAX`.
pub(crate) const fn usize_from(n: u64) -> usize {
    // Cannot truncate: usize has at least 64 bits (asserted above).
    #[allow(clippy::cast_possible_truncation)]
    let n = n as usize;
    n
}

/// One mebibyte: the virtual sizes of the formats other than raw are rounded up to it.
pub const MIB: u64 = 1 << 20;

/// A disk image being written in some format.
pub trait ImageWriter: Send {
    /// The image as a [`VirtualDisk`], to hand to the filesystem and partition writers.
    fn as_disk(&self) -> &dyn VirtualDisk;

    /// Writes what can only be written once all data is in: tables, headers, footers (and,
    /// for the compressed formats, all the data). Formats other than raw round the virtual
    /// size up to 1 MiB (the disks `d2l build` plans are whole MiB already). Syncs nothing:
    /// the caller renames the finished file into place.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// How to write an image.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The format.
    pub format: Format,
    /// qcow2 only: deflate every cluster that shrinks (`--compress`).
    pub compress: bool,
    /// VMDK only: monolithicSparse or streamOptimized.
    pub vmdk_subformat: VmdkSubformat,
    /// VHD only: dynamic or fixed.
    pub vhd_subformat: VhdSubformat,
    /// Identifiers stamped into headers (VDI UUIDs, VHD unique id, VMDK CID, VHDX GUIDs)
    /// derive from it; see [`identity`].
    pub identity: [u8; 16],
    /// Creation time in seconds since the Unix epoch (the VHD footer's timestamp).
    pub timestamp: u64,
    /// The file's final name, without directories: a monolithic VMDK names itself in its
    /// descriptor.
    pub file_name: String,
    /// The largest virtual size the disk will have, when known before the first write
    /// (`d2l convert`): tables are then sized exactly, as VirtualBox and QEMU size them.
    /// With `None` each format places its tables without the size: the VDI block map in
    /// room reserved for 64 GiB (holes in the file until used), the VHD and VHDX
    /// allocation tables after the data.
    pub max_virtual_size: Option<u64>,
    /// Where compressed formats keep their scratch file (the output's directory); `None`
    /// for the system's temporary directory.
    pub scratch_dir: Option<PathBuf>,
}

impl WriteOptions {
    /// Defaults for `format`: no compression, sparse VMDK, dynamic VHD, a zero identity.
    pub fn new(format: Format, file_name: &str) -> Self {
        WriteOptions {
            format,
            compress: false,
            vmdk_subformat: VmdkSubformat::default(),
            vhd_subformat: VhdSubformat::default(),
            identity: [0; 16],
            timestamp: 0,
            file_name: file_name.to_string(),
            max_virtual_size: None,
            scratch_dir: None,
        }
    }
}

/// Creates a writer of `options.format` over `file` (empty, open for reading and writing).
///
/// Errors if the options do not fit the format (`compress` is for qcow2 only).
pub fn create(file: File, options: &WriteOptions) -> Result<Box<dyn ImageWriter>> {
    if options.compress && options.format != Format::Qcow2 {
        return Err(Error::Options(format!(
            "--compress is for qcow2 images, not {} (a streamOptimized VMDK is always compressed)",
            options.format
        )));
    }
    Ok(match options.format {
        Format::Raw => Box::new(raw::RawWriter::new(file)),
        Format::Qcow2 if options.compress => Box::new(staged::Staged::new(
            file,
            staged::Target::CompressedQcow2,
            options,
        )?),
        Format::Qcow2 => Box::new(qcow2::Qcow2Writer::new(file)),
        Format::Vdi => Box::new(vdi::VdiWriter::new(file, options)?),
        Format::Vmdk => match options.vmdk_subformat {
            VmdkSubformat::Sparse => Box::new(vmdk::SparseWriter::new(file, options)?),
            VmdkSubformat::Stream => Box::new(staged::Staged::new(
                file,
                staged::Target::StreamVmdk,
                options,
            )?),
        },
        Format::Vhd => match options.vhd_subformat {
            VhdSubformat::Dynamic => Box::new(vhd::DynamicWriter::new(file, options)?),
            VhdSubformat::Fixed => Box::new(vhd::FixedWriter::new(file, options)?),
        },
        Format::Vhdx => Box::new(vhdx::DynamicWriter::new(file, options)?),
    })
}

/// 16 bytes derived from `seed` (an image digest, or what identifies a converted disk):
/// the same seed gives the same identifiers, so the same input gives the same file.
pub fn identity(seed: &[u8]) -> [u8; 16] {
    let mut hash = d2l_blob::Sha256::new();
    hash.update(b"d2l disk image identity\0");
    hash.update(seed);
    let digest = hash.finish().bytes();
    let mut id: [u8; 16] = digest[..16].try_into().expect("16 bytes");
    // An RFC 4122 version 4 UUID, as VirtualBox and Hyper-V generate.
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_a_v4_uuid_that_follows_the_seed() {
        let a = identity(b"sha256:aaaa");
        assert_eq!(a, identity(b"sha256:aaaa"));
        assert_ne!(a, identity(b"sha256:aaab"));
        assert_eq!(a[6] >> 4, 4);
        assert_eq!(a[8] >> 6, 2);
    }

    #[test]
    fn compress_is_for_qcow2() {
        let mut options = WriteOptions::new(Format::Vdi, "x.vdi");
        options.compress = true;
        let err = create(tempfile::tempfile().unwrap(), &options)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("--compress is for qcow2"), "{err}");
    }
}
