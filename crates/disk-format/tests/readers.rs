//! d2l reads VDI, VMDK and VHD images, as d2l writes them and as qemu-img writes them, in
//! every subformat: each, converted back to raw by d2l, is the disk it was made from
//! (`qemu-img compare`); its data ranges are exactly the units it stores; converted to
//! another format that is not raw it passes `qemu-img check`; and a truncated or damaged
//! one is an error that says what is wrong, never a panic or garbage.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{
    d2l_convert, debian_tree, new_file, pattern, read_everything, write_debian_disk, writer,
};
use d2l_disk_format::{open, Format, VhdSubformat, VmdkSubformat, WriteOptions, MIB};
use d2l_testkit::qemu_img;

/// How qemu-img writes each format and subformat d2l reads: (file name, arguments, QEMU's
/// format name). VHDs keep their exact size (force_size): without it qemu-img rounds the
/// size up to a CHS geometry.
const QEMU_WRITES: [(&str, &[&str], &str); 10] = [
    ("qemu.vdi", &["-O", "vdi"], "vdi"),
    ("qemu-static.vdi", &["-O", "vdi", "-o", "static=on"], "vdi"),
    ("qemu.vmdk", &["-O", "vmdk"], "vmdk"),
    (
        "qemu-zeroed-grain.vmdk",
        &["-O", "vmdk", "-o", "zeroed_grain=on"],
        "vmdk",
    ),
    (
        "qemu-stream.vmdk",
        &["-O", "vmdk", "-o", "subformat=streamOptimized"],
        "vmdk",
    ),
    ("qemu.vhd", &["-O", "vpc", "-o", "force_size=on"], "vpc"),
    (
        "qemu-fixed.vhd",
        &["-O", "vpc", "-o", "subformat=fixed,force_size=on"],
        "vpc",
    ),
    // QEMU's blocks are 8 MiB below 1 GiB; unwritten blocks "zero" unless told otherwise,
    // even in a fixed VHDX.
    ("qemu.vhdx", &["-O", "vhdx"], "vhdx"),
    (
        "qemu-32m-not-present.vhdx",
        &["-O", "vhdx", "-o", "block_size=32M,block_state_zero=off"],
        "vhdx",
    ),
    (
        "qemu-fixed.vhdx",
        &["-O", "vhdx", "-o", "subformat=fixed"],
        "vhdx",
    ),
];

/// How d2l writes each of them: (file name, options).
fn d2l_writes() -> Vec<(&'static str, WriteOptions)> {
    let with = |name: &'static str, format, edit: &dyn Fn(&mut WriteOptions)| {
        let mut options = WriteOptions::new(format, name);
        options.identity = d2l_disk_format::identity(name.as_bytes());
        edit(&mut options);
        (name, options)
    };
    vec![
        with("d2l.vdi", Format::Vdi, &|_| {}),
        with("d2l.vmdk", Format::Vmdk, &|_| {}),
        with("d2l-stream.vmdk", Format::Vmdk, &|o| {
            o.vmdk_subformat = VmdkSubformat::Stream
        }),
        with("d2l.vhd", Format::Vhd, &|_| {}),
        with("d2l-fixed.vhd", Format::Vhd, &|o| {
            o.vhd_subformat = VhdSubformat::Fixed
        }),
        with("d2l.vhdx", Format::Vhdx, &|_| {}),
    ]
}

/// Converts `image` back to raw with d2l and compares it with `reference`; what is wrong.
fn reads_as(image: &Path, reference: &Path) -> Option<String> {
    let name = image.file_name().unwrap().to_string_lossy().into_owned();
    let size = std::fs::metadata(reference).unwrap().len();
    let reader = open(File::open(image).unwrap()).unwrap();
    // d2l writes whole MiB; qemu-img the exact size.
    let virtual_size = reader.virtual_size();
    if virtual_size != size
        && !(name.starts_with("d2l") && virtual_size == size.next_multiple_of(MIB))
    {
        return Some(format!(
            "{name}: d2l reads {virtual_size} bytes, not {size}"
        ));
    }
    let back = image.with_extension("back.img");
    let started = Instant::now();
    d2l_convert(image, &back, &WriteOptions::new(Format::Raw, "back.img"));
    eprintln!(
        "{name}: d2l convert to raw {:.2}s",
        started.elapsed().as_secs_f64()
    );
    let (same, text) = qemu_img::compare(reference, "raw", &back, "raw");
    std::fs::remove_file(&back).unwrap();
    (!same).then(|| format!("{name}: qemu-img compare: {text}"))
}

