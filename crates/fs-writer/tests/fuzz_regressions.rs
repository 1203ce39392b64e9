//! Inputs the `ext4_tree` fuzz target (fuzz/fuzz_targets/ext4_tree.rs) found: the writer
//! must refuse a tree it cannot write with an error naming what is wrong, never panic.

use d2l_fs_writer::{write_ext4, Ext4Options};
use d2l_rootfs::{FileData, InodeKind, Metadata, Rootfs, SpillFile, Timestamp, ROOT};

fn write(rootfs: Rootfs<SpillFile>) -> d2l_fs_writer::Result<d2l_fs_writer::Ext4Report> {
    let (tree, store) = rootfs.into_parts();
    let out = tempfile::tempfile().unwrap();
    write_ext4(
        &tree,
        &store.into_reader().unwrap(),
        &out,
        &Ext4Options::deterministic(&[0; 32]),
    )
}

/// A name of 256 bytes reaches the writer through `Rootfs::link` (layer application refuses
/// it, the tree does not): `write_ext4` panicked in `dir.rs` (`check_name`: "directory entry
/// name of 256 bytes (must be 1..=255)") instead of returning an error.
#[test]
fn name_over_255_bytes_is_an_error_not_a_panic() {
    let mut rootfs = Rootfs::new(SpillFile::new().unwrap(), Timestamp::default());
    let meta = Metadata {
        mode: 0o644,
        ..Metadata::default()
    };
    let id = rootfs
        .tree_mut()
        .alloc(InodeKind::File(FileData::default()), meta);
    rootfs.link(ROOT, &[b'n'; 256], id, 1).unwrap();
    let err = write(rootfs).expect_err("a 256-byte name cannot be written");
    assert!(err.to_string().contains("256"), "{err}");
}

/// A symlink whose target holds a NUL byte (a PAX `linkpath` record can carry one; tar's
/// ustar field cannot): `write_ext4` wrote it as it is, and `e2fsck -fn` then reports
/// "Symlink /l (inode #12) is invalid" and "has an incorrect filetype (was 7, should be 0)".
/// Either refuse it with an error naming the path, or write a clean filesystem.
#[test]
fn symlink_target_with_nul_is_an_error_or_clean() {
    let slow = [&[b'x'; 100][..], b"\0tail"].concat();
    for target in [&b"a\0b"[..], &slow] {
        let mut rootfs = Rootfs::new(SpillFile::new().unwrap(), Timestamp::default());
        let meta = Metadata {
            mode: 0o777,
            ..Metadata::default()
        };
        let id = rootfs
            .tree_mut()
            .alloc(InodeKind::Symlink(target.into()), meta);
        rootfs.link(ROOT, b"l", id, 1).unwrap();
        let (tree, store) = rootfs.into_parts();
        let image = tempfile::NamedTempFile::new().unwrap();
        let written = write_ext4(
            &tree,
            &store.into_reader().unwrap(),
            image.as_file(),
            &Ext4Options::deterministic(&[0; 32]),
        );
        if written.is_ok() {
            d2l_testkit::debugfs::assert_fsck_clean(image.path());
        }
    }
}

/// An empty tree in exactly 3 MiB (768 blocks, under the 2048 that jbd2's minimum journal
/// of 1024 blocks needs): no journal was made, yet the superblock said `has_journal` with
/// inode 8, and `e2fsck -fn` reported "Superblock has an invalid journal (inode 8)". A
/// filesystem too small for a journal has none, as mke2fs makes it.
#[test]
fn a_filesystem_too_small_for_a_journal_has_none() {
    let rootfs = Rootfs::new(SpillFile::new().unwrap(), Timestamp::default());
    let (tree, store) = rootfs.into_parts();
    let image = tempfile::NamedTempFile::new().unwrap();
    let options = Ext4Options {
        size: d2l_fs_writer::SizeSpec::Exact(3 << 20),
        ..Ext4Options::deterministic(&[0; 32])
    };
    write_ext4(
        &tree,
        &store.into_reader().unwrap(),
        image.as_file(),
        &options,
    )
    .unwrap();
    d2l_testkit::debugfs::assert_fsck_clean(image.path());
    let header = std::process::Command::new("dumpe2fs")
        .arg("-h")
        .arg(image.path())
        .output()
        .expect("dumpe2fs (e2fsprogs)");
    let header = String::from_utf8_lossy(&header.stdout);
    let features = header
        .lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap_or_else(|| panic!("no features in {header}"));
    assert!(!features.contains("has_journal"), "{features}");
}
