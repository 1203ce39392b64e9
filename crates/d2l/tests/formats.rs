//! Disk image formats from the command line: `d2l build -o linux.vdi` writes the format the
//! name asks for (or `--format`), holding the same disk as the raw build; `d2l convert`
//! goes from any format to any other; bad input and option mistakes are one clear line,
//! exit code 1, nothing left behind. QEMU's tools judge every image.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_clean_failure, d2l, list_dir, stderr};
use d2l_testkit::qemu_img;

/// A disk of 24 MiB holding a few MiB of varied data between holes, as qemu-img's raw
/// format sees it.
fn synthetic_raw(dir: &Path) -> PathBuf {
    let path = dir.join("synthetic.img");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(24 << 20).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for (i, offset) in [0u64, 65536 + 512, 1 << 20, 5 << 20, (23 << 20) + 4096]
        .into_iter()
        .enumerate()
    {
        let bytes: Vec<u8> = (0..(300_000 + i * 100_000))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 13) as u8 * 19
            })
            .collect();
        file.write_all_at(&bytes, offset).unwrap();
    }
    path
}

/// Runs `d2l ARGS`, asserting success.
fn ok(args: &[&str]) -> String {
    let out = d2l(args);
    assert!(out.status.success(), "d2l {args:?}: {}", stderr(&out));
    stderr(&out)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn build_writes_the_format_the_output_names() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("linux.img");
    ok(&["build", &debian.oci, "-o", s(&raw)]);
    let size = qemu_img::info(&raw, Some("raw")).virtual_size;
    assert_eq!(size % (1 << 20), 0, "a raw disk is whole MiB");

    // (output name, extra arguments, QEMU's format, whether qemu-img can check it)
    let cases: [(&str, &[&str], &str, bool); 5] = [
        ("linux.vdi", &[], "vdi", true),
        ("linux.qcow2", &[], "qcow2", true),
        ("linux.disk", &["--format", "vmdk"], "vmdk", true),
        ("linux.vhd", &["--vhd-subformat", "fixed"], "vpc", false),
        ("linux.vhdx", &[], "vhdx", true),
    ];
    for (name, extra, qemu, checkable) in cases {
        let image = tmp.path().join(name);
        let mut args = vec!["build", &debian.oci, "-o", s(&image)];
        args.extend_from_slice(extra);
        let summary = ok(&args);
        assert!(
            summary.contains(&format!("built {}", s(&image))),
            "{summary}"
        );
        let info = qemu_img::info(&image, Some(qemu));
        assert_eq!(
            (info.format.as_str(), info.virtual_size),
            (qemu, size),
            "{name}"
        );
        if checkable {
            qemu_img::assert_check(&image, qemu);
        }
        qemu_img::assert_identical(&raw, "raw", &image, qemu);
        // d2l reads back what it wrote: the VDI into a qcow2, the others into raw.
        if name == "linux.vdi" {
            let qcow2 = tmp.path().join("linux.qcow2");
            let summary = ok(&["convert", s(&image), s(&qcow2)]);
            assert!(summary.contains("(vdi, "), "{summary}");
            qemu_img::assert_check(&qcow2, "qcow2");
            qemu_img::assert_identical(&image, "vdi", &qcow2, "qcow2");
            qemu_img::assert_identical(&raw, "raw", &qcow2, "qcow2");
            std::fs::remove_file(&qcow2).unwrap();
        } else {
            let back = tmp.path().join("back.img");
            ok(&["convert", s(&image), s(&back)]);
            qemu_img::assert_identical(&raw, "raw", &back, "raw");
            std::fs::remove_file(&back).unwrap();
        }
        let listing = list_dir(tmp.path());
        assert!(
            listing.iter().all(|n| !n.ends_with(".partial")),
            "no scratch or temporary file left: {listing:?}"
        );
        std::fs::remove_file(&image).unwrap();
    }
    // Azure's fixed VHD: the disk in whole MiB, then a 512-byte footer.
    // (Checked above through qemu-img; here the size rule itself.)
    let fixed = tmp.path().join("azure.vhd");
    ok(&["convert", s(&raw), s(&fixed), "--vhd-subformat", "fixed"]);
    assert_eq!(std::fs::metadata(&fixed).unwrap().len(), size + 512);

    // A bare filesystem in a format: qcow2 holding the ext4 --table none writes raw.
    let bare = tmp.path().join("rootfs.qcow2");
    ok(&["build", &debian.oci, "-o", s(&bare), "--table", "none"]);
    let bare_raw = tmp.path().join("rootfs.ext4");
    ok(&["build", &debian.oci, "-o", s(&bare_raw), "--table", "none"]);
    qemu_img::assert_check(&bare, "qcow2");
    qemu_img::assert_identical(&bare_raw, "raw", &bare, "qcow2");
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(&bare_raw)
        .output()
        .expect("e2fsck");
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

#[test]
fn convert_goes_between_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = synthetic_raw(tmp.path());
    let size = 24 << 20;
    // raw -> compressed qcow2 -> every format -> raw; qemu-img's qcow2 -> raw.
    let compressed = tmp.path().join("small.qcow2");
    let summary = ok(&["convert", s(&raw), s(&compressed), "--compress"]);
    assert!(summary.contains("qcow2 (compressed)"), "{summary}");
    qemu_img::assert_check(&compressed, "qcow2");
    qemu_img::assert_identical(&raw, "raw", &compressed, "qcow2");
    let targets: [(&str, &[&str], &str); 7] = [
        ("out.img", &[], "raw"),
        ("out.vdi", &[], "vdi"),
        ("out.vmdk", &[], "vmdk"),
        ("stream.vmdk", &["--vmdk-subformat", "stream"], "vmdk"),
        ("out.vhd", &[], "vpc"),
        ("out.vhdx", &[], "vhdx"),
        ("out.bin", &["--format", "qcow2"], "qcow2"),
    ];
    for (name, extra, qemu) in targets {
        let out = tmp.path().join(name);
        let mut args = vec!["convert", s(&compressed), s(&out)];
        args.extend_from_slice(extra);
        ok(&args);
        let info = qemu_img::info(&out, Some(qemu));
        assert_eq!(
            (info.format.as_str(), info.virtual_size),
            (qemu, size),
            "{name}"
        );
        qemu_img::assert_identical(&raw, "raw", &out, qemu);
        // And back to raw, read by d2l.
        let back = tmp.path().join(format!("{name}.back.img"));
        ok(&["convert", s(&out), s(&back)]);
        qemu_img::assert_identical(&raw, "raw", &back, "raw");
    }
    let by_qemu = tmp.path().join("qemu.qcow2");
    qemu_img::convert(&["-O", "qcow2"], &raw, &by_qemu);
    let back = tmp.path().join("back.img");
    ok(&["convert", s(&by_qemu), s(&back)]);
    qemu_img::assert_identical(&raw, "raw", &back, "raw");
    // The same input converts to the same bytes.
    for (format, earlier) in [("vdi", "out.vdi"), ("vhdx", "out.vhdx")] {
        let again = tmp.path().join("again.bin");
        ok(&["convert", s(&compressed), s(&again), "--format", format]);
        assert!(
            std::fs::read(&again).unwrap() == std::fs::read(tmp.path().join(earlier)).unwrap(),
            "{format}: another file"
        );
        std::fs::remove_file(&again).unwrap();
    }
}

