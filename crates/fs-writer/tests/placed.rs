//! File data written once: a `DiskStore` puts it on the disk while layers are applied, and
//! the filesystem is built around it. Checked with e2fsck and read back with debugfs.

use std::path::Path;
use std::process::Command;

use d2l_fs_writer::{write_ext4_placed, DiskStore, Ext4Options, Ext4Report};
use d2l_rootfs::Tree;
use d2l_testkit::layer::{pattern, LayerTar};

/// Applies `layers` with a `DiskStore` on `image` and writes the filesystem there.
fn build(image: &Path, layers: &[Vec<u8>], options: &Ext4Options) -> (Tree, Ext4Report) {
    // Read and write: files that cannot keep their blocks are copied within the disk.
    let disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(image)
        .unwrap();
    let tars: Vec<&[u8]> = layers.iter().map(|l| &l[..]).collect();
    let (tree, store) =
        d2l_testkit::apply::layers(DiskStore::new(&disk, options.offset), &tars).into_parts();
    let placed = store.finish().unwrap();
    let report = write_ext4_placed(&tree, &placed, &disk, options).unwrap();
    (tree, report)
}

fn e2fsck_clean(image: &Path) {
    let out = Command::new("e2fsck")
        .args(["-fn"])
        .arg(image)
        .output()
        .expect("e2fsck (e2fsprogs)");
    assert!(
        out.status.success(),
        "e2fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn debugfs(image: &Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", request])
        .arg(image)
        .output()
        .expect("debugfs (e2fsprogs)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn dump(image: &Path, path: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dumped");
    debugfs(image, &format!("dump {path} {}", out.display()));
    std::fs::read(out).unwrap()
}

/// Physical blocks of a file, as debugfs lists them.
fn blocks(image: &Path, path: &str) -> Vec<u32> {
    debugfs(image, &format!("blocks {path}"))
        .split_whitespace()
        .map(|b| b.parse().unwrap())
        .collect()
}

#[test]
fn data_across_backup_areas_and_deleted_data_leave_a_clean_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    // 150 MiB crosses from group 0 into group 1 (which has a superblock copy) and group 2.
    let big = pattern(0, 150 << 20);
    let secret = vec![0x5au8; 3 << 20];
    let mut lower = LayerTar::new();
    lower
        .file("secret", &secret)
        .file("big", &big)
        .file("small", b"small\n");
    let mut upper = LayerTar::new();
    upper.file(".wh.secret", b"").file("after", b"after\n");
    let image = tmp.path().join("fs.ext4");
    let options = Ext4Options::deterministic(&[5; 32]);
    build(&image, &[lower.finish(), upper.finish()], &options);

    e2fsck_clean(&image);
    assert_eq!(dump(&image, "/big"), big);
    assert_eq!(dump(&image, "/small"), b"small\n");
    assert_eq!(dump(&image, "/after"), b"after\n");
    let placed = blocks(&image, "/big");
    // Group 1's first 1025 blocks (its superblock copy and GDT area) hold no file data.
    assert!(placed.iter().all(|&b| !(32768..32768 + 1025).contains(&b)));
    assert!(placed.iter().any(|&b| b > 32768 + 1025));
    // The deleted file's bytes are nowhere in the image.
    let bytes = std::fs::read(&image).unwrap();
    assert!(!bytes.windows(4096).any(|w| w == &secret[..4096]));
}

#[test]
fn runs_sharing_a_block_and_contiguous_files_are_moved_and_stay_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = LayerTar::new();
    // A PAX 0.1 sparse file whose two runs share block 0: it cannot keep the store's blocks.
    layer.pax(&[
        ("GNU.sparse.size", b"8192"),
        ("GNU.sparse.map", b"0,100,1000,100"),
    ]);
    let mut runs = pattern(0, 100);
    runs.extend(pattern(1000, 100));
    layer.file("shared", &runs);
    layer.file("boot/loader", &pattern(0, 70_000));
    let image = tmp.path().join("fs.ext4");
    let mut options = Ext4Options::deterministic(&[6; 32]);
    options.contiguous = vec![b"boot/loader".to_vec()];
    let (_, report) = build(&image, &[layer.finish()], &options);

    e2fsck_clean(&image);
    let shared = dump(&image, "/shared");
    assert_eq!(shared.len(), 8192);
    assert_eq!(shared[..100], pattern(0, 100)[..]);
    assert!(shared[100..1000].iter().all(|&b| b == 0));
    assert_eq!(shared[1000..1100], pattern(1000, 100)[..]);
    assert!(shared[1100..].iter().all(|&b| b == 0));

    let loader = &report.contiguous_files[0];
    let expected: Vec<u32> = (loader.first_block..loader.first_block + loader.blocks).collect();
    assert_eq!(blocks(&image, "/boot/loader"), expected);
    assert_eq!(dump(&image, "/boot/loader"), pattern(0, 70_000));
}

#[test]
fn a_partition_offset_and_an_exact_size_are_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = LayerTar::new();
    layer.file("etc/hostname", b"placed\n");
    let image = tmp.path().join("disk.img");
    let mut options = Ext4Options::deterministic(&[7; 32]);
    options.offset = 1 << 20;
    options.size = d2l_fs_writer::SizeSpec::Exact(64 << 20);
    let (_, report) = build(&image, &[layer.finish()], &options);
    assert_eq!(report.size_bytes, 64 << 20);
    // The filesystem alone, cut out of the disk.
    let disk = std::fs::read(&image).unwrap();
    let fs = tmp.path().join("fs.ext4");
    std::fs::write(&fs, &disk[1 << 20..]).unwrap();
    e2fsck_clean(&fs);
    assert_eq!(dump(&fs, "/etc/hostname"), b"placed\n");
}