#[test]
fn reads_the_debian_disk_as_d2l_and_qemu_img_write_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (tree, data) = debian_tree();
    let reference = tmp.path().join("reference.raw");
    write_debian_disk(&new_file(&reference), &tree, &data);
    let mut wrong = Vec::new();
    for (name, options) in d2l_writes() {
        let path = tmp.path().join(name);
        // As `d2l build` writes it: through the writer, the size unknown until the end.
        let disk = writer(&path, &options);
        write_debian_disk(disk.as_disk(), &tree, &data);
        disk.finish().unwrap();
        wrong.extend(reads_as(&path, &reference));
        std::fs::remove_file(&path).unwrap();
    }
    for (name, args, _) in QEMU_WRITES {
        let path = tmp.path().join(name);
        qemu_img::convert(args, &reference, &path);
        wrong.extend(reads_as(&path, &reference));
        std::fs::remove_file(&path).unwrap();
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Size of the synthetic disk: whole sectors, but it ends inside a 64 KiB grain, a 1 MiB
/// VDI block and a 2 MiB VHD block.
const ODD_SIZE: u64 = 43 * MIB + 3 * 65536 + 1536;

/// A raw disk of [`ODD_SIZE`] bytes: data across grain and block boundaries, at an odd
/// offset, in a long run, in its last bytes; zeros written as data; holes between.
fn odd_raw(dir: &Path) -> PathBuf {
    let path = dir.join("odd.raw");
    let file = new_file(&path);
    file.set_len(ODD_SIZE).unwrap();
    let writes: [(u64, usize); 7] = [
        (0, 300_000),
        (MIB - 1000, 3000),
        (2 * MIB - 512, 1024),
        (9 * MIB + 12345, 70_000),
        (20 * MIB + 4096, 5 * MIB as usize),
        (ODD_SIZE - 1536, 1536),
        (ODD_SIZE - 200_000, 1000),
    ];
    for (seed, (offset, len)) in writes.into_iter().enumerate() {
        file.write_all_at(&pattern(seed as u64 + 1, len), offset)
            .unwrap();
    }
    // Zeros that are data to the file system, not to the disk.
    file.write_all_at(&vec![0; 4 * MIB as usize], 30 * MIB)
        .unwrap();
    path
}

#[test]
fn reads_odd_sizes_and_block_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = odd_raw(tmp.path());
    let mut wrong = Vec::new();
    for (name, args, _) in QEMU_WRITES {
        let path = tmp.path().join(name);
        qemu_img::convert(args, &raw, &path);
        wrong.extend(reads_as(&path, &raw));
    }
    // VirtualBox's blocks are 1 MiB, QEMU writes no other size; other powers of two, with
    // blocks stored out of order, free and zero entries, written from the VDI layout.
    let static_vdi = tmp.path().join("qemu-static.vdi");
    for block in [4096, 64 << 10, 4 << 20] {
        let path = tmp.path().join(format!("block-{block}.vdi"));
        reblock_vdi(&static_vdi, &raw, block, &path);
        wrong.extend(reads_as(&path, &raw));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Writes `raw` as a dynamic VDI with blocks of `block` bytes at `out`, from the VDI
/// layout (VDICore.h) with the header of `qemu_vdi` (signature, version, UUIDs): the map
/// after the header, the stored blocks in reverse order, all-zero blocks alternately
/// "free" and "zero".
fn reblock_vdi(qemu_vdi: &Path, raw: &Path, block: u32, out: &Path) {
    let mut header = vec![0u8; 512];
    File::open(qemu_vdi)
        .unwrap()
        .read_exact_at(&mut header, 0)
        .unwrap();
    let disk = std::fs::read(raw).unwrap();
    let blocks: Vec<&[u8]> = disk.chunks(block as usize).collect();
    let stored: Vec<usize> = (0..blocks.len())
        .filter(|&i| blocks[i].iter().any(|&b| b != 0))
        .collect();
    let map_offset = 512u32;
    let data_offset = (map_offset + 4 * blocks.len() as u32).next_multiple_of(512);
    let mut map = vec![0u8; 4 * blocks.len()];
    for (i, entry) in map.chunks_mut(4).enumerate() {
        let value = match stored.iter().position(|&s| s == i) {
            Some(rank) => (stored.len() - 1 - rank) as u32,
            None if i % 2 == 0 => u32::MAX,
            None => u32::MAX - 1,
        };
        entry.copy_from_slice(&value.to_le_bytes());
    }
    let mut put = |at: usize, value: u32| header[at..at + 4].copy_from_slice(&value.to_le_bytes());
    put(0x4c, 1); // image type: dynamic
    put(0x154, map_offset);
    put(0x158, data_offset);
    put(0x178, block);
    put(0x180, blocks.len() as u32);
    put(0x184, stored.len() as u32);
    let file = new_file(out);
    file.write_all_at(&header, 0).unwrap();
    file.write_all_at(&map, u64::from(map_offset)).unwrap();
    for (slot, &i) in stored.iter().rev().enumerate() {
        let mut bytes = blocks[i].to_vec();
        bytes.resize(block as usize, 0);
        file.write_all_at(
            &bytes,
            u64::from(data_offset) + slot as u64 * u64::from(block),
        )
        .unwrap();
    }
}

#[test]
fn converts_between_formats_that_are_not_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = odd_raw(tmp.path());
    let qemu = |name: &str, args: &[&str]| {
        let path = tmp.path().join(name);
        qemu_img::convert(args, &raw, &path);
        path
    };
    let vdi = qemu("in.vdi", &["-O", "vdi"]);
    let stream = qemu(
        "in.vmdk",
        &["-O", "vmdk", "-o", "subformat=streamOptimized"],
    );
    let vhd = qemu("in.vhd", &["-O", "vpc", "-o", "force_size=on"]);
    let vhdx = qemu("in.vhdx", &["-O", "vhdx"]);
    let stream_options = {
        let mut o = WriteOptions::new(Format::Vmdk, "out-stream.vmdk");
        o.vmdk_subformat = VmdkSubformat::Stream;
        o
    };
    // (input, output options, QEMU's name for the output)
    let cases = [
        (&vdi, WriteOptions::new(Format::Qcow2, "out.qcow2"), "qcow2"),
        (&stream, WriteOptions::new(Format::Vhd, "out.vhd"), "vpc"),
        (&vhd, stream_options, "vmdk"),
        (&vdi, WriteOptions::new(Format::Vmdk, "out.vmdk"), "vmdk"),
        (&vhdx, WriteOptions::new(Format::Vdi, "out.vdi"), "vdi"),
        (&stream, WriteOptions::new(Format::Vhdx, "out.vhdx"), "vhdx"),
    ];
    for (input, options, qemu_format) in cases {
        let out = tmp.path().join(&options.file_name);
        d2l_convert(input, &out, &options);
        if qemu_format != "vpc" {
            qemu_img::assert_check(&out, qemu_format);
        }
        // The output is whole MiB: qemu-img compare checks the rest reads as zeros.
        let (same, text) = qemu_img::compare(&raw, "raw", &out, qemu_format);
        assert!(same, "{} -> {}: {text}", input.display(), out.display());
        // And the input, read by QEMU, is the same disk as the output d2l wrote.
        let input_format = match input.extension().unwrap().to_str().unwrap() {
            "vhd" => "vpc",
            other => other,
        };
        qemu_img::assert_identical(input, input_format, &out, qemu_format);
    }
}

/// The ranges `reader` reports as possibly holding data.
fn data_ranges(path: &Path) -> (u64, Vec<(u64, u64)>) {
    let reader = open(File::open(path).unwrap()).unwrap();
    let mut ranges = Vec::new();
    reader
        .data_ranges(&mut |start, len| {
            ranges.push((start, len));
            Ok(())
        })
        .unwrap();
    (reader.virtual_size(), ranges)
}

/// The units of `unit` bytes of `disk` that hold a non-zero byte, as merged ranges cut at
/// `size`.
fn nonzero_units(disk: &[u8], unit: u64, size: u64) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for (i, chunk) in disk.chunks(unit as usize).enumerate() {
        if chunk.iter().all(|&b| b == 0) {
            continue;
        }
        let start = i as u64 * unit;
        let end = (start + unit).min(size);
        match ranges.last_mut() {
            Some((s, len)) if *s + *len == start => *len = end - *s,
            _ => ranges.push((start, end - start)),
        }
    }
    ranges
}

