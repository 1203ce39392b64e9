//! Editing a rootfs after its layers: write, replace, remove, read back through symlinks.

use d2l_layer_apply::{Applier, ApplyOptions};
use d2l_rootfs::{Metadata, Rootfs, SpillFile};
use d2l_testkit::layer::LayerTar;

fn rootfs() -> Rootfs<SpillFile> {
    let mut layer = LayerTar::new();
    layer
        .dir("etc")
        .file("etc/shadow", b"root:*:19000:0:99999:7:::\n")
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .file("usr/share/zoneinfo/UTC", b"TZif")
        .file(".dockerenv", b"")
        .symlink("lib", "usr/lib");
    let mut applier = Applier::new(SpillFile::new().unwrap(), ApplyOptions::default());
    applier
        .apply_layer(1, &layer.finish()[..])
        .map_err(|f| format!("{f:?}"))
        .unwrap();
    applier.finish().unwrap()
}

fn file_meta(mode: u16) -> Metadata {
    Metadata {
        mode,
        ..Metadata::default()
    }
}

#[test]
fn write_replace_remove_and_read_back() {
    let mut fs = rootfs();
    assert_eq!(
        fs.read_file(b"etc/shadow", 1 << 20).unwrap().unwrap(),
        b"root:*:19000:0:99999:7:::\n"
    );
    fs.write_file(b"/etc/shadow", file_meta(0o640), b"root:$6$x:1::::::\n")
        .unwrap();
    assert_eq!(
        fs.read_file(b"etc/shadow", 1 << 20).unwrap().unwrap(),
        b"root:$6$x:1::::::\n"
    );
    // Through a symlink in the last component and in a parent.
    assert_eq!(
        fs.read_file(b"etc/localtime", 100).unwrap().unwrap(),
        b"TZif"
    );
    fs.write_file(b"lib/modules/extra.ko", file_meta(0o644), b"ko")
        .unwrap();
    assert!(fs.tree().lookup(b"usr/lib/modules/extra.ko").is_some());
    // New parents are made; an existing directory is kept.
    let boot = fs
        .create_dir_all(b"boot/syslinux", file_meta(0o755))
        .unwrap();
    assert_eq!(
        fs.create_dir_all(b"boot/syslinux", file_meta(0o700))
            .unwrap(),
        boot
    );
    assert!(fs.remove(b".dockerenv").unwrap());
    assert!(!fs.remove(b".dockerenv").unwrap());
    assert!(!fs.remove(b"no/such/file").unwrap());
    assert!(fs.read_file(b"missing", 10).unwrap().is_none());
    assert!(fs.read_file(b"etc/shadow", 3).is_err(), "over the limit");
    let (tree, _) = fs.into_parts();
    assert!(tree.lookup(b".dockerenv").is_none());
    assert_eq!(tree.inode(tree.lookup(b"etc/shadow").unwrap()).mode, 0o640);
}

#[test]
fn edits_stay_inside_the_tree() {
    let mut fs = rootfs();
    fs.write_file(b"../../etc/passwd", file_meta(0o644), b"x")
        .unwrap_err();
    // An absolute symlink pointing "outside" resolves inside the image root.
    fs.write_file(b"escape", file_meta(0o777), b"").unwrap();
    let mut layer = LayerTar::new();
    layer.symlink("out", "/../../../tmp");
    let mut applier = Applier::on(fs, ApplyOptions::default());
    applier
        .apply_layer(2, &layer.finish()[..])
        .map_err(|f| format!("{f:?}"))
        .unwrap();
    let mut fs = applier.finish().unwrap();
    fs.write_file(b"out/file", file_meta(0o644), b"inside")
        .unwrap();
    assert!(fs.tree().lookup(b"tmp/file").is_some());
}
