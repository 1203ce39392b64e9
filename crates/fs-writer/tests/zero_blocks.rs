//! Whole blocks of zeros in file data become holes: a layer holding a large zero-filled file
//! costs no space, through the `DiskStore` (`d2l build`) as through a spill file, and reads
//! back byte-exact. Checked with e2fsck and debugfs.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use d2l_fs_writer::{write_ext4, write_ext4_placed, DiskStore, Ext4Options};
use d2l_layer_apply::{Applier, ApplyOptions};
use d2l_rootfs::{ContentStore, Rootfs, SpillFile};
use d2l_testkit::layer::{pattern, LayerTar};

const GIB: u64 = 1 << 30;

/// A layer with one regular file `name` of `size` zero bytes, streamed (never in memory).
fn zero_file_layer(name: &str, size: u64) -> impl Read {
    let mut header = LayerTar::new();
    header.raw(header.header_for(name.as_bytes(), b'0', 0o644, size), &[]);
    std::io::Cursor::new(header.unterminated())
        .chain(std::io::repeat(0).take(size))
        .chain(std::io::Cursor::new(vec![
            0u8;
            1024 + (512 - size % 512) as usize
                % 512
        ]))
}

fn apply<S: ContentStore>(store: S, layer: impl Read) -> Rootfs<S> {
    let mut applier = Applier::new(store, ApplyOptions::default());
    applier.apply_layer(1, layer).expect("apply the layer");
    applier.finish().expect("finish the rootfs")
}

fn open_rw(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap()
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

/// `path`'s size and the blocks its inode uses, as debugfs reports them.
fn size_and_blocks(image: &Path, path: &str) -> (u64, u64) {
    let stat = debugfs(image, &format!("stat {path}"));
    let field = |name: &str| -> u64 {
        let at = stat
            .find(name)
            .unwrap_or_else(|| panic!("{name} in {stat}"))
            + name.len();
        stat[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // "Size: N" and "Blockcount: N" (512-byte units).
    (field("Size: "), field("Blockcount: ") * 512)
}

/// Streams `path` out of the image through debugfs's `cat` and checks every byte is zero.
fn assert_reads_zeros(image: &Path, path: &str, size: u64) {
    let mut child = Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(image)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("debugfs (e2fsprogs)");
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(
            buf[..n].iter().all(|&b| b == 0),
            "non-zero byte near {total}"
        );
        total += n as u64;
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(total, size);
}

fn dump(image: &Path, path: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dumped");
    debugfs(image, &format!("dump {path} {}", out.display()));
    std::fs::read(out).unwrap()
}

/// Regression: a 1 GiB zero-filled file used to allocate 1 GiB in the filesystem and on
/// the disk.
#[test]
fn a_gib_of_zeros_through_the_disk_store_allocates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("fs.ext4");
    let disk = open_rw(&image);
    let options = Ext4Options::deterministic(&[9; 32]);
    let (tree, store) = apply(
        DiskStore::new(&disk, options.offset),
        zero_file_layer("zeros", GIB),
    )
    .into_parts();
    let placed = store.finish().unwrap();
    let report = write_ext4_placed(&tree, &placed, &disk, &options).unwrap();
    drop(disk);

    d2l_testkit::debugfs::assert_fsck_clean(&image);
    assert_eq!(size_and_blocks(&image, "/zeros"), (GIB, 0));
    assert_reads_zeros(&image, "/zeros", GIB);
    // The filesystem is sized for metadata, not for the zeros; the image file is sparse.
    assert!(report.size_bytes < GIB, "{} bytes", report.size_bytes);
    let allocated = std::fs::metadata(&image).unwrap().blocks() * 512;
    assert!(allocated < 64 << 20, "{allocated} bytes allocated");
}

#[test]
fn a_gib_of_zeros_through_a_spill_file_allocates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("fs.ext4");
    let (tree, spill) =
        apply(SpillFile::new().unwrap(), zero_file_layer("zeros", GIB)).into_parts();
    let data = spill.into_reader().unwrap();
    let out = std::fs::File::create(&image).unwrap();
    let report = write_ext4(&tree, &data, &out, &Ext4Options::deterministic(&[9; 32])).unwrap();
    drop(out);

    d2l_testkit::debugfs::assert_fsck_clean(&image);
    assert_eq!(size_and_blocks(&image, "/zeros"), (GIB, 0));
    assert_reads_zeros(&image, "/zeros", GIB);
    assert!(report.size_bytes < GIB, "{} bytes", report.size_bytes);
}

/// Data blocks, whole zero blocks, a zero block split across a run's start, and a partial
/// zero tail: only the whole zero blocks become holes, and every byte reads back.
fn mixed_content() -> Vec<u8> {
    const BS: usize = 4096;
    let mut content = pattern(0, 3 * BS as u64);
    content.extend(vec![0u8; 5 * BS]); // blocks 3..8: holes
    content.extend(pattern(0, 100)); // block 8: 100 bytes of data, then zeros
    content.extend(vec![0u8; 2 * BS - 100]); // block 9: a hole
    content.extend(pattern(7, BS as u64)); // block 10
    content.extend(vec![0u8; 1000]); // block 11: a partial block of zeros, written
    content
}

/// Blocks `mixed` uses: 0..3, 8, 10 and 11; 3..8 and 9 are holes.
const MIXED_DATA_BLOCKS: u64 = 3 + 1 + 1 + 1;

fn layers_with_mixed_files() -> Vec<u8> {
    let mut layer = LayerTar::new();
    layer
        .file("mixed", &mixed_content())
        .file("small-zeros", &[0u8; 10])
        .file("block-of-zeros", &[0u8; 4096])
        .file("data", b"data\n");
    layer.finish()
}

fn check_mixed(image: &Path) {
    d2l_testkit::debugfs::assert_fsck_clean(image);
    assert_eq!(dump(image, "/mixed"), mixed_content());
    assert_eq!(
        size_and_blocks(image, "/mixed"),
        (mixed_content().len() as u64, MIXED_DATA_BLOCKS * 4096)
    );
    assert_eq!(dump(image, "/small-zeros"), [0u8; 10]);
    assert_eq!(dump(image, "/block-of-zeros"), [0u8; 4096]);
    assert_eq!(size_and_blocks(image, "/block-of-zeros"), (4096, 0));
    assert_eq!(dump(image, "/data"), b"data\n");
}

#[test]
fn data_and_zero_blocks_read_back_exactly_through_the_disk_store() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("fs.ext4");
    let disk = open_rw(&image);
    let options = Ext4Options::deterministic(&[3; 32]);
    let layer = layers_with_mixed_files();
    let (tree, store) = apply(DiskStore::new(&disk, options.offset), &layer[..]).into_parts();
    let placed = store.finish().unwrap();
    write_ext4_placed(&tree, &placed, &disk, &options).unwrap();
    drop(disk);
    check_mixed(&image);
}

