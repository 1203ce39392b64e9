//! The reading side, for `d2l convert`: a disk image seen as its virtual disk.

use std::fs::File;

use crate::format::detect;
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

/// Opens an image, detecting its format from its magic numbers (anything without a known
/// magic is raw): qcow2 (versions 2 and 3), VDI (dynamic or fixed), VMDK (monolithicSparse
/// or streamOptimized), VHD (dynamic or fixed) and VHDX (dynamic or fixed), each validated
/// against the file.
///
/// Errors name what is wrong in a damaged or truncated image, and what d2l does not read:
/// images with a parent (backing file, differencing disk), VMDKs whose data is in other
/// files, a VHDX whose log was not replayed.
pub fn open(file: File) -> Result<Box<dyn DiskReader>> {
    let format = detect(&file).map_err(Error::input("reading the image's first bytes", 0))?;
    Ok(match format {
        Format::Raw => Box::new(crate::raw::RawReader::open(file)?),
        Format::Qcow2 => Box::new(crate::qcow2::Qcow2Reader::open(file)?),
        Format::Vdi => Box::new(crate::vdi::VdiReader::open(file)?),
        Format::Vmdk => Box::new(crate::vmdk::VmdkReader::open(file)?),
        Format::Vhd => crate::vhd::open(file)?,
        Format::Vhdx => crate::vhdx::open(file)?,
    })
}
