//! Disks stored in fixed-size units found through a map (VDI blocks, VHD blocks, VMDK
//! grains): reading any range of the virtual disk, and listing the ranges that may hold
//! data, the same way for every format. A format says, per unit, "zeros", "here in the
//! file" or "these inflated bytes"; this module does the rest.

use std::sync::Arc;

use crate::image_file::ImageFile;
use crate::read::DiskReader;
use crate::usize_from;
use crate::{Format, Result};

/// Where a unit of the virtual disk is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Nothing stored: reads as zeros.
    Zero,
    /// Stored as it is: the file offset of the unit's first byte, whose bytes inside the
    /// virtual disk the map has checked lie inside the file.
    Stored(u64),
    /// Stored compressed: the unit's bytes, inflated and checked, a whole unit long.
    Inflated(Arc<Vec<u8>>),
}

/// A format's map from units of the virtual disk to the image file.
pub(crate) trait UnitMap: Send + Sync {
    /// The image's format.
    fn image_format(&self) -> Format;

    /// The image file.
    fn file(&self) -> &ImageFile;

    /// Bytes of the virtual disk per unit.
    fn unit_size(&self) -> u64;

    /// The virtual disk's size; the last unit may reach past it.
    fn virtual_size(&self) -> u64;

    /// Where unit `index` (below `virtual_size / unit_size`, rounded up) is.
    fn unit(&self, index: u64) -> Result<Unit>;

    /// Calls `stored(index)` for every unit that [`unit`](Self::unit) may not find
    /// [`Unit::Zero`], in increasing order, without reading their data.
    fn stored_units(&self, stored: &mut dyn FnMut(u64) -> Result<()>) -> Result<()>;
}

/// Every format stored in mapped units reads through this module.
impl<T: UnitMap> DiskReader for T {
    fn format(&self) -> Format {
        self.image_format()
    }

    fn virtual_size(&self) -> u64 {
        UnitMap::virtual_size(self)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        read_at(self, buf, offset)
    }

    fn data_ranges(&self, found: &mut dyn FnMut(u64, u64) -> Result<()>) -> Result<()> {
        data_ranges(self, found)
    }
}

/// [`DiskReader::read_at`](crate::DiskReader::read_at) for a disk stored through `map`:
/// zeros where nothing is stored and past the end.
pub(crate) fn read_at(map: &dyn UnitMap, buf: &mut [u8], offset: u64) -> Result<()> {
    let unit = map.unit_size();
    let size = map.virtual_size();
    let end = offset.saturating_add(buf.len() as u64);
    let mut pos = offset;
    while pos < end {
        let index = pos / unit;
        let piece_end = end.min((index + 1).saturating_mul(unit));
        let dst = &mut buf[usize_from(pos - offset)..usize_from(piece_end - offset)];
        // The part of the piece inside the virtual disk; the rest reads as zeros.
        let inside = usize_from(piece_end.min(size).saturating_sub(pos));
        let (data, past_the_end) = dst.split_at_mut(inside);
        past_the_end.fill(0);
        if !data.is_empty() {
            let within = pos % unit;
            match map.unit(index)? {
                Unit::Zero => data.fill(0),
                Unit::Stored(host) => map.file().read(
                    format_args!("the data of guest offset {pos:#x}"),
                    data,
                    host + within,
                )?,
                Unit::Inflated(bytes) => {
                    let within = usize_from(within);
                    data.copy_from_slice(&bytes[within..within + data.len()]);
                }
            }
        }
        pos = piece_end;
    }
    Ok(())
}

/// [`DiskReader::data_ranges`](crate::DiskReader::data_ranges) for a disk stored through
/// `map`: its stored units, adjacent ones merged, cut at the virtual size.
pub(crate) fn data_ranges(
    map: &dyn UnitMap,
    found: &mut dyn FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    let unit = map.unit_size();
    let size = map.virtual_size();
    // The range being gathered: start and end in guest bytes.
    let mut current: Option<(u64, u64)> = None;
    map.stored_units(&mut |index| {
        let start = index * unit;
        if start >= size {
            return Ok(());
        }
        let end = (start + unit).min(size);
        match &mut current {
            Some((_, e)) if *e == start => *e = end,
            _ => {
                if let Some((s, e)) = current.replace((start, end)) {
                    found(s, e - s)?;
                }
            }
        }
        Ok(())
    })?;
    if let Some((s, e)) = current {
        found(s, e - s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    /// Units of 4 bytes: 0 stored at file offset 8, 1 zero, 2 inflated, 3 stored at 0;
    /// a disk of 14 bytes.
    struct Toy {
        file: ImageFile,
    }

    impl UnitMap for Toy {
        fn image_format(&self) -> Format {
            Format::Raw
        }
        fn file(&self) -> &ImageFile {
            &self.file
        }
        fn unit_size(&self) -> u64 {
            4
        }
        fn virtual_size(&self) -> u64 {
            14
        }
        fn unit(&self, index: u64) -> Result<Unit> {
            Ok(match index {
                0 => Unit::Stored(8),
                1 => Unit::Zero,
                2 => Unit::Inflated(Arc::new(vec![9, 8, 7, 6])),
                3 => Unit::Stored(0),
                _ => panic!("unit {index} is past the disk"),
            })
        }
        fn stored_units(&self, stored: &mut dyn FnMut(u64) -> Result<()>) -> Result<()> {
            [0, 2, 3].into_iter().try_for_each(stored)
        }
    }

    fn toy() -> Toy {
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(&[100, 101, 102, 103, 0, 0, 0, 0, 1, 2, 3, 4], 0)
            .unwrap();
        Toy {
            file: ImageFile::new(file).unwrap(),
        }
    }

    #[test]
    fn reads_across_units_and_past_the_end() {
        let mut buf = [0xeeu8; 18];
        read_at(&toy(), &mut buf, 1).unwrap();
        assert_eq!(
            buf,
            [2, 3, 4, 0, 0, 0, 0, 9, 8, 7, 6, 100, 101, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn ranges_merge_adjacent_units_and_stop_at_the_size() {
        let mut ranges = Vec::new();
        data_ranges(&toy(), &mut |start, len| {
            ranges.push((start, len));
            Ok(())
        })
        .unwrap();
        assert_eq!(ranges, [(0, 4), (8, 6)]);
    }
}