#[test]
fn data_ranges_are_the_units_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = odd_raw(tmp.path());
    let disk = std::fs::read(&raw).unwrap();
    let mut images: Vec<PathBuf> = Vec::new();
    for (name, args, _) in QEMU_WRITES {
        let path = tmp.path().join(name);
        qemu_img::convert(args, &raw, &path);
        images.push(path);
    }
    for (name, options) in d2l_writes() {
        let path = tmp.path().join(name);
        d2l_convert(&raw, &path, &options);
        images.push(path);
    }
    let mut wrong = Vec::new();
    for path in images {
        let name = path.file_name().unwrap().to_str().unwrap();
        let (size, ranges) = data_ranges(&path);
        let unit = match name.rsplit('.').next().unwrap() {
            "vdi" => MIB,
            "vmdk" => 64 << 10,
            "vhdx" if name.starts_with("d2l") => MIB,
            "vhdx" if name.contains("32m") => 32 * MIB,
            "vhdx" => 8 * MIB,
            _ => 2 * MIB,
        };
        let stored: u64 = ranges.iter().map(|(_, len)| len).sum();
        if name.contains("static") {
            // Every block of a static VDI is stored.
            if ranges != [(0, size)] {
                wrong.push(format!("{name}: {ranges:x?}"));
            }
        } else if name.ends_with("fixed.vhd") {
            // A fixed VHD is a raw disk: its ranges are what the file system stores, which
            // includes every non-zero byte, and the zeros written as data.
            let covered = |at: u64| ranges.iter().any(|&(s, len)| s <= at && at < s + len);
            let missed = disk
                .iter()
                .enumerate()
                .position(|(at, &b)| b != 0 && !covered(at as u64));
            if let Some(at) = missed {
                wrong.push(format!("{name}: data at {at:#x} outside {ranges:x?}"));
            }
            if stored >= size {
                wrong.push(format!(
                    "{name}: {stored} bytes of ranges for a disk of {size}"
                ));
            }
        } else {
            let expected = nonzero_units(&disk, unit, size);
            if ranges != expected {
                wrong.push(format!(
                    "{name}: ranges {ranges:x?}, the units holding data are {expected:x?}"
                ));
            }
        }
        eprintln!(
            "{name}: {stored} bytes in {} ranges of a {size}-byte disk",
            ranges.len()
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A damaged copy of an image, and what its error must say.
struct Damage {
    path: PathBuf,
    needles: &'static [&'static str],
}

/// Copies `from` to `name` in `dir` and applies `edit` to the copy.
fn damaged(
    dir: &Path,
    from: &Path,
    name: &str,
    needles: &'static [&'static str],
    edit: &dyn Fn(&File),
) -> Damage {
    let path = dir.join(name);
    std::fs::copy(from, &path).unwrap();
    edit(&File::options().read(true).write(true).open(&path).unwrap());
    Damage { path, needles }
}

