//! The reading side, for `d2l convert`: a disk image seen as its virtual disk.

use std::fs::File;

use crate::format::{detect, Detected};
use crate::{Error, Format, Result};

/// A disk image opened for reading.
pub trait DiskReader: Send + Sync {
    /// The image's format.
    fn format(&self) -> Format;

    /// The virtual disk's size in bytes.
    fn virtual_size(&self) -> u64;

    /// Reads `buf.len()` bytes of the virtual disk at `offset`: zeros where the image
    /// stores nothing (and past the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;

    /// Calls `found(offset, len)` for the ranges of the virtual disk that may hold data, in
    /// increasing order, not overlapping; everything else reads as zeros.
    fn data_ranges(&self, found: &mut dyn FnMut(u64, u64) -> Result<()>) -> Result<()>;
}

/// Opens an image, detecting its format from its magic numbers: qcow2 (version 2 or 3) by
/// its tables, validated against the file; anything without a known magic as raw.
///
/// Errors name what is wrong in a damaged or truncated qcow2, and say so for formats
/// d2l writes but does not read (VDI, VMDK, VHD) and VHDX.
pub fn open(file: File) -> Result<Box<dyn DiskReader>> {
    let detected = detect(&file).map_err(Error::io("reading the image's first bytes", 0))?;
    match detected {
        Detected::Format(Format::Raw) => Ok(Box::new(crate::raw::RawReader::open(file)?)),
        Detected::Format(Format::Qcow2) => {
            Ok(Box::new(crate::qcow2_reader::Qcow2Reader::open(file)?))
        }
        Detected::Format(other) => Err(Error::Unsupported(format!(
            "a {} image: d2l reads raw and qcow2 images (qemu-img convert -O raw reads this one)",
            other.name().to_uppercase()
        ))),
        Detected::Vhdx => Err(Error::Unsupported(
            "a VHDX image: d2l reads raw and qcow2 images (qemu-img convert -O raw reads this one)"
                .into(),
        )),
    }
}
