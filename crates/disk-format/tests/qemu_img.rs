//! Every format d2l writes, judged by QEMU's own tools: `qemu-img check` finds no errors,
//! `qemu-img info` names the format and the exact virtual size, `qemu-img compare` finds the
//! same disk as the raw image. The disk is a real one (the Debian fixture's ext4 behind an
//! MBR, written through each format as `d2l build` writes it: two copy threads, metadata
//! afterwards, the table last); a synthetic one exercises writes in any order from several
//! threads, before the size is known, with discards. The reading side converts images
//! qemu-img made (several qcow2 variants) and refuses damaged ones by name.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{
    d2l_convert, debian_tree, new_file, pattern, read_everything, write_debian_disk, writer,
};
use d2l_disk_format::{Format, VhdSubformat, VirtualDisk, VmdkSubformat, WriteOptions, MIB};
use d2l_testkit::qemu_img;

/// One way of writing an image.
#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    options: WriteOptions,
    /// QEMU's format name.
    qemu: &'static str,
    /// Whether `qemu-img check` can check it (QEMU has no check for VHD).
    checkable: bool,
}

/// Every format and subformat; `size` is the disk size when the case says it is known in
/// advance (as `d2l convert` knows it), else `None` (as `d2l build` writes).
fn cases(size: Option<u64>) -> Vec<Case> {
    let with = |name, format, qemu, checkable, edit: &dyn Fn(&mut WriteOptions)| {
        let mut options = WriteOptions::new(format, name);
        options.identity = d2l_disk_format::identity(name.as_bytes());
        options.timestamp = 1_700_000_000;
        options.max_virtual_size = size;
        edit(&mut options);
        Case {
            name,
            options,
            qemu,
            checkable,
        }
    };
    vec![
        with("disk.qcow2", Format::Qcow2, "qcow2", true, &|_| {}),
        with("compressed.qcow2", Format::Qcow2, "qcow2", true, &|o| {
            o.compress = true
        }),
        with("disk.vdi", Format::Vdi, "vdi", true, &|_| {}),
        with("sparse.vmdk", Format::Vmdk, "vmdk", true, &|_| {}),
        with("stream.vmdk", Format::Vmdk, "vmdk", true, &|o| {
            o.vmdk_subformat = VmdkSubformat::Stream
        }),
        with("dynamic.vhd", Format::Vhd, "vpc", false, &|_| {}),
        with("fixed.vhd", Format::Vhd, "vpc", false, &|o| {
            o.vhd_subformat = VhdSubformat::Fixed
        }),
        with("dynamic.vhdx", Format::Vhdx, "vhdx", true, &|_| {}),
        with("disk.img", Format::Raw, "raw", false, &|_| {}),
    ]
}

/// Checks `image` against the raw `reference` of `size` bytes with qemu-img, and the VHD
/// structures qemu-img cannot check; returns what is wrong, if anything.
fn judge(case: &Case, image: &Path, reference: &Path, size: u64) -> Vec<String> {
    let mut wrong = Vec::new();
    let info = qemu_img::info(image, Some(case.qemu));
    if info.format != case.qemu || info.virtual_size != size {
        wrong.push(format!(
            "{}: qemu-img info says {} of {} bytes, not {} of {size}",
            case.name, info.format, info.virtual_size, case.qemu
        ));
    }
    // QEMU finds the format by itself too (a fixed VHD has its footer only at the end,
    // which QEMU does not probe: it needs -f vpc, as everywhere).
    if case.options.vhd_subformat != VhdSubformat::Fixed {
        let probed = qemu_img::info(image, None);
        if probed.format != case.qemu {
            wrong.push(format!(
                "{}: qemu-img probes it as {}",
                case.name, probed.format
            ));
        }
    }
    if case.options.format == Format::Vmdk {
        let create_type = info.json["format-specific"]["data"]["create-type"].as_str();
        let expected = match case.options.vmdk_subformat {
            VmdkSubformat::Sparse => "monolithicSparse",
            VmdkSubformat::Stream => "streamOptimized",
        };
        if create_type != Some(expected) {
            wrong.push(format!("{}: create type {create_type:?}", case.name));
        }
    }
    if case.checkable {
        let (code, text) = qemu_img::check(image, case.qemu);
        if code != Some(0) || !text.contains("No errors were found on the image.") {
            wrong.push(format!("{}: qemu-img check: {text}", case.name));
        }
        if case.options.compress && !text.contains("% compressed clusters") {
            wrong.push(format!("{}: no compressed clusters: {text}", case.name));
        }
    } else if case.qemu == "vpc" {
        let (_, text) = qemu_img::check(image, "vpc");
        assert!(text.contains("does not support checks"), "{text}");
        if let Err(e) = check_vhd(image, size) {
            wrong.push(format!("{}: {e}", case.name));
        }
    }
    let (same, text) = qemu_img::compare(reference, "raw", image, case.qemu);
    if !same {
        wrong.push(format!("{}: qemu-img compare: {text}", case.name));
    }
    wrong
}