/// Asserts that reading each damaged image fails with one line holding its needles.
fn assert_errors(cases: &[Damage]) {
    let mut wrong = Vec::new();
    for case in cases {
        let name = case.path.file_name().unwrap().to_string_lossy();
        match read_everything(&case.path) {
            Ok(()) => wrong.push(format!("{name}: read without an error")),
            Err(message) => {
                let missing: Vec<_> = case
                    .needles
                    .iter()
                    .filter(|n| !message.contains(*n))
                    .collect();
                if !missing.is_empty() || message.contains('\n') {
                    wrong.push(format!("{name}: {missing:?} not in {message:?}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn put32_le(f: &File, at: u64, value: u32) {
    f.write_all_at(&value.to_le_bytes(), at).unwrap();
}

fn put32_be(f: &File, at: u64, value: u32) {
    f.write_all_at(&value.to_be_bytes(), at).unwrap();
}

fn get32_le(f: &File, at: u64) -> u32 {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, at).unwrap();
    u32::from_le_bytes(b)
}

fn get64_le(f: &File, at: u64) -> u64 {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, at).unwrap();
    u64::from_le_bytes(b)
}

fn get32_be(f: &File, at: u64) -> u32 {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, at).unwrap();
    u32::from_be_bytes(b)
}

#[test]
fn damaged_vdi_is_an_error_that_says_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let raw = odd_raw(dir);
    let vdi = dir.join("good.vdi");
    qemu_img::convert(&["-O", "vdi"], &raw, &vdi);
    let blocks = get32_le(&File::open(&vdi).unwrap(), 0x180);
    assert_eq!(u64::from(blocks), ODD_SIZE.div_ceil(MIB));
    let from_vdi = |name: &str, needles: &'static [&'static str], edit: &dyn Fn(&File)| {
        damaged(dir, &vdi, name, needles, edit)
    };
    let cases = [
        from_vdi(
            "half.vdi",
            &["VDI data area", "past the end of the file", "truncated"],
            &|f| f.set_len(len(&vdi) / 2).unwrap(),
        ),
        from_vdi(
            "header-only.vdi",
            &["VDI header truncated", "300 bytes"],
            &|f| f.set_len(300).unwrap(),
        ),
        from_vdi("version.vdi", &["VDI version 2.0"], &|f| {
            put32_le(f, 0x44, 0x0002_0000)
        }),
        from_vdi(
            "block-size.vdi",
            &["block size 3000 is not a power of two"],
            &|f| put32_le(f, 0x178, 3000),
        ),
        from_vdi(
            "disk-size.vdi",
            &["blocks of 1048576 bytes are less than the disk's"],
            &|f| f.write_all_at(&(1u64 << 40).to_le_bytes(), 0x170).unwrap(),
        ),
        from_vdi(
            "map-entry.vdi",
            &["VDI block map entry 0 is 1000, but the image stores"],
            &|f| put32_le(f, 0x200, 1000),
        ),
        from_vdi(
            "allocated.vdi",
            &["VDI data area of", "past the end of the file"],
            &|f| put32_le(f, 0x184, blocks),
        ),
        from_vdi("map-place.vdi", &["VDI block map", "overlaps"], &|f| {
            put32_le(f, 0x154, 0x100)
        }),
        from_vdi("type.vdi", &["image type 7"], &|f| put32_le(f, 0x4c, 7)),
        from_vdi("differencing.vdi", &["differencing VDI", "parent"], &|f| {
            put32_le(f, 0x4c, 4)
        }),
        from_vdi("parent.vdi", &["names a parent"], &|f| {
            put32_le(f, 0x1a8, 0x1234)
        }),
    ];
    assert_errors(&cases);
}

/// The file offsets of a VMDK's grain directory, its first grain table and the grain that
/// table's first entry points to (the header's directory, or the footer's).
fn vmdk_tables(path: &Path) -> (u64, u64, u64) {
    let f = File::open(path).unwrap();
    let mut gd = get64_le(&f, 56);
    if gd == u64::MAX {
        gd = get64_le(&f, len(path) - 1024 + 56);
    }
    let gt = u64::from(get32_le(&f, gd * 512));
    let grain = u64::from(get32_le(&f, gt * 512));
    assert!(
        gt != 0 && grain != 0,
        "{}: the first grain is stored",
        path.display()
    );
    (gd * 512, gt * 512, grain * 512)
}

/// Rewrites the embedded descriptor of a VMDK, replacing `from` by `to`.
fn edit_descriptor(f: &File, from: &str, to: &str) {
    let mut text = vec![0u8; 20 * 512];
    f.read_exact_at(&mut text, 512).unwrap();
    let end = text.iter().position(|&b| b == 0).unwrap();
    let edited = String::from_utf8_lossy(&text[..end]).replace(from, to);
    assert!(edited.contains(to));
    text.fill(0);
    text[..edited.len()].copy_from_slice(edited.as_bytes());
    f.write_all_at(&text, 512).unwrap();
}

#[test]
fn damaged_vmdk_is_an_error_that_says_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let raw = odd_raw(dir);
    let sparse = dir.join("sparse.vmdk");
    qemu_img::convert(&["-O", "vmdk"], &raw, &sparse);
    let (gd, gt, _) = vmdk_tables(&sparse);
    let ours = dir.join("ours-stream.vmdk");
    let mut options = WriteOptions::new(Format::Vmdk, "ours-stream.vmdk");
    options.vmdk_subformat = VmdkSubformat::Stream;
    d2l_convert(&raw, &ours, &options);
    let (_, _, grain) = vmdk_tables(&ours);
    let theirs = dir.join("qemu-stream.vmdk");
    qemu_img::convert(
        &["-O", "vmdk", "-o", "subformat=streamOptimized"],
        &raw,
        &theirs,
    );
    let (_, their_gt, _) = vmdk_tables(&theirs);
    // Descriptor files and the extents they name, as qemu-img creates them.
    for subformat in ["monolithicFlat", "twoGbMaxExtentSparse"] {
        let path = dir.join(format!("{subformat}.vmdk"));
        let out = qemu_img::run(
            &[
                "create",
                "-q",
                "-f",
                "vmdk",
                "-o",
                &format!("subformat={subformat}"),
            ],
            &[&path, Path::new("10M")],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let split_extent = dir.join("twoGbMaxExtentSparse-s001.vmdk");
    assert!(split_extent.exists());
    let from_sparse = |name: &str, needles: &'static [&'static str], edit: &dyn Fn(&File)| {
        damaged(dir, &sparse, name, needles, edit)
    };
    let from_ours = |name: &str, needles: &'static [&'static str], edit: &dyn Fn(&File)| {
        damaged(dir, &ours, name, needles, edit)
    };
    let from_theirs = |name: &str, needles: &'static [&'static str], edit: &dyn Fn(&File)| {
        damaged(dir, &theirs, name, needles, edit)
    };
    let cases = [
        // monolithicSparse as qemu-img writes it: tables first, then the grains.
        from_sparse(
            "half.vmdk",
            &[
                "VMDK grain for guest offset",
                "past the end of the file",
                "truncated",
            ],
            &|f| f.set_len(len(&sparse) / 2).unwrap(),
        ),
        from_sparse(
            "header-only.vmdk",
            &["VMDK header truncated", "300 bytes"],
            &|f| f.set_len(300).unwrap(),
        ),
        from_sparse("version.vmdk", &["VMDK sparse extent version 9"], &|f| {
            put32_le(f, 4, 9)
        }),
        from_sparse(
            "grain-size.vmdk",
            &["a grain of 100 sectors is not a power of two"],
            &|f| f.write_all_at(&100u64.to_le_bytes(), 20).unwrap(),
        ),
        from_sparse("gtes.vmdk", &["grain tables of 4096 entries"], &|f| {
            put32_le(f, 44, 4096)
        }),
        from_sparse("line-ends.vmdk", &["line-end check characters"], &|f| {
            f.write_all_at(b"\n \n\n", 73).unwrap()
        }),
        from_sparse("algorithm.vmdk", &["VMDK compression algorithm 2"], &|f| {
            put32_le(f, 8, get32_le(f, 8) | 3 << 16);
            f.write_all_at(&[2, 0], 77).unwrap();
        }),
        from_sparse(
            "gd-place.vmdk",
            &["VMDK grain directory", "past the end of the file"],
            &|f| f.write_all_at(&0x7fff_ffffu64.to_le_bytes(), 56).unwrap(),
        ),
        from_sparse(
            "gd-entry.vmdk",
            &["VMDK grain table 0", "past the end of the file"],
            &|f| put32_le(f, gd, 0x7fff_ffff),
        ),
        from_sparse(
            "gt-entry.vmdk",
            &[
                "VMDK grain for guest offset 0x0",
                "past the end of the file",
            ],
            &|f| put32_le(f, gt, 0x7fff_ff00),
        ),
        from_sparse(
            "gt-metadata.vmdk",
            &["VMDK grain table entry for guest offset 0x0 is sector 0x2, inside the metadata"],
            &|f| put32_le(f, gt, 2),
        ),
        from_sparse(
            "create-type.vmdk",
            &["createType twoGbMaxExtentSparse", "other files"],
            &|f| edit_descriptor(f, "monolithicSparse", "twoGbMaxExtentSparse"),
        ),
        from_sparse("delta.vmdk", &["VMDK delta disk", "parent"], &|f| {
            edit_descriptor(f, "parentCID=ffffffff", "parentCID=0badcafe")
        }),
        damaged(
            dir,
            &dir.join("monolithicFlat.vmdk"),
            "flat.vmdk",
            &["VMDK descriptor file (createType monolithicFlat, 1 extent)"],
            &|_| {},
        ),
        damaged(
            dir,
            &dir.join("twoGbMaxExtentSparse.vmdk"),
            "split.vmdk",
            &["VMDK descriptor file (createType twoGbMaxExtentSparse"],
            &|_| {},
        ),
        damaged(
            dir,
            &split_extent,
            "split-s001.vmdk",
            &["sparse extent without an embedded descriptor"],
            &|_| {},
        ),
        // streamOptimized as d2l writes it: the directory in the footer.
        from_ours(
            "cut.vmdk",
            &["does not end with a footer", "truncated"],
            &|f| f.set_len(len(&ours) - 1000).unwrap(),
        ),
        from_ours("eos.vmdk", &["does not end with a footer"], &|f| {
            put32_le(f, len(&ours) - 512 + 12, 5)
        }),
        from_ours(
            "footer-magic.vmdk",
            &["the VMDK footer has no \"KDMV\" magic"],
            &|f| f.write_all_at(b"XXXX", len(&ours) - 1024).unwrap(),
        ),
        from_ours(
            "footer-gd.vmdk",
            &["VMDK grain directory", "past the end of the file"],
            &|f| {
                f.write_all_at(&0x7fff_ffffu64.to_le_bytes(), len(&ours) - 1024 + 56)
                    .unwrap()
            },
        ),
        from_ours(
            "deflate.vmdk",
            &[
                "VMDK compressed grain for guest offset 0x0",
                "does not inflate to a grain",
            ],
            &|f| f.write_all_at(&[0x55; 16], grain + 12 + 40).unwrap(),
        ),
        from_ours("marker-lba.vmdk", &["is marked for sector 0x3e7"], &|f| {
            f.write_all_at(&999u64.to_le_bytes(), grain).unwrap()
        }),
        from_ours("marker-huge.vmdk", &["2147483647 bytes long"], &|f| {
            put32_le(f, grain + 8, 0x7fff_ffff)
        }),
        from_ours(
            "marker-short.vmdk",
            &["does not inflate to a grain", "cut short"],
            &|f| put32_le(f, grain + 8, 10),
        ),
        // streamOptimized as qemu-img writes it: the directory in front.
        from_theirs(
            "their-half.vmdk",
            &["VMDK compressed grain", "past the end of the file"],
            &|f| f.set_len(len(&theirs) / 2).unwrap(),
        ),
        from_theirs(
            "their-gt-entry.vmdk",
            &[
                "VMDK compressed grain for guest offset 0x0",
                "past the end of the file",
            ],
            &|f| put32_le(f, their_gt, 0x7fff_ff00),
        ),
    ];
    assert_errors(&cases);
}

