//! The kernel uses it: mounts, writes, and resize2fs grows it.

use crate::prelude::*;

/// Files the kernel test writes: (path in the image, content).
pub(crate) fn kernel_writes() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    // A new directory the kernel must turn into an htree and grow.
    for i in 0..4000 {
        files.push((
            format!("new-dir/a-file-written-by-the-kernel-{i:05}"),
            format!("new {i}\n").into_bytes(),
        ));
    }
    // More names in /usr/bin, an htree d2l wrote: the kernel splits its leaves.
    for i in 0..3000 {
        files.push((
            format!("usr/bin/added-by-the-kernel-{i:05}"),
            format!("bin {i}\n").into_bytes(),
        ));
    }
    files.push(("new-dir/big".into(), pattern(0, 48 << 20)));
    files
}

/// Checks a mounted Debian build against what [`kernel_writes`] and the appends did.
pub(crate) fn check_kernel_changes(root: &Path, appended: &[u8], replaced: &[u8]) {
    for (path, content) in kernel_writes() {
        let got = std::fs::read(root.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(got == content, "{path}: content read back differs");
    }
    assert_eq!(
        std::fs::read_dir(root.join("new-dir")).unwrap().count(),
        4001
    );
    let gpl = std::fs::read(root.join("usr/share/common-licenses/GPL-3")).unwrap();
    assert!(gpl == appended, "appended file differs");
    assert_eq!(std::fs::read(root.join("etc/issue")).unwrap(), replaced);
    assert!(!root.join("usr/share/doc").exists(), "deleted tree is back");
    assert!(!root.join("usr/bin/bash").exists(), "deleted file is back");
    let mut value = [0u8; 64];
    let n = rustix::fs::getxattr(root.join("etc/hostname"), "user.added", &mut value).unwrap();
    assert_eq!(&value[..n], b"by the kernel");
}

#[test]
fn kernel_mounts_writes_and_fsck_accepts_the_result() {
    require_root();
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_ok(&debian.oci, &tmp.path().join("rootfs.ext4"), &[]);
    let usr_bin = debugfs::parse_stat(&debugfs::batch(&image, &["stat /usr/bin".into()])[0]);
    assert!(
        usr_bin.flags & INDEX_FL != 0,
        "d2l wrote /usr/bin as an htree"
    );

    let mnt = tmp.path().join("mnt");
    let mount = Mount::new(&image, &mnt, "rw");
    let root = mount.dir.clone();
    std::fs::create_dir(root.join("new-dir")).unwrap();
    for (path, content) in kernel_writes() {
        std::fs::write(root.join(&path), &content).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    // Append to a file d2l wrote, replace another, delete a tree and a file.
    let gpl_path = root.join("usr/share/common-licenses/GPL-3");
    let mut appended = std::fs::read(&gpl_path).unwrap();
    let extra = pattern(12_345, 300_000);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&gpl_path)
        .unwrap()
        .write_all(&extra)
        .unwrap();
    appended.extend_from_slice(&extra);
    let replaced = b"replaced by the kernel\n".to_vec();
    std::fs::write(root.join("etc/issue"), &replaced).unwrap();
    std::fs::remove_dir_all(root.join("usr/share/doc")).unwrap();
    std::fs::remove_file(root.join("usr/bin/bash")).unwrap();
    rustix::fs::setxattr(
        root.join("etc/hostname"),
        "user.added",
        b"by the kernel",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    check_kernel_changes(&root, &appended, &replaced);
    mount.unmount();

    debugfs::assert_fsck_clean(&image);
    let sb = debugfs::superblock(&image);
    assert_eq!(sb["Filesystem state"], "clean");
    let out = debugfs::batch(&image, &["stat /new-dir".into(), "stat /usr/bin".into()]);
    for (dir, out) in ["new-dir", "usr/bin"].iter().zip(out) {
        let flags = debugfs::parse_stat(&out).flags;
        assert!(
            flags & INDEX_FL != 0,
            "the kernel left /{dir} unindexed: {flags:#x}"
        );
    }
    // What the kernel wrote is on disk, not only in its cache.
    let mount = Mount::new(&image, &mnt, "ro");
    check_kernel_changes(&mount.dir, &appended, &replaced);
    mount.unmount();
}

#[test]
fn resize2fs_doubles_a_build() {
    debugfs::require("resize2fs", "e2fsprogs");
    debugfs::require("truncate", "coreutils");
    debugfs::require("cp", "coreutils");
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_ok(&debian.oci, &tmp.path().join("rootfs.ext4"), &[]);
    let copy = tmp.path().join("copy.ext4");
    let cp = Command::new("cp")
        .arg("--sparse=always")
        .arg(&image)
        .arg(&copy)
        .status()
        .expect("run cp");
    assert!(cp.success());
    let len = std::fs::metadata(&copy).unwrap().len();
    let truncate = Command::new("truncate")
        .arg("-s")
        .arg((2 * len).to_string())
        .arg(&copy)
        .status()
        .expect("run truncate");
    assert!(truncate.success());
    let resize = Command::new("resize2fs")
        .arg(&copy)
        .output()
        .expect("run resize2fs");
    assert!(
        resize.status.success(),
        "resize2fs: {}{}",
        String::from_utf8_lossy(&resize.stdout),
        String::from_utf8_lossy(&resize.stderr)
    );
    debugfs::assert_fsck_clean(&copy);
    let before = debugfs::superblock_number(&debugfs::superblock(&image), "Block count");
    let after = debugfs::superblock_number(&debugfs::superblock(&copy), "Block count");
    assert_eq!(before * BLOCK, len, "the file is the filesystem");
    assert_eq!(after, 2 * before, "resize2fs doubled the block count");
}
