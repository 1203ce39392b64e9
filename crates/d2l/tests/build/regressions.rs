//! Regressions, each named after what broke.

use crate::prelude::*;

/// The superblock's times come from the newest mtime in the tree (for reproducibility); a
/// file dated in the future must not date the filesystem in the future, or e2fsck reports
/// "Superblock last write time is in the future" (and `e2fsck -f` rewrites it).
#[test]
fn a_future_mtime_does_not_date_the_superblock_in_the_future() {
    let mut layer = LayerTar::new();
    layer
        .pax(&[("mtime", b"4102444800")])
        .file("from-2100", b"future");
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &[layer.finish()], Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // ext4 superblock (at byte 1024) fields: (name, offset of the low 32 bits, of the high 8).
    let mut sb = [0u8; 1024];
    File::open(&image)
        .unwrap()
        .read_exact_at(&mut sb, 1024)
        .unwrap();
    for (name, lo, hi) in [
        ("s_wtime", 0x30, 0x274),
        ("s_lastcheck", 0x40, 0x277),
        ("s_mkfs_time", 0x108, 0x276),
    ] {
        let t = u64::from(u32::from_le_bytes(sb[lo..lo + 4].try_into().unwrap()))
            | u64::from(sb[hi]) << 32;
        assert!(t <= now, "{name} is {t}, in the future (now {now})");
    }
    debugfs::assert_fsck_clean(&image);
}

/// `--size 64M` of the Debian fixture said "needs at least 818327552 bytes (781 MiB)", but
/// `--size 781M` then failed with "needs at least 840151040 bytes (802 MiB)": the size was
/// computed with the metadata (inode tables, journal) of the too-small size given, not of
/// the size that would fit.
#[test]
fn the_size_a_too_small_error_names_is_enough() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rootfs.ext4");
    let needed = needed_from_error(&build(&debian.oci, &out, &["--size", "64M"]));
    let fits = format!("{}M", needed.div_ceil(1 << 20));
    let run = build(&debian.oci, &out, &["--size", &fits]);
    assert!(
        run.status.success(),
        "the error said {needed} bytes are needed, but --size {fits} fails: {}",
        stderr(&run)
    );
    debugfs::assert_fsck_clean(&out);
}

/// For inputs ext4 cannot hold as they are: either the build fails cleanly (exit 1, one
/// error line, nothing left behind) or the image it writes passes e2fsck. Returns whether
/// the build succeeded.
pub(crate) fn fsck_clean_or_clean_failure(layers: &[Vec<u8>], tmp: &Path) -> (bool, PathBuf) {
    let source = crafted(&tmp.join("src"), layers, Compress::None);
    let work = tmp.join("work");
    std::fs::create_dir(&work).unwrap();
    let image = work.join("rootfs.ext4");
    let run = build(&source, &image, &[]);
    if run.status.success() {
        debugfs::assert_fsck_clean(&image);
        (true, image)
    } else {
        assert_clean_failure(&run, &work, &[], &[]);
        (false, image)
    }
}

/// ext4 holds at most 65000 links to a file (`EXT4_LINK_MAX`): 70001 names of one file were
/// written with `i_links_count` 65000, and e2fsck reported "Inode 12 ref count is 65000,
/// should be 65500" (exit 4).
#[test]
fn a_file_with_more_names_than_ext4_can_count_is_not_written_corrupt() {
    let mut layer = LayerTar::new();
    layer.file("target", b"70001 names");
    for i in 0..70_000 {
        layer.hardlink(&format!("links/n{i:05}"), "target");
    }
    let tmp = tempfile::tempdir().unwrap();
    fsck_clean_or_clean_failure(&[layer.finish()], tmp.path());
}

/// A layer with a 4095-byte symlink target (the longest ext4 holds: one block less its NUL)
/// and one of `len` bytes.
pub(crate) fn long_symlink_layer(len: usize) -> Vec<u8> {
    let mut layer = LayerTar::new();
    layer
        .symlink("ok", &"a".repeat(4095))
        .symlink("too-long", &"b".repeat(len));
    layer.finish()
}

/// A 4096-byte symlink target was written into one block with no room for its NUL, and
/// e2fsck called the symlink invalid ("Symlink /too-long (inode #13) is invalid").
#[test]
fn a_symlink_target_of_4096_bytes_is_not_written_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    fsck_clean_or_clean_failure(&[long_symlink_layer(4096)], tmp.path());
}

/// A 5000-byte symlink target made d2l panic (exit 101, "range end index 5000 out of range
/// for slice of length 4096" in fs-writer's writer.rs, copying the target into one block).
#[test]
fn a_symlink_target_longer_than_a_block_does_not_panic() {
    let tmp = tempfile::tempdir().unwrap();
    fsck_clean_or_clean_failure(&[long_symlink_layer(5000)], tmp.path());
}