#[test]
fn vmdk_zero_grain_entries_read_as_zeros() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = odd_raw(tmp.path());
    let disk = std::fs::read(&raw).unwrap();
    // qemu-img converts without writing zero grains: the first grain's entry is made one.
    let vmdk = tmp.path().join("zeroed.vmdk");
    qemu_img::convert(&["-O", "vmdk", "-o", "zeroed_grain=on"], &raw, &vmdk);
    let (_, gt, _) = vmdk_tables(&vmdk);
    put32_le(&File::options().write(true).open(&vmdk).unwrap(), gt, 1);
    let read = read_disk(&vmdk).unwrap();
    assert!(is_zero(&read[..65536]), "the first grain reads as zeros");
    assert!(!is_zero(&disk[..65536]));
    assert_eq!(read[65536..], disk[65536..]);
    let (size, ranges) = data_ranges(&vmdk);
    assert_eq!(ranges[0].0, 65536, "a zero grain is not data: {ranges:x?}");
    assert!(ranges.iter().map(|(_, len)| len).sum::<u64>() < size);
    // Without the zero-grain flag, an entry of one points into the header.
    let plain = tmp.path().join("plain.vmdk");
    qemu_img::convert(&["-O", "vmdk"], &raw, &plain);
    let (_, gt, _) = vmdk_tables(&plain);
    put32_le(&File::options().write(true).open(&plain).unwrap(), gt, 1);
    let err = read_disk(&plain).unwrap_err();
    assert!(err.contains("is sector 0x1, inside the metadata"), "{err}");
}

/// Rewrites the VHD checksum at `sum_at` of the `len` bytes at `at`.
fn fix_vhd_checksum(f: &File, at: u64, len: usize, sum_at: usize) {
    let mut bytes = vec![0u8; len];
    f.read_exact_at(&mut bytes, at).unwrap();
    bytes[sum_at..sum_at + 4].fill(0);
    let sum = !bytes
        .iter()
        .fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
    put32_be(f, at + sum_at as u64, sum);
}

