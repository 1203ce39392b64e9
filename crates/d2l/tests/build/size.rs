//! Size: auto, +SIZE, exact, too small, sparse.

use crate::prelude::*;

/// (block count, free blocks) from dumpe2fs.
pub(crate) fn blocks(image: &Path) -> (u64, u64) {
    let sb = debugfs::superblock(image);
    (
        debugfs::superblock_number(&sb, "Block count"),
        debugfs::superblock_number(&sb, "Free blocks"),
    )
}

#[test]
fn size_auto_leaves_a_quarter_or_512_mib_free() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_ok(
        &debian.oci,
        &tmp.path().join("rootfs.ext4"),
        &["--size", "auto"],
    );
    let (count, free) = blocks(&image);
    // Used blocks bound the content from above (they add metadata), so this asks for at
    // least as much free space as the rule does.
    let used = (count - free) * BLOCK;
    let want = (used / 4).max(512 << 20);
    assert!(
        free * BLOCK >= want,
        "{} MiB free of {} MiB, {} MiB used: want {} MiB",
        (free * BLOCK) >> 20,
        (count * BLOCK) >> 20,
        used >> 20,
        want >> 20
    );
    assert_eq!(std::fs::metadata(&image).unwrap().len(), count * BLOCK);
    // The default is auto.
    let default = build_ok(&debian.oci, &tmp.path().join("default.ext4"), &[]);
    assert_eq!(blocks(&default), (count, free));
}

#[test]
fn size_plus_1g_leaves_1_gib_free() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &small_layers(), Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &["--size", "+1G"]);
    let (count, free) = blocks(&image);
    assert!(
        free * BLOCK >= 1 << 30,
        "{free} free blocks of {count}: less than 1 GiB"
    );
    assert!(
        free * BLOCK < (1 << 30) + (64 << 20),
        "{free} free blocks of {count}: far more than 1 GiB"
    );
    debugfs::assert_fsck_clean(&image);
}

/// The size a "needs at least N bytes" error names.
pub(crate) fn needed_from_error(run: &Output) -> u64 {
    let err = stderr(run);
    err.split("needs at least ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {err:?}"))
}

#[test]
fn size_too_small_fails_cleanly() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rootfs.ext4");
    let run = build(&debian.oci, &out, &["--size", "64M"]);
    assert_clean_failure(&run, tmp.path(), &[], &["needs at least", "67108864"]);
    // The line names the size needed, in bytes, well over the 64 MiB given.
    let needed = needed_from_error(&run);
    assert!(
        needed > 500 << 20,
        "needs {needed} bytes for the Debian fixture?"
    );
}

#[test]
fn size_exact_gives_a_file_of_exactly_that_length() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_ok(
        &debian.oci,
        &tmp.path().join("rootfs.ext4"),
        &["--size", "1600M"],
    );
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 1600 << 20);
    assert_eq!(blocks(&image).0 * BLOCK, 1600 << 20);
    debugfs::assert_fsck_clean(&image);

    // A length that is no whole number of blocks: the file has it, the filesystem the
    // whole blocks within it.
    let source = crafted(tmp.path(), &small_layers(), Compress::Gzip);
    let odd = build_ok(
        &source,
        &tmp.path().join("odd.ext4"),
        &["--size", "100000001"],
    );
    assert_eq!(std::fs::metadata(&odd).unwrap().len(), 100_000_001);
    let count = blocks(&odd).0;
    assert!(
        count * BLOCK <= 100_000_001 && count * BLOCK > 90_000_000,
        "{count} blocks"
    );
    debugfs::assert_fsck_clean(&odd);
}

#[test]
fn output_is_sparse() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &small_layers(), Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &["--size", "4G"]);
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.len(), 4 << 30);
    let allocated = meta.blocks() * 512;
    assert!(
        allocated < meta.len() / 100,
        "{allocated} bytes allocated for a 4 GiB image holding a few KiB"
    );
    debugfs::assert_fsck_clean(&image);
}

/// For every table, a `--size` too small says the size given and the size needed, both in
/// bytes, and the size it names is enough: the disk with a table, the filesystem without.
#[test]
fn size_too_small_names_given_and_needed_for_every_table() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(&tmp.path().join("src"), &small_layers(), Compress::Gzip);
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = work.join("out.img");
    let run = |table: &str, size: &str| {
        d2l(&[
            "build",
            &source,
            "-o",
            out.to_str().unwrap(),
            "--table",
            table,
            "--boot",
            "none",
            "--size",
            size,
        ])
    };
    for (table, what) in [("mbr", "disk"), ("gpt", "disk"), ("none", "filesystem")] {
        for given in ["1000000", "1"] {
            let failed = run(table, given);
            assert_clean_failure(
                &failed,
                &work,
                &[],
                &[
                    &format!("the {what} needs at least"),
                    &format!("{given} bytes"),
                ],
            );
            let needed = needed_from_error(&failed);
            assert!(needed > 1_000_000, "{table}: needs {needed}?");
            let fits = run(table, &needed.to_string());
            assert!(
                fits.status.success(),
                "{table}: the error said {needed} bytes, but that fails: {}",
                stderr(&fits)
            );
            assert_eq!(std::fs::metadata(&out).unwrap().len(), needed, "{table}");
            std::fs::remove_file(&out).unwrap();
        }
    }
}
