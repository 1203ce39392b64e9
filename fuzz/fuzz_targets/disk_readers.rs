//! Disk images from anywhere, as `d2l convert` reads them: `d2l_disk_format::open` on a file
//! holding the input, then the virtual disk read through `DiskReader` (its data ranges, then
//! reads at the edges), with a bounded buffer and a cap on the bytes read.
//!
//! Input: a mode byte, then the image. Modes 1 to 4 stamp a format's magic where `detect`
//! looks for it (qcow2, VDI, VMDK sparse, VHD footer), so that mutations of one format's
//! header stay that format; mode 5 is a VHDX given as pages (below), its signature stamped;
//! mode 0 (and 6 and up) leaves the image as it is.
//!
//! A VHDX's structures sit megabytes apart (header section, log, metadata, BAT and blocks
//! on 1 MiB boundaries), too far for a seed of a few KiB: in mode 5 the input is records of
//! a 4 KiB page number (u16, little-endian), a length (u16) and that many bytes, written at
//! the page, holes between; the file ends where the last record does (a record of no bytes
//! sets the length).
#![no_main]

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

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
/// VHDX: the file type identifier's signature at byte 0.
const VHDX_SIGNATURE: &[u8] = b"vhdxfile";
/// Mode 5's pages.
const PAGE: u64 = 4096;

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

/// Mode 5: writes the image the page records of `input` describe into `file`, the pages
/// in place and holes between them (a VHDX is megabytes of mostly nothing).
fn unpack_pages(mut input: &[u8], file: &File) {
    let mut end = 0;
    while let [p0, p1, l0, l1, rest @ ..] = input {
        let at = u64::from(u16::from_le_bytes([*p0, *p1])) * PAGE;
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(rest.len());
        file.write_all_at(&rest[..len], at).expect("writing a page");
        end = end.max(at + len as u64);
        input = &rest[len..];
    }
    file.set_len(end).expect("sizing the image");
    file.write_all_at(VHDX_SIGNATURE, 0).expect("writing the signature");
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
    let mut file = tempfile::tempfile().expect("temporary file");
    if mode == 5 {
        unpack_pages(rest, &file);
    } else {
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
        file.write_all(&image).expect("writing the image");
    }
    let Ok(reader) = open(file) else {
        return;
    };
    read_all(&*reader);
});