/// Sets the big-endian `u32` at `field` of both footers of a dynamic VHD (or the one of a
/// fixed one) and fixes their checksums.
fn edit_vhd_footers(f: &File, file_len: u64, field: u64, value: u32) {
    let mut head = [0u8; 8];
    f.read_exact_at(&mut head, 0).unwrap();
    let footers: &[u64] = if &head == b"conectix" {
        &[0, file_len - 512]
    } else {
        &[file_len - 512]
    };
    for &at in footers {
        put32_be(f, at + field, value);
        fix_vhd_checksum(f, at, 512, 64);
    }
}

#[test]
fn damaged_vhd_is_an_error_that_says_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let raw = odd_raw(dir);
    let vhd = dir.join("good.vhd");
    qemu_img::convert(&["-O", "vpc", "-o", "force_size=on"], &raw, &vhd);
    let bat = {
        let f = File::open(&vhd).unwrap();
        (u64::from(get32_be(&f, 512 + 16)) << 32) | u64::from(get32_be(&f, 512 + 20))
    };
    let fixed = dir.join("fixed.vhd");
    qemu_img::convert(
        &["-O", "vpc", "-o", "subformat=fixed,force_size=on"],
        &raw,
        &fixed,
    );
    let n = len(&vhd);
    let from_vhd = |name: &str, needles: &'static [&'static str], edit: &dyn Fn(&File)| {
        damaged(dir, &vhd, name, needles, edit)
    };
    let from_fixed = |name: &str, needles: &'static [&'static str], edit: &dyn Fn(&File)| {
        damaged(dir, &fixed, name, needles, edit)
    };
    let cases = [
        from_vhd(
            "half.vhd",
            &[
                "VHD footer is missing from the end of the file",
                "truncated",
            ],
            &|f| f.set_len(n / 2).unwrap(),
        ),
        from_vhd(
            "cookie.vhd",
            &["VHD footer is missing from the end of the file"],
            &|f| f.write_all_at(b"xonectix", n - 512).unwrap(),
        ),
        from_vhd(
            "checksum.vhd",
            &["the VHD footer at", "checksum", "damaged"],
            &|f| f.write_all_at(&[0x5a], n - 512 + 24).unwrap(),
        ),
        from_vhd(
            "copy-checksum.vhd",
            &["the VHD footer copy at 0", "checksum"],
            &|f| f.write_all_at(&[0x5a], 24).unwrap(),
        ),
        from_vhd(
            "copy-differs.vhd",
            &["the VHD footer copy at 0", "differs from the footer at"],
            &|f| {
                put32_be(f, 48 + 4, 0x0100_0000);
                fix_vhd_checksum(f, 0, 512, 64);
            },
        ),
        from_vhd("type.vhd", &["disk type 9 is not fixed"], &|f| {
            edit_vhd_footers(f, n, 60, 9)
        }),
        from_vhd(
            "differencing.vhd",
            &["a differencing VHD", "parent"],
            &|f| edit_vhd_footers(f, n, 60, 4),
        ),
        from_vhd(
            "header-cookie.vhd",
            &["dynamic disk header at 0x200 has no \"cxsparse\" cookie"],
            &|f| f.write_all_at(b"xxxxxxxx", 512).unwrap(),
        ),
        from_vhd(
            "header-checksum.vhd",
            &["dynamic disk header at 0x200", "checksum"],
            &|f| f.write_all_at(&[0x5a], 512 + 40).unwrap(),
        ),
        from_vhd(
            "block-size.vhd",
            &["block size 3000 is not a power of two"],
            &|f| {
                put32_be(f, 512 + 32, 3000);
                fix_vhd_checksum(f, 512, 1024, 36);
            },
        ),
        from_vhd(
            "bat-entries.vhd",
            &["block allocation table has 1 entries"],
            &|f| {
                put32_be(f, 512 + 28, 1);
                fix_vhd_checksum(f, 512, 1024, 36);
            },
        ),
        from_vhd(
            "bat-place.vhd",
            &["VHD block allocation table", "past the end of the file"],
            &|f| {
                put32_be(f, 512 + 16, 1);
                fix_vhd_checksum(f, 512, 1024, 36);
            },
        ),
        from_vhd(
            "bat-entry.vhd",
            &[
                "VHD block 0 (BAT entry sector 0x7fffff00)",
                "past the end of the file",
            ],
            &|f| put32_be(f, bat, 0x7fff_ff00),
        ),
        from_fixed(
            "fixed-size.vhd",
            &["fixed VHD's disk of", "does not fit before its footer"],
            &|f| {
                let at = len(&fixed) - 512;
                put32_be(f, at + 48, 1);
                fix_vhd_checksum(f, at, 512, 64);
            },
        ),
        from_fixed("fixed-differencing.vhd", &["a differencing VHD"], &|f| {
            edit_vhd_footers(f, len(&fixed), 60, 4)
        }),
    ];
    assert_errors(&cases);
}

/// Sets the CRC-32C of the `len` bytes at `at` of a VHDX (a header or a region table: the
/// checksum is their second field).
fn fix_vhdx_checksum(f: &File, at: u64, len: usize) {
    let mut bytes = vec![0u8; len];
    f.read_exact_at(&mut bytes, at).unwrap();
    bytes[4..8].fill(0);
    f.write_all_at(&crc32c::crc32c(&bytes).to_le_bytes(), at + 4)
        .unwrap();
}

/// VHDX's header and region table copies (MS-VHDX 2.1).
const VHDX_HEADERS: [u64; 2] = [0x10000, 0x20000];
const VHDX_REGION_TABLES: [u64; 2] = [0x30000, 0x40000];

/// Applies `edit` to both VHDX headers and fixes their checksums.
fn edit_vhdx_headers(f: &File, edit: &dyn Fn(&File, u64)) {
    for at in VHDX_HEADERS {
        edit(f, at);
        fix_vhdx_checksum(f, at, 4096);
    }
}

/// Applies `edit` to both VHDX region tables and fixes their checksums.
fn edit_vhdx_region_tables(f: &File, edit: &dyn Fn(&File, u64)) {
    for at in VHDX_REGION_TABLES {
        edit(f, at);
        fix_vhdx_checksum(f, at, 64 << 10);
    }
}