/// An image whose `lost+found` is a regular file: d2l added its own `lost+found` directory
/// next to it, and e2fsck found a duplicate entry 'lost+found' in the root.
#[test]
fn an_image_lost_found_that_is_no_directory_is_not_duplicated() {
    let mut layer = LayerTar::new();
    layer
        .file("lost+found", b"not a directory")
        .file("other", b"x");
    let tmp = tempfile::tempdir().unwrap();
    let (built, image) = fsck_clean_or_clean_failure(&[layer.finish()], tmp.path());
    if built {
        let root = debugfs::batch(&image, &["ls -p <2>".into()]);
        let names: Vec<String> = debugfs::parse_ls(&root[0], "")
            .into_iter()
            .map(|e| e.path)
            .collect();
        let lf = names.iter().filter(|n| *n == "lost+found").count();
        assert_eq!(lf, 1, "root entries: {names:?}");
    }
}

/// ext4 times with the extra epoch bits span [-2^31, 2^34 - 2^31 - 1] seconds (1901 to
/// 2446); the kernel clamps times outside. d2l wrapped them modulo 2^34 instead: 1874
/// (-3000000000) was stored as 2419, 2603 (20000000000) as 2059, 2^34 - 1 as -1 (1969).
#[test]
fn mtimes_ext4_cannot_hold_are_clamped_not_wrapped() {
    const MIN: i64 = -(1 << 31);
    const MAX: i64 = (1 << 34) - (1 << 31) - 1;
    let times: [i64; 5] = [-3_000_000_000, MIN, MAX, (1 << 34) - 1, 20_000_000_000];
    let mut layer = LayerTar::new();
    for t in times {
        layer
            .pax(&[("mtime", t.to_string().as_bytes())])
            .file(&format!("t{t}"), b"x");
    }
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &[layer.finish()], Compress::None);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    let cmds: Vec<String> = times.iter().map(|t| format!("stat /t{t}")).collect();
    let got: Vec<i64> = debugfs::batch(&image, &cmds)
        .iter()
        .map(|o| debugfs::parse_stat(o).mtime.0)
        .collect();
    let want: Vec<i64> = times.iter().map(|t| (*t).clamp(MIN, MAX)).collect();
    assert_eq!(got, want, "mtimes of {times:?}");
}

/// Linux device numbers have 12-bit majors and 20-bit minors, and so does ext4's encoding;
/// tar headers hold more. 5000:2000000 was silently written as 904:951680.
#[test]
fn device_numbers_ext4_cannot_hold_are_not_silently_changed() {
    let mut layer = LayerTar::new();
    layer.device("dev/huge", false, 5000, 2_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let (built, image) = fsck_clean_or_clean_failure(&[layer.finish()], tmp.path());
    if built {
        let out = debugfs::batch(&image, &["stat /dev/huge".into()]);
        assert_eq!(
            debugfs::parse_stat(&out[0]).device,
            Some((5000, 2_000_000)),
            "the image holds other device numbers than the layer"
        );
    }
}

/// Xattrs that fit neither the inode nor one block fail the build with one clear line. It
/// used to say its reason twice ("inode 12: xattr user.big does not fit: ...: xattr
/// user.big does not fit: ...").
#[test]
fn xattrs_that_do_not_fit_fail_cleanly() {
    let mut layer = LayerTar::new();
    layer
        .pax(&[("SCHILY.xattr.user.big", &[b'z'; 5000])])
        .file("carrier", b"x");
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(&tmp.path().join("src"), &[layer.finish()], Compress::None);
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let run = build(&source, &work.join("rootfs.ext4"), &[]);
    assert_clean_failure(&run, &work, &[], &["user.big", "does not fit"]);
    let err = stderr(&run);
    assert_eq!(
        err.matches("does not fit").count(),
        1,
        "the reason is given once: {err}"
    );
}

#[test]
fn bootable_disk_too_small_fails_cleanly_naming_the_size_needed() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = work.join("linux.img");
    let run = d2l(&[
        "build",
        &debian.oci,
        "-o",
        out.to_str().unwrap(),
        "--size",
        "64M",
    ]);
    assert_clean_failure(
        &run,
        &work,
        &[],
        &["disk needs at least", "67108864 bytes (64 MiB)"],
    );
    // The size it names works.
    let needed = needed_from_error(&run);
    let ok = d2l(&[
        "build",
        &debian.oci,
        "-o",
        out.to_str().unwrap(),
        "--size",
        &needed.to_string(),
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), needed);
}
