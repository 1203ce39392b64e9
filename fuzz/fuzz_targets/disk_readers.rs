//! Disk images from anywhere, as `d2l convert` reads them: `d2l_disk_format::open` on a file
//! holding the input, then the virtual disk read through `DiskReader` (its data ranges, then
//! reads at the edges), with a bounded buffer and a cap on the bytes read.
//!
//! Input: a mode byte, then the image. Modes 1 to 4 stamp a format's magic where `detect`
//! looks for it (qcow2, VDI, VMDK sparse, VHD footer), so that mutations of one format's
//! header stay that format; mode 0 (and 5 and up) leaves the image as it is.
#![no_main]

use std::io::Write;

use d2l_disk_format::{open, DiskReader, Error};
use libfuzzer_sys::fuzz_target;

/// qcow2.txt: "QFI\xfb" at byte 0.
const QCOW2_MAGIC: &[u8] = b"QFI\xfb";
/// VDI: the signature 0xbeda107f (little-endian) at byte 0x40.
const VDI_SIGNATURE: &[u8] = &[0x7f, 0x10, 0xda, 0xbe];
const VDI_SIGNATURE_AT: usize = 0x40;
/// VMDK hosted sparse extent: "KDMV" at byte 0.
const VMDK_MAGIC: &[u8] = b"KDMV";
/// VHD: the footer's cookie, in the last 512 bytes.
const VHD_COOKIE: &[u8] = b"conectix";
const VHD_FOOTER: usize = 512;

/// Bytes of the virtual disk read at most (the inputs are small; their disks need not be).
const READ_LIMIT: u64 = 8 << 20;
/// Data ranges looked at, at most.
const RANGE_LIMIT: usize = 512;
/// The read buffer.
const CHUNK: usize = 64 << 10;

fn stamp(image: &mut Vec<u8>, at: usize, magic: &[u8]) {
    if image.len() < at + magic.len() {
        image.resize(at + magic.len(), 0);
    }
    image[at..at + magic.len()].copy_from_slice(magic);
}

fn read_all(reader: &dyn DiskReader) {
    let size = reader.virtual_size();
    let mut ranges = Vec::new();
    let _ = reader.data_ranges(&mut |offset, len| {
        if let Some(&(last_offset, last_len)) = ranges.last() {
            let last_end: u64 = last_offset + last_len;
            assert!(
                offset >= last_end,
                "data ranges overlap or go back: {offset:#x} after {last_offset:#x}+{last_len:#x}"
            );
        }
        assert!(len > 0, "an empty data range at {offset:#x}");
        ranges.push((offset, len));
        if ranges.len() >= RANGE_LIMIT {
            return Err(Error::Unsupported("enough ranges".into()));
        }
        Ok(())
    });
    let mut buf = vec![0u8; CHUNK];
    let mut budget = READ_LIMIT;
    for (offset, len) in ranges {
        let mut at = offset;
        let end = offset.saturating_add(len);
        while at < end && budget > 0 {
            let n = (end - at).min(CHUNK as u64).min(budget) as usize;
            if reader.read_at(&mut buf[..n], at).is_err() {
                return;
            }
            at += n as u64;
            budget -= n as u64;
        }
    }
    // The edges: the last sector, across the end, past it, and an odd-sized read.
    for (offset, len) in [
        (size.saturating_sub(512), 512),
        (size.saturating_sub(100), 4096),
        (size, 512),
        (u64::MAX - 10, 5),
        (1, 3),
    ] {
        let _ = reader.read_at(&mut buf[..len], offset);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut image = rest.to_vec();
    match mode {
        1 => stamp(&mut image, 0, QCOW2_MAGIC),
        2 => stamp(&mut image, VDI_SIGNATURE_AT, VDI_SIGNATURE),
        3 => stamp(&mut image, 0, VMDK_MAGIC),
        4 => {
            let at = image.len().saturating_sub(VHD_FOOTER);
            stamp(&mut image, at, VHD_COOKIE);
        }
        _ => {}
    }
    let mut file = tempfile::tempfile().expect("temporary file");
    file.write_all(&image).expect("writing the image");
    let Ok(reader) = open(file) else {
        return;
    };
    read_all(&*reader);
});