/// (BAT offset, metadata region offset, offset of the entry of each in a region table).
fn vhdx_regions(f: &File) -> (u64, u64, u64, u64) {
    // MS-VHDX 2.2.3.2: 2DC27766-F623-4200-9D64-115E9BFD4A08, 8B7CA206-4790-4B9A-B8FE-...
    let (bat_guid, metadata_guid) = ([0x66, 0x77, 0xc2, 0x2d], [0x06, 0xa2, 0x7c, 0x8b]);
    let (mut bat, mut metadata) = (None, None);
    for i in 0..u64::from(get32_le(f, VHDX_REGION_TABLES[0] + 8)) {
        let entry = 16 + 32 * i;
        let mut guid = [0u8; 4];
        f.read_exact_at(&mut guid, VHDX_REGION_TABLES[0] + entry)
            .unwrap();
        let offset = get64_le(f, VHDX_REGION_TABLES[0] + entry + 16);
        if guid == bat_guid {
            bat = Some((offset, entry));
        } else if guid == metadata_guid {
            metadata = Some((offset, entry));
        }
    }
    let ((bat, bat_entry), (metadata, metadata_entry)) = (bat.unwrap(), metadata.unwrap());
    (bat, metadata, bat_entry, metadata_entry)
}

/// The file offset of the VHDX metadata item whose GUID starts with `id`.
fn vhdx_item(f: &File, id: [u8; 4]) -> u64 {
    let (_, metadata, _, _) = vhdx_regions(f);
    for i in 0..u64::from(get32_le(f, metadata + 8) >> 16) {
        let entry = metadata + 32 + 32 * i;
        let mut guid = [0u8; 4];
        f.read_exact_at(&mut guid, entry).unwrap();
        if guid == id {
            return metadata + u64::from(get32_le(f, entry + 16));
        }
    }
    panic!("no metadata item {id:x?}");
}

/// MS-VHDX 2.6.2: the first bytes of the File Parameters, Virtual Disk Size and Logical
/// Sector Size GUIDs as stored.
const FILE_PARAMETERS: [u8; 4] = [0x37, 0x67, 0xa1, 0xca];
const VIRTUAL_DISK_SIZE: [u8; 4] = [0x24, 0x42, 0xa5, 0x2f];
const LOGICAL_SECTOR_SIZE: [u8; 4] = [0x1d, 0xbf, 0x41, 0x81];

#[test]
fn reads_a_fixed_vhdx_with_every_block_present() {
    let tmp = tempfile::tempdir().unwrap();
    let fixed = tmp.path().join("fixed.vhdx");
    let status = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "vhdx"])
        .args(["-o", "subformat=fixed,block_state_zero=off"])
        .arg(&fixed)
        .arg("20M")
        .status()
        .unwrap();
    assert!(status.success());
    let status = std::process::Command::new("qemu-io")
        .args(["-f", "vhdx", "-c", "write -P 0x5a 3M 100k"])
        .arg(&fixed)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let (size, ranges) = data_ranges(&fixed);
    assert_eq!((size, ranges), (20 * MIB, vec![(0, 20 * MIB)]));
    let reference = tmp.path().join("reference.raw");
    qemu_img::convert(&["-f", "vhdx", "-O", "raw"], &fixed, &reference);
    assert_eq!(reads_as(&fixed, &reference), None);
}

#[test]
fn damaged_vhdx_is_an_error_that_says_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let raw = odd_raw(dir);
    let vhdx = dir.join("good.vhdx");
    qemu_img::convert(&["-O", "vhdx"], &raw, &vhdx);
    let n = len(&vhdx);
    let (bat, metadata, bat_entry, _) = vhdx_regions(&File::open(&vhdx).unwrap());
    let put64 = |f: &File, at: u64, value: u64| f.write_all_at(&value.to_le_bytes(), at).unwrap();
    let from = |name: &str, needles: &'static [&'static str], edit: &dyn Fn(&File)| {
        damaged(dir, &vhdx, name, needles, edit)
    };
    let cases = [
        from(
            "half.vhdx",
            &["past the end of the file", "truncated"],
            &|f| f.set_len(n / 2).unwrap(),
        ),
        from(
            "header-section.vhdx",
            &["VHDX header section truncated", "524288 bytes"],
            &|f| f.set_len(512 << 10).unwrap(),
        ),
        from(
            "headers.vhdx",
            &[
                "no valid VHDX header",
                "0x10000 has checksum",
                "0x20000 has checksum",
            ],
            &|f| {
                for at in VHDX_HEADERS {
                    f.write_all_at(&[0x5a], at + 200).unwrap();
                }
            },
        ),
        from(
            "log.vhdx",
            &["log holds updates not yet applied", "qemu-img check -r all"],
            &|f| edit_vhdx_headers(f, &|f, at| f.write_all_at(&[1; 16], at + 48).unwrap()),
        ),
        from(
            "region-tables.vhdx",
            &[
                "region table at 0x30000",
                "region table at 0x40000",
                "checksum",
            ],
            &|f| {
                for at in VHDX_REGION_TABLES {
                    f.write_all_at(&[0x5a], at + 100).unwrap();
                }
            },
        ),
        from(
            "bat-region.vhdx",
            &[
                "the VHDX BAT region",
                "at 0x10000000000",
                "past the end of the file",
            ],
            &|f| edit_vhdx_region_tables(f, &|f, at| put64(f, at + bat_entry + 16, 1 << 40)),
        ),
        from(
            "region-overlap.vhdx",
            &["the VHDX metadata region", "overlaps the VHDX BAT region"],
            &|f| edit_vhdx_region_tables(f, &|f, at| put64(f, at + bat_entry + 16, metadata)),
        ),
        from(
            "region-required.vhdx",
            &["a region d2l does not know", "marks required"],
            &|f| {
                edit_vhdx_region_tables(f, &|f, at| {
                    put32_le(f, at + 8, 3);
                    f.write_all_at(&[0xee; 16], at + 16 + 64).unwrap();
                    put32_le(f, at + 16 + 64 + 28, 1);
                })
            },
        ),
        from(
            "metadata-signature.vhdx",
            &["metadata table at", "no \"metadata\" signature"],
            &|f| f.write_all_at(b"xxxxxxxx", metadata).unwrap(),
        ),
        from(
            "block-size.vhdx",
            &["block size 3145728 is not a power of two"],
            &|f| put32_le(f, vhdx_item(f, FILE_PARAMETERS), 3 << 20),
        ),
        from(
            "differencing.vhdx",
            &["a differencing VHDX", "parent"],
            &|f| put32_le(f, vhdx_item(f, FILE_PARAMETERS) + 4, 2),
        ),
        from(
            "sector.vhdx",
            &["logical sector size 1000 is neither 512 nor 4096"],
            &|f| put32_le(f, vhdx_item(f, LOGICAL_SECTOR_SIZE), 1000),
        ),
        from("huge.vhdx", &["virtual disk size 1125899906842624"], &|f| {
            put64(f, vhdx_item(f, VIRTUAL_DISK_SIZE), 1 << 50)
        }),
        from(
            "bat-short.vhdx",
            &["BAT region (1048576 bytes) is smaller than the"],
            &|f| put64(f, vhdx_item(f, VIRTUAL_DISK_SIZE), 60 << 40),
        ),
        from(
            "bat-entries.vhdx",
            &[
                "a VHDX block allocation table of",
                "d2l reads up to 16777216",
            ],
            &|f| {
                put32_le(f, vhdx_item(f, FILE_PARAMETERS), 1 << 20);
                put64(f, vhdx_item(f, VIRTUAL_DISK_SIZE), 64 << 40);
            },
        ),
        from(
            "bat-entry.vhdx",
            &["VHDX block 0 (BAT entry 0)", "past the end of the file"],
            &|f| put64(f, bat, (1 << 40) | 6),
        ),
        from(
            "bat-overlap.vhdx",
            &[
                "VHDX block 0 (BAT entry 0)",
                "overlaps the VHDX metadata region",
            ],
            &|f| put64(f, bat, metadata | 6),
        ),
        from(
            "bat-partial.vhdx",
            &["VHDX BAT entry 0 is partially present"],
            &|f| put64(f, bat, 7),
        ),
    ];
    // The file as qemu-img wrote it reads: the edits alone are at fault.
    assert!(read_everything(&vhdx).is_ok());
    assert_errors(&cases);
}

