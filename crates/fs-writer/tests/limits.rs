//! Limits of ext4 that d2l enforces, each at the limit and one past it: a typed error naming
//! the path, never a wrapped number or a panic.

use std::path::Path;
use std::process::Command;

use d2l_fs_writer::{
    write_ext4_placed, DiskStore, Error, Ext4Options, MAX_DEVICE_MAJOR, MAX_DEVICE_MINOR,
    MAX_FILE_SIZE, MAX_HARD_LINKS, MAX_SYMLINK_TARGET,
};
use d2l_testkit::layer::{pattern, LayerTar};

/// A layer with `d/huge`, a PAX 0.1 sparse file of `size` bytes whose only data is its last
/// 4 KiB.
fn huge_sparse_layer(size: u64) -> Vec<u8> {
    let map = format!("{},4096", size - 4096);
    let mut layer = LayerTar::new();
    layer.pax(&[
        ("GNU.sparse.size", size.to_string().as_bytes()),
        ("GNU.sparse.map", map.as_bytes()),
    ]);
    layer.file("d/huge", &pattern(size - 4096, 4096));
    layer.finish()
}

fn build(image: &Path, layer: &[u8]) -> d2l_fs_writer::Result<()> {
    let disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(image)
        .unwrap();
    let options = Ext4Options::deterministic(&[2; 32]);
    let (tree, store) =
        d2l_testkit::apply::layers(DiskStore::new(&disk, options.offset), &[layer]).into_parts();
    let placed = store.finish().unwrap();
    write_ext4_placed(&tree, &placed, &disk, &options).map(|_| ())
}

#[test]
fn the_largest_file_ext4_holds_is_written() {
    assert_eq!(MAX_FILE_SIZE, (1 << 44) - 4096, "16 TiB - 4 KiB");
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("fs.ext4");
    build(&image, &huge_sparse_layer(MAX_FILE_SIZE)).unwrap();
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(&image)
        .output()
        .expect("e2fsck (e2fsprogs)");
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let stat = Command::new("debugfs")
        .args(["-R", "stat /d/huge"])
        .arg(&image)
        .output()
        .unwrap();
    let stat = String::from_utf8_lossy(&stat.stdout);
    assert!(stat.contains(&format!("Size: {MAX_FILE_SIZE}")), "{stat}");
    // The one data block sits at the last logical block number ext4 has.
    assert!(stat.contains("(4294967294):"), "{stat}");
}

/// Regression: a sparse entry past ext4's limit used to wrap its block numbers to 32 bits.
#[test]
fn a_file_past_the_limit_is_refused_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("fs.ext4");
    let size = MAX_FILE_SIZE + 4096;
    match build(&image, &huge_sparse_layer(size)) {
        Err(Error::FileTooLarge { path, size: s }) => {
            assert_eq!(path, "d/huge");
            assert_eq!(s, size);
        }
        other => panic!("expected FileTooLarge, got {other:?}"),
    }
    let one_byte_past = build(&image, &huge_sparse_layer(MAX_FILE_SIZE + 1)).unwrap_err();
    assert!(
        one_byte_past.to_string().starts_with("d/huge: file of"),
        "{one_byte_past}"
    );
}

/// Builds a layer and returns the writer's error, if any (each limit's error names the path).
fn build_layer(layer: &LayerTar) -> d2l_fs_writer::Result<()> {
    let tmp = tempfile::tempdir().unwrap();
    build(&tmp.path().join("fs.ext4"), &layer.finish())
}

fn assert_refused(result: d2l_fs_writer::Result<()>, path: &str) {
    match result {
        Err(Error::Unsupported { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected {path} to be refused, got {other:?}"),
    }
}

#[test]
fn symlink_targets_at_and_past_the_limit() {
    let at = "t".repeat(MAX_SYMLINK_TARGET);
    let past = "t".repeat(MAX_SYMLINK_TARGET + 1);
    build_layer(LayerTar::new().symlink("link", &at)).unwrap();
    // Layer application refuses such a target itself; the tree API does not.
    let mut rootfs = d2l_rootfs::Rootfs::new(
        d2l_rootfs::SpillFile::new().unwrap(),
        d2l_rootfs::Timestamp::default(),
    );
    let id = rootfs.tree_mut().alloc(
        d2l_rootfs::InodeKind::Symlink(past.as_bytes().into()),
        d2l_rootfs::Metadata::default(),
    );
    rootfs.link(d2l_rootfs::ROOT, b"link", id, 1).unwrap();
    let (tree, spill) = rootfs.into_parts();
    let out = tempfile::tempfile().unwrap();
    let written = d2l_fs_writer::write_ext4(
        &tree,
        &spill.into_reader().unwrap(),
        &out,
        &Ext4Options::deterministic(&[2; 32]),
    );
    assert_refused(written.map(|_| ()), "link");
}

#[test]
fn device_numbers_at_and_past_the_limit() {
    build_layer(LayerTar::new().device("dev/max", false, MAX_DEVICE_MAJOR, MAX_DEVICE_MINOR))
        .unwrap();
    assert_refused(
        build_layer(LayerTar::new().device("dev/major", true, MAX_DEVICE_MAJOR + 1, 0)),
        "dev/major",
    );
    assert_refused(
        build_layer(LayerTar::new().device("dev/minor", false, 1, MAX_DEVICE_MINOR + 1)),
        "dev/minor",
    );
}

#[test]
fn hard_links_at_and_past_the_limit() {
    let mut at = LayerTar::new();
    at.file("f", b"linked\n");
    for i in 1..MAX_HARD_LINKS {
        at.hardlink(&format!("l{i}"), "f");
    }
    build_layer(&at).unwrap();
    at.hardlink("one-more", "f");
    assert_refused(build_layer(&at), "f");
}