/// What qemu-img cannot check in a VHD, checked from the specification: footer at the end
/// with a valid checksum and the size, copy at the start and a consistent dynamic header
/// and BAT for a dynamic disk, size in whole MiB.
fn check_vhd(path: &Path, size: u64) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let footer = &bytes[bytes.len() - 512..];
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let be64 = |b: &[u8], at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap());
    let sum = |b: &[u8], skip: std::ops::Range<usize>| {
        !b.iter()
            .enumerate()
            .filter(|(i, _)| !skip.contains(i))
            .fold(0u32, |s, (_, &x)| s.wrapping_add(u32::from(x)))
    };
    if &footer[..8] != b"conectix" || be32(footer, 64) != sum(footer, 64..68) {
        return Err("footer cookie or checksum wrong".into());
    }
    if be64(footer, 48) != size || !size.is_multiple_of(MIB) {
        return Err(format!("current size {} (disk {size})", be64(footer, 48)));
    }
    match be32(footer, 60) {
        2 => {
            if bytes.len() as u64 != size + 512 {
                return Err(format!("fixed: file of {} bytes", bytes.len()));
            }
        }
        3 => {
            if bytes[..512] != *footer {
                return Err("the footer copy differs".into());
            }
            let header = &bytes[512..1536];
            if &header[..8] != b"cxsparse" || be32(header, 36) != sum(header, 36..40) {
                return Err("dynamic header cookie or checksum wrong".into());
            }
            let bat = be64(header, 16) as usize;
            let entries = be32(header, 28) as usize;
            if entries as u64 != size.div_ceil(2 * MIB) || be32(header, 32) != 2 << 20 {
                return Err(format!("{entries} BAT entries of {}", be32(header, 32)));
            }
            for i in 0..entries {
                let e = be32(&bytes, bat + 4 * i);
                if e == u32::MAX {
                    continue;
                }
                let block = e as usize * 512;
                if block + 512 + (2 << 20) > bytes.len() - 512
                    || bytes[block..block + 512].iter().any(|&b| b != 0xff)
                {
                    return Err(format!(
                        "BAT entry {i} ({e}) is not a block with its bitmap"
                    ));
                }
            }
        }
        other => return Err(format!("disk type {other}")),
    }
    Ok(())
}