/// The whole virtual disk of `path` as d2l reads it.
fn read_disk(path: &Path) -> Result<Vec<u8>, String> {
    let reader = open(File::open(path).unwrap()).map_err(|e| e.to_string())?;
    let mut bytes = vec![0u8; reader.virtual_size() as usize];
    reader.read_at(&mut bytes, 0).map_err(|e| e.to_string())?;
    // The ranges are walked too: they check the tables that reading did not need.
    reader
        .data_ranges(&mut |_, _| Ok(()))
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

#[test]
fn every_cut_is_an_error_and_no_damage_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A small disk, so that many damaged copies read quickly.
    let raw = dir.join("small.raw");
    let file = new_file(&raw);
    file.set_len(3 * MIB + 1536).unwrap();
    for (seed, offset) in [0, 70_000, MIB - 512, 3 * MIB].into_iter().enumerate() {
        file.write_all_at(&pattern(seed as u64 + 1, 1536), offset)
            .unwrap();
    }
    // qcow2 too: its reader reads through the same checks.
    let qcow2: [(&str, &[&str], &str); 2] = [
        ("qemu.qcow2", &["-O", "qcow2"], "qcow2"),
        ("qemu-compressed.qcow2", &["-O", "qcow2", "-c"], "qcow2"),
    ];
    let mut images = Vec::new();
    for (name, args, _) in QEMU_WRITES.into_iter().chain(qcow2) {
        let path = dir.join(name);
        qemu_img::convert(args, &raw, &path);
        images.push(path);
    }
    let d2l_qcow2 = ("d2l.qcow2", WriteOptions::new(Format::Qcow2, "d2l.qcow2"));
    for (name, options) in d2l_writes().into_iter().chain([d2l_qcow2]) {
        let path = dir.join(name);
        d2l_convert(&raw, &path, &options);
        images.push(path);
    }
    let disk = std::fs::read(&raw).unwrap();
    let copy = dir.join("damaged");
    let mut wrong = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let (mut flips, mut errors) = (0, 0);
    for image in &images {
        let name = image.file_name().unwrap().to_string_lossy();
        let n = len(image);
        // A fixed VHD cut short has lost its footer: what is left is a raw disk.
        if !name.contains("fixed") {
            for eighth in 1..8 {
                std::fs::copy(image, &copy).unwrap();
                let cut = n * eighth / 8;
                File::options()
                    .write(true)
                    .open(&copy)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
                // Either an error saying so, or the cut took only bytes nothing points to
                // (qemu-img leaves unused space at the end): the disk is all there.
                match read_disk(&copy) {
                    Err(e) if e.contains("truncated") && !e.contains('\n') => {}
                    Ok(read) if read[..disk.len()] == disk[..] && is_zero(&read[disk.len()..]) => {}
                    Ok(_) => wrong.push(format!("{name} cut at {cut:#x}: reads another disk")),
                    Err(e) => wrong.push(format!("{name} cut at {cut:#x}: {e:?}")),
                }
            }
        }
        // Bytes changed in the headers (and footers) at either end: an error or a disk, never a
        // panic (overflow checks are on in tests) or an error of several lines.
        for _ in 0..100 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let reach = n.min(1024);
            let at = if x.is_multiple_of(2) {
                (x >> 8) % reach
            } else {
                n - 1 - (x >> 8) % reach
            };
            std::fs::copy(image, &copy).unwrap();
            let f = File::options().write(true).open(&copy).unwrap();
            f.write_all_at(&[(x >> 32) as u8 | 1], at).unwrap();
            flips += 1;
            if let Err(e) = read_everything(&copy) {
                errors += 1;
                if e.contains('\n') {
                    wrong.push(format!("{name} byte {at:#x}: {e:?}"));
                }
            }
        }
    }
    eprintln!("{errors} of {flips} changed bytes were errors");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
