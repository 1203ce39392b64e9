//! A Google Compute Engine image: `image.tar.gz`, a gzip-compressed GNU tar holding one file,
//! `disk.raw`, the disk's bytes, as Google's "Manually import boot disks" asks for (what
//! `tar --format=oldgnu -Sczf image.tar.gz disk.raw` makes): an old-GNU sparse member whose
//! holes are the disk's, and a size that is a whole number of GiB (Compute Engine sizes
//! disks in GB: the disk is rounded up with zeros, like a larger volume, which the machine's
//! root grows into at its first boot).
//!
//! Written in one pass, front to back: the sparse map comes from the scratch file's data and
//! holes (`SEEK_DATA`/`SEEK_HOLE`), then the headers and the data runs go through gzip
//! (`gzip.rs`, on every core) into the output.

use std::fs::File;

use super::gzip::gzip;
use super::tar::{self, END};
use super::BundleOptions;
use crate::cluster_map::read_up_to;
use crate::seq::SeqWriter;
use crate::usize_from;
use crate::{Error, Result};
use d2l_disk::bytes::is_zero;

/// The member's name: what Compute Engine looks for.
pub const GCE_DISK_NAME: &str = "disk.raw";
/// Compute Engine disk sizes are whole GiB.
pub const GCE_SIZE_UNIT: u64 = 1 << 30;
/// Bytes read from the scratch file at a time.
const CHUNK: usize = 1 << 20;
/// The unit of holes in `disk.raw`: 4 KiB, ext4's block (whole zero blocks of file data are
/// holes in the filesystem d2l writes, so this finds them all).
const HOLE_UNIT: u64 = 4096;

/// The runs of data in the first `size` bytes of `scratch`, for a file of `real_size`
/// bytes: the [`HOLE_UNIT`] blocks that hold anything but zeros (only the ranges
/// `SEEK_DATA` finds are read), merged; then a zero-length run at the end when the file ends
/// in a hole, as GNU tar records it, so that readers ignoring the real size still get the
/// length. From the bytes, not from what the scratch file happened to allocate, so the same
/// disk gives the same map.
fn sparse_map(scratch: &File, size: u64, real_size: u64) -> Result<Vec<(u64, u64)>> {
    let mut map: Vec<(u64, u64)> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    // The first unit not yet looked at: data ranges may share a unit.
    let mut next_unit = 0u64;
    crate::raw::data_ranges(scratch, size, &mut |start, len| {
        let mut unit = (start / HOLE_UNIT).max(next_unit);
        let end_unit = (start + len).min(size).div_ceil(HOLE_UNIT);
        while unit < end_unit {
            let at = unit * HOLE_UNIT;
            let bytes = usize_from(((end_unit - unit) * HOLE_UNIT).min(CHUNK as u64));
            let got = read_up_to(scratch, &mut buf[..bytes], at)
                .map_err(Error::output("reading the scratch file", at))?;
            buf[got..bytes].fill(0);
            for (i, block) in buf[..bytes].chunks(usize_from(HOLE_UNIT)).enumerate() {
                if is_zero(block) {
                    continue;
                }
                let from = at + i as u64 * HOLE_UNIT;
                let to = (from + HOLE_UNIT).min(size);
                match map.last_mut() {
                    Some((run, len)) if *run + *len == from => *len = to - *run,
                    _ => map.push((from, to - from)),
                }
            }
            unit += bytes as u64 / HOLE_UNIT;
        }
        next_unit = next_unit.max(end_unit);
        Ok(())
    })
    .map_err(|e| match e {
        // Reading the scratch file is writing the output, as far as the user is concerned.
        Error::Input {
            what,
            offset,
            source,
        } => Error::Output {
            what,
            offset,
            source,
        },
        other => other,
    })?;
    if map
        .last()
        .is_none_or(|&(start, len)| start + len < real_size)
    {
        map.push((real_size, 0));
    }
    Ok(map)
}

/// Writes the image into `out` from the first `size` bytes of `scratch`; returns the
/// archive's length.
pub(super) fn write(out: &File, scratch: &File, size: u64, options: &BundleOptions) -> Result<u64> {
    let real_size = size.next_multiple_of(GCE_SIZE_UNIT);
    let map = sparse_map(scratch, size, real_size)?;
    let mtime = options.disk.timestamp;
    let headers = tar::gnu_sparse_headers(GCE_DISK_NAME, &map, real_size, mtime)?;
    let mut writer = SeqWriter::new(out, 0);
    // gzip's mtime is 32 bits; 0 means "none".
    let gz_mtime = u32::try_from(mtime).unwrap_or(0);
    gzip(&mut writer, gz_mtime, &mut |sink| {
        sink(&headers)?;
        let mut buf = vec![0u8; CHUNK];
        let mut stored = 0u64;
        for &(start, len) in &map {
            let mut at = start;
            while at < start + len {
                let n = usize_from((start + len - at).min(CHUNK as u64));
                let got = read_up_to(scratch, &mut buf[..n], at)
                    .map_err(Error::output("reading the scratch file", at))?;
                // Past the scratch file's end, zeros.
                buf[got..n].fill(0);
                sink(&buf[..n])?;
                at += n as u64;
            }
            stored += len;
        }
        sink(tar::padding(stored))?;
        sink(&END)
    })?;
    let (end, _) = writer.finish()?;
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn the_map_is_the_nonzero_blocks_and_ends_with_an_empty_run_at_a_hole() {
        let scratch = tempfile::tempfile().unwrap();
        scratch.set_len(8 << 20).unwrap();
        scratch.write_all_at(&[1; 4096], 0).unwrap();
        scratch.write_all_at(&[2; 8192], 4 << 20).unwrap();
        // Zeros written are holes all the same; a byte makes its whole block data.
        scratch.write_all_at(&[0; 65536], 6 << 20).unwrap();
        scratch.write_all_at(&[3], (6 << 20) + 4096 + 7).unwrap();
        let map = sparse_map(&scratch, 8 << 20, 1 << 30).unwrap();
        assert_eq!(
            map,
            [
                (0, 4096),
                (4 << 20, 8192),
                ((6 << 20) + 4096, 4096),
                (1 << 30, 0)
            ]
        );
        // Data up to the end: no empty run.
        scratch.write_all_at(&[3; 4096], (8 << 20) - 4096).unwrap();
        let map = sparse_map(&scratch, 8 << 20, 8 << 20).unwrap();
        assert_eq!(map.last().map(|&(s, l)| s + l), Some(8 << 20));
        // Nothing at all: only the end.
        let empty = tempfile::tempfile().unwrap();
        empty.set_len(1 << 20).unwrap();
        assert_eq!(
            sparse_map(&empty, 1 << 20, 1 << 30).unwrap(),
            [(1 << 30, 0)]
        );
        // A disk whose size is not whole blocks: the last run stops at the size.
        let odd = tempfile::tempfile().unwrap();
        odd.write_all_at(&[9; 100], 0).unwrap();
        assert_eq!(sparse_map(&odd, 100, 100).unwrap(), [(0, 100)]);
    }
}