#[test]
fn data_and_zero_blocks_read_back_exactly_through_a_spill_file() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("fs.ext4");
    let layer = layers_with_mixed_files();
    let (tree, spill) = apply(SpillFile::new().unwrap(), &layer[..]).into_parts();
    let data = spill.into_reader().unwrap();
    let out = std::fs::File::create(&image).unwrap();
    write_ext4(&tree, &data, &out, &Ext4Options::deterministic(&[3; 32])).unwrap();
    drop(out);
    check_mixed(&image);
}

/// A file the boot loader reads by sector number keeps every block, zeros included.
#[test]
fn contiguous_files_keep_their_zero_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("fs.ext4");
    let disk = open_rw(&image);
    let mut options = Ext4Options::deterministic(&[4; 32]);
    options.contiguous = vec![b"mixed".to_vec()];
    let layer = layers_with_mixed_files();
    let (tree, store) = apply(DiskStore::new(&disk, options.offset), &layer[..]).into_parts();
    let placed = store.finish().unwrap();
    let report = write_ext4_placed(&tree, &placed, &disk, &options).unwrap();
    drop(disk);
    d2l_testkit::debugfs::assert_fsck_clean(&image);
    assert_eq!(dump(&image, "/mixed"), mixed_content());
    let blocks = mixed_content().len().div_ceil(4096) as u32;
    assert_eq!(report.contiguous_files[0].blocks, blocks);
    assert_eq!(
        size_and_blocks(&image, "/mixed").1,
        u64::from(blocks) * 4096
    );
}