#[test]
fn every_format_holds_the_debian_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let (tree, data) = debian_tree();
    // The reference: a raw disk written the same way.
    let reference = tmp.path().join("reference.raw");
    let size = { write_debian_disk(&new_file(&reference), &tree, &data) };
    assert_eq!(size % MIB, 0);
    let mut wrong = Vec::new();
    for (known, cases) in [(false, cases(None)), (true, cases(Some(size)))] {
        for case in cases {
            // With the size known in advance only the table placement differs.
            if known
                && !matches!(
                    case.options.format,
                    Format::Vdi | Format::Vhd | Format::Vhdx
                )
            {
                continue;
            }
            let path = tmp.path().join(case.name);
            let started = std::time::Instant::now();
            let disk = writer(&path, &case.options);
            assert_eq!(write_debian_disk(disk.as_disk(), &tree, &data), size);
            disk.finish().expect("finish");
            eprintln!(
                "{} (size known: {known}): {:.1}s, {} bytes",
                case.name,
                started.elapsed().as_secs_f64(),
                std::fs::metadata(&path).unwrap().len()
            );
            wrong.extend(judge(&case, &path, &reference, size));
            if let Err(e) = no_larger_than_qemu_img(&case, known, &path, &reference) {
                wrong.push(format!("{} (size known: {known}): {e}", case.name));
            }
            std::fs::remove_file(&path).unwrap();
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Checks that `image` is no longer than what `qemu-img convert` writes from `reference`
/// (uncompressed formats; the benchmark compares the compressed ones).
fn no_larger_than_qemu_img(
    case: &Case,
    size_known: bool,
    image: &Path,
    reference: &Path,
) -> Result<(), String> {
    let args: &[&str] = match (case.options.format, case.options.compress) {
        (_, true) | (Format::Raw, _) => return Ok(()),
        (Format::Vhd, _) if case.options.vhd_subformat == VhdSubformat::Fixed => {
            &["-O", "vpc", "-o", "subformat=fixed,force_size=on"]
        }
        (Format::Vmdk, _) if case.options.vmdk_subformat == VmdkSubformat::Stream => return Ok(()),
        _ => &["-O", case.qemu],
    };
    // A VDI's block map precedes the data, so with the size unknown its room is reserved:
    // 256 KiB, for a 64 GiB disk (vdi.rs).
    let allowance = match (case.options.format, size_known) {
        (Format::Vdi, false) => 256 << 10,
        _ => 0,
    };
    let theirs = image.with_extension("qemu-img");
    qemu_img::convert(args, reference, &theirs);
    let (ours, theirs_len) = (
        std::fs::metadata(image).unwrap().len(),
        std::fs::metadata(&theirs).unwrap().len(),
    );
    std::fs::remove_file(&theirs).unwrap();
    if ours > theirs_len + allowance {
        return Err(format!(
            "{ours} bytes, qemu-img writes {theirs_len} (allowed {allowance} more)"
        ));
    }
    Ok(())
}

/// A write: offset and bytes.
type Write = (u64, Vec<u8>);

/// Writes of many sizes (a 512-byte sector, 4 KiB blocks, a cluster, pieces spanning
/// several clusters and VHD blocks), all zero ones included, in a scrambled order.
fn scrambled_writes() -> Vec<Write> {
    let mut writes: Vec<Write> = Vec::new();
    let mut offset = 0u64;
    let mut seed = 1u64;
    while offset < 40 * MIB {
        let len = match seed % 6 {
            0 => 512,
            1 | 2 => 4096,
            3 => 65536,
            4 => 300_000,
            _ => 3 * MIB as usize,
        };
        let bytes = if seed.is_multiple_of(11) {
            vec![0; len]
        } else {
            pattern(seed, len)
        };
        writes.push((offset, bytes));
        // Gaps: whole untouched clusters and blocks between some writes.
        offset += len as u64
            + if seed.is_multiple_of(4) {
                5 * 65536 + 512
            } else {
                0
            };
        seed += 1;
    }
    // A fixed shuffle: interleave from both ends.
    let mut order = Vec::with_capacity(writes.len());
    let (mut lo, mut hi) = (0, writes.len());
    while lo < hi {
        hi -= 1;
        order.push(writes[hi].clone());
        if lo < hi {
            order.push(writes[lo].clone());
        }
        lo += 1;
    }
    order
}

/// Plays the same history on a disk: writes from three threads before any size is known,
/// the size grown twice, ranges discarded (whole clusters and blocks, and parts), one
/// rewritten; reads back what it wrote.
fn play(disk: &dyn VirtualDisk, writes: &[Write]) {
    std::thread::scope(|s| {
        for part in writes.chunks(writes.len().div_ceil(3)) {
            s.spawn(move || {
                for (offset, bytes) in part {
                    disk.write_at(bytes, *offset).unwrap();
                    let mut back = vec![1u8; bytes.len()];
                    disk.read_at(&mut back, *offset).unwrap();
                    assert!(back == *bytes, "read back at {offset:#x}");
                }
            });
        }
    });
    disk.grow_to(44 * MIB).unwrap();
    disk.discard(4 * MIB, 2 * MIB).unwrap();
    disk.discard(10 * MIB + 1000, 70_000).unwrap();
    disk.write_at(&pattern(99, 8192), 5 * MIB + 512).unwrap();
    disk.grow_to(48 * MIB).unwrap();
    let src = tempfile::tempfile().unwrap();
    src.write_all_at(&pattern(7, 200_000), 0).unwrap();
    disk.copy_from(&src, 100, 150_000, 45 * MIB + 4096).unwrap();
}

#[test]
fn writes_in_any_order_from_threads_before_the_size_is_known() {
    let tmp = tempfile::tempdir().unwrap();
    let writes = scrambled_writes();
    let reference = tmp.path().join("reference.raw");
    play(&new_file(&reference), &writes);
    let size = std::fs::metadata(&reference).unwrap().len();
    assert_eq!(size, 48 * MIB);
    let mut wrong = Vec::new();
    for case in cases(None) {
        let path = tmp.path().join(case.name);
        let disk = writer(&path, &case.options);
        play(disk.as_disk(), &writes);
        disk.finish().expect("finish");
        wrong.extend(judge(&case, &path, &reference, size));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A raw disk of the synthetic history, for the reading tests.
fn synthetic_raw(dir: &Path) -> PathBuf {
    let path = dir.join("synthetic.raw");
    play(&new_file(&path), &scrambled_writes());
    path
}

#[test]
fn reads_qcow2_images_as_qemu_img_writes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = synthetic_raw(tmp.path());
    let variants: [(&str, &[&str]); 6] = [
        ("default", &["-O", "qcow2"]),
        ("compressed", &["-O", "qcow2", "-c"]),
        ("version 2", &["-O", "qcow2", "-o", "compat=0.10"]),
        (
            "4 KiB clusters",
            &["-O", "qcow2", "-o", "cluster_size=4096"],
        ),
        (
            "2 MiB clusters, compressed",
            &["-O", "qcow2", "-c", "-o", "cluster_size=2M"],
        ),
        (
            "zstd",
            &["-O", "qcow2", "-c", "-o", "compression_type=zstd"],
        ),
    ];
    let mut wrong = Vec::new();
    for (name, args) in variants {
        let qcow2 = tmp.path().join("qemu.qcow2");
        let _ = std::fs::remove_file(&qcow2);
        qemu_img::convert(args, &raw, &qcow2);
        for case in cases(None) {
            let out = tmp.path().join(case.name);
            d2l_convert(&qcow2, &out, &case.options);
            let (same, text) = qemu_img::compare(&raw, "raw", &out, case.qemu);
            if !same {
                wrong.push(format!("{name} -> {}: {text}", case.name));
            }
            std::fs::remove_file(&out).unwrap();
        }
    }
    // And d2l's own qcow2, compressed or not, read back.
    for case in cases(None)
        .into_iter()
        .filter(|c| c.options.format == Format::Qcow2)
    {
        let ours = tmp.path().join(case.name);
        d2l_convert(&raw, &ours, &case.options);
        let back = tmp.path().join("back.img");
        d2l_convert(&ours, &back, &WriteOptions::new(Format::Raw, "back.img"));
        qemu_img::assert_identical(&raw, "raw", &back, "raw");
        std::fs::remove_file(&back).unwrap();
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn truncated_or_corrupt_qcow2_is_an_error_that_says_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = synthetic_raw(tmp.path());
    let qemu = tmp.path().join("qemu.qcow2");
    qemu_img::convert(&["-O", "qcow2"], &raw, &qemu);
    let ours = tmp.path().join("ours.qcow2");
    d2l_convert(&raw, &ours, &WriteOptions::new(Format::Qcow2, "ours.qcow2"));
    let len = |p: &Path| std::fs::metadata(p).unwrap().len();
    let damaged = |from: &Path, name: &str, edit: &dyn Fn(&File)| {
        let path = tmp.path().join(name);
        std::fs::copy(from, &path).unwrap();
        edit(&File::options().read(true).write(true).open(&path).unwrap());
        path
    };
    let error = |path: &Path| {
        read_everything(path)
            .err()
            .unwrap_or_else(|| panic!("{}: read without an error", path.display()))
    };
    let cases: Vec<(PathBuf, &[&str])> = vec![
        // QEMU puts the L1 table near the start: the cut goes through the data.
        (
            damaged(&qemu, "qemu-half.qcow2", &|f| {
                f.set_len(len(&qemu) / 2).unwrap()
            }),
            &["past the end of the file", "truncated"],
        ),
        // d2l puts the tables at the end: a cut takes the refcounts, then the L1 table.
        (
            damaged(&ours, "ours-cut.qcow2", &|f| {
                f.set_len(len(&ours) - 70_000).unwrap()
            }),
            &["refcount table", "truncated"],
        ),
        (
            damaged(&ours, "ours-cut-more.qcow2", &|f| {
                let cut = len(&ours) - 3 * 65536 - 1;
                f.set_len(cut).unwrap();
                // The header as if the refcounts were elsewhere, so the L1 table is what
                // the cut is found in.
                f.write_all_at(&65536u64.to_be_bytes(), 48).unwrap();
            }),
            &["L1 table", "past the end of the file", "truncated"],
        ),
        (
            damaged(&qemu, "header-only.qcow2", &|f| f.set_len(50).unwrap()),
            &["qcow2 header truncated", "50 bytes"],
        ),
        (
            damaged(&qemu, "cluster-bits.qcow2", &|f| {
                f.write_all_at(&[0, 0, 0, 40], 20).unwrap()
            }),
            &["cluster_bits 40"],
        ),
        (
            damaged(&qemu, "l1-misaligned.qcow2", &|f| {
                let mut l1 = [0u8; 8];
                f.read_exact_at(&mut l1, 40).unwrap();
                let offset = u64::from_be_bytes(l1);
                let mut entry = [0u8; 8];
                f.read_exact_at(&mut entry, offset).unwrap();
                let bent = u64::from_be_bytes(entry) + 0x1000;
                f.write_all_at(&bent.to_be_bytes(), offset).unwrap();
            }),
            &["L2 table of L1 entry 0", "not cluster aligned"],
        ),
        (
            damaged(&qemu, "l1-small.qcow2", &|f| {
                f.write_all_at(&[0, 0, 0, 0], 36).unwrap()
            }),
            &["L1 table has 0 entries"],
        ),
        (
            damaged(&qemu, "backing.qcow2", &|f| {
                f.write_all_at(&512u64.to_be_bytes(), 8).unwrap()
            }),
            &["backing file"],
        ),
        (
            damaged(&qemu, "version.qcow2", &|f| {
                f.write_all_at(&[0, 0, 0, 9], 4).unwrap()
            }),
            &["qcow2 version 9"],
        ),
    ];
    for (path, needles) in cases {
        let message = error(&path);
        for needle in needles {
            assert!(
                message.contains(needle),
                "{}: {needle:?} not in {message:?}",
                path.display()
            );
        }
        assert!(!message.contains('\n'), "one line: {message:?}");
    }
}