/// An output directory holding one unrelated file, and what it lists.
fn out_dir(tmp: &Path) -> (PathBuf, Vec<String>) {
    let dir = tmp.join("out");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), b"unrelated").unwrap();
    let before = list_dir(&dir);
    (dir, before)
}

#[test]
fn bad_input_is_one_line_naming_the_file_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = synthetic_raw(tmp.path());
    let qcow2 = tmp.path().join("good.qcow2");
    qemu_img::convert(&["-O", "qcow2"], &raw, &qcow2);
    let (dir, before) = out_dir(tmp.path());
    let out = |name: &str| dir.join(name);

    let truncated = tmp.path().join("truncated.qcow2");
    let bytes = std::fs::read(&qcow2).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let run = d2l(&["convert", s(&truncated), s(&out("x.vdi"))]);
    assert_clean_failure(&run, &dir, &before, &[s(&truncated), "truncated"]);

    let corrupt = tmp.path().join("corrupt.qcow2");
    let mut bytes = bytes.clone();
    bytes[23] = 40; // cluster_bits
    std::fs::write(&corrupt, &bytes).unwrap();
    let run = d2l(&["convert", s(&corrupt), s(&out("x.img"))]);
    assert_clean_failure(&run, &dir, &before, &[s(&corrupt), "cluster_bits 40"]);

    let vhd = tmp.path().join("in.vhd");
    qemu_img::convert(&["-O", "vpc", "-o", "force_size=on"], &raw, &vhd);
    let truncated_vhd = tmp.path().join("truncated.vhd");
    let bytes = std::fs::read(&vhd).unwrap();
    std::fs::write(&truncated_vhd, &bytes[..bytes.len() / 2]).unwrap();
    let run = d2l(&["convert", s(&truncated_vhd), s(&out("x.qcow2"))]);
    assert_clean_failure(
        &run,
        &dir,
        &before,
        &[s(&truncated_vhd), "VHD footer is missing", "truncated"],
    );

    let vhdx = tmp.path().join("in.vhdx");
    qemu_img::convert(&["-O", "vhdx"], &raw, &vhdx);
    let truncated_vhdx = tmp.path().join("truncated.vhdx");
    let bytes = std::fs::read(&vhdx).unwrap();
    std::fs::write(&truncated_vhdx, &bytes[..bytes.len() / 2]).unwrap();
    let run = d2l(&["convert", s(&truncated_vhdx), s(&out("x.qcow2"))]);
    assert_clean_failure(
        &run,
        &dir,
        &before,
        &[s(&truncated_vhdx), "VHDX block", "truncated"],
    );

    let missing = tmp.path().join("missing.qcow2");
    let run = d2l(&["convert", s(&missing), s(&out("x.qcow2"))]);
    assert_clean_failure(&run, &dir, &before, &[s(&missing), "cannot open"]);

    let run = d2l(&["convert", s(&raw), s(&out("x.vdi")), "--compress"]);
    assert_clean_failure(&run, &dir, &before, &["--compress is for qcow2"]);
    let run = d2l(&[
        "convert",
        s(&raw),
        s(&out("x.qcow2")),
        "--vhd-subformat",
        "fixed",
    ]);
    assert_clean_failure(&run, &dir, &before, &["--vhd-subformat is for vhd"]);
    let run = d2l(&["convert", s(&raw), s(&out("x.vmdk")), "--compress"]);
    assert_clean_failure(&run, &dir, &before, &["--vmdk-subformat stream"]);
}
