//! Files the boot loader reads by sector number: one contiguous run, no holes, reported back.

use std::process::Command;

use d2l_fs_writer::{write_ext4, Ext4Options};
use d2l_rootfs::SpillFile;
use d2l_testkit::layer::LayerTar;

/// A layer with a sparse file (real GNU tar sparse format) and some ordinary files.
fn sparse_layer(dir: &std::path::Path) -> Vec<u8> {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("boot/syslinux")).unwrap();
    let sparse = src.join("boot/syslinux/ldlinux.sys");
    // 64 KiB of data at the start, a hole, 4 KiB of data at 1 MiB, size 1 MiB + 8 KiB.
    let f = std::fs::File::create(&sparse).unwrap();
    f.set_len((1 << 20) + 8192).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&vec![0xAB; 65536], 0).unwrap();
    f.write_all_at(&vec![0xCD; 4096], 1 << 20).unwrap();
    drop(f);
    let tar = dir.join("layer.tar");
    let status = Command::new("tar")
        .args(["--sparse", "--format=pax", "--owner=0", "--group=0", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg("boot")
        .status()
        .expect("GNU tar");
    assert!(status.success());
    let mut bytes = std::fs::read(&tar).unwrap();
    // Append a few more files after it, as another layer would.
    let mut more = LayerTar::new();
    more.file("etc/hostname", b"d2l\n")
        .file("big", &vec![7u8; 200_000]);
    bytes.truncate(bytes.len() - 1024); // drop the end-of-archive blocks
    bytes.extend(more.finish());
    bytes
}

fn debugfs(image: &std::path::Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", request])
        .arg(image)
        .output()
        .expect("debugfs (e2fsprogs)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn contiguous_file_is_one_run_without_holes() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = sparse_layer(tmp.path());
    let (tree, store) =
        d2l_testkit::apply::layers(SpillFile::new().unwrap(), &[&layer]).into_parts();
    let id = tree.lookup(b"boot/syslinux/ldlinux.sys").unwrap();
    assert!(
        tree.inode(id).as_file().unwrap().is_sparse(),
        "the input really has holes"
    );

    let image = tmp.path().join("fs.ext4");
    let out = std::fs::File::create(&image).unwrap();
    let mut options = Ext4Options::deterministic(&[3; 32]);
    options.contiguous = vec![b"boot/syslinux/ldlinux.sys".to_vec()];
    let report = write_ext4(&tree, &store.into_reader().unwrap(), &out, &options).unwrap();
    drop(out);

    let placed = &report.contiguous_files[0];
    assert_eq!(
        placed.blocks, 258,
        "1 MiB + 8 KiB in 4 KiB blocks, holes included"
    );
    // debugfs lists the physical block of every logical block: all of them, consecutive.
    let blocks: Vec<u32> = debugfs(&image, "blocks /boot/syslinux/ldlinux.sys")
        .split_whitespace()
        .map(|b| b.parse().unwrap())
        .collect();
    let expected: Vec<u32> = (placed.first_block..placed.first_block + placed.blocks).collect();
    assert_eq!(blocks, expected);
    // Contents read back through the filesystem: data where it was, zeros in the hole.
    let dumped = tmp.path().join("dumped");
    debugfs(
        &image,
        &format!("dump /boot/syslinux/ldlinux.sys {}", dumped.display()),
    );
    let content = std::fs::read(&dumped).unwrap();
    assert_eq!(content.len(), (1 << 20) + 8192);
    assert!(content[..65536].iter().all(|&b| b == 0xAB));
    assert!(content[65536..1 << 20].iter().all(|&b| b == 0));
    assert!(content[1 << 20..(1 << 20) + 4096]
        .iter()
        .all(|&b| b == 0xCD));
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&image)
        .output()
        .expect("e2fsck");
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

#[test]
fn contiguous_request_for_a_missing_file_is_an_error() {
    let mut layer = LayerTar::new();
    layer.file("a", b"x");
    let (tree, store) =
        d2l_testkit::apply::layers(SpillFile::new().unwrap(), &[&layer.finish()]).into_parts();
    let tmp = tempfile::tempdir().unwrap();
    let out = std::fs::File::create(tmp.path().join("fs.ext4")).unwrap();
    let mut options = Ext4Options::deterministic(&[3; 32]);
    options.contiguous = vec![b"boot/missing".to_vec()];
    let err = write_ext4(&tree, &store.into_reader().unwrap(), &out, &options).unwrap_err();
    assert!(err.to_string().contains("boot/missing"), "{err}");
}

#[test]
fn filesystem_at_an_offset_leaves_the_bytes_before_it_alone() {
    let mut layer = LayerTar::new();
    layer
        .file("etc/hostname", b"d2l\n")
        .file("big", &vec![5u8; 300_000]);
    let (tree, store) =
        d2l_testkit::apply::layers(SpillFile::new().unwrap(), &[&layer.finish()]).into_parts();
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk.img");
    let out = std::fs::File::create(&disk).unwrap();
    let mut options = Ext4Options::deterministic(&[9; 32]);
    options.offset = 1 << 20;
    let report = write_ext4(&tree, &store.into_reader().unwrap(), &out, &options).unwrap();
    drop(out);
    let bytes = std::fs::read(&disk).unwrap();
    assert_eq!(bytes.len() as u64, (1 << 20) + report.size_bytes);
    assert!(
        bytes[..1 << 20].iter().all(|&b| b == 0),
        "nothing written before the offset"
    );
    let fs = tmp.path().join("fs.ext4");
    std::fs::write(&fs, &bytes[1 << 20..]).unwrap();
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&fs)
        .output()
        .expect("e2fsck");
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    assert_eq!(debugfs(&fs, "cat /etc/hostname"), "d2l\n");
}
