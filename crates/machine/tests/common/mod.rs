//! Trees from crafted layers, and reading back what `prepare` wrote.
#![allow(dead_code)]

use d2l_machine::{prepare, MachineOptions, Network, RootOn};
use d2l_rootfs::{InodeKind, Rootfs, SpillFile};
use d2l_testkit::layer::LayerTar;

pub const UUID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

pub fn rootfs(build: impl FnOnce(&mut LayerTar)) -> Rootfs<SpillFile> {
    let mut layer = LayerTar::new();
    build(&mut layer);
    d2l_testkit::apply::layers(SpillFile::new().unwrap(), &[&layer.finish()])
}

/// Options for one job at a time: no network, no growing.
pub fn options() -> MachineOptions {
    MachineOptions {
        salt: Some("saltstring".to_owned()),
        network: Network::None,
        root_on: RootOn::Filesystem,
        ..MachineOptions::new("box", UUID)
    }
}

/// `prepare`'s changes as lines, and its warnings.
pub fn run(fs: &mut Rootfs<SpillFile>, options: &MachineOptions) -> (Vec<String>, Vec<String>) {
    let prepared = prepare(fs, options).unwrap();
    (
        prepared.changes.iter().map(ToString::to_string).collect(),
        prepared.warnings,
    )
}

pub fn text(fs: &mut Rootfs<SpillFile>, path: &str) -> String {
    let bytes = fs
        .read_file(path.as_bytes(), 1 << 20)
        .unwrap()
        .unwrap_or_else(|| panic!("no file {path}"));
    String::from_utf8(bytes).unwrap()
}

pub fn mode_owner(fs: &Rootfs<SpillFile>, path: &str) -> (u16, u32, u32) {
    let inode = fs.tree().inode(
        fs.tree()
            .lookup(path.as_bytes())
            .unwrap_or_else(|| panic!("no {path}")),
    );
    (inode.mode, inode.uid, inode.gid)
}

/// The target of the symlink `path` (not followed), if it is one.
pub fn link(fs: &Rootfs<SpillFile>, path: &str) -> Option<String> {
    let id = fs.tree().lookup(path.as_bytes())?;
    match &fs.tree().inode(id).kind {
        InodeKind::Symlink(target) => Some(String::from_utf8_lossy(target).into_owned()),
        _ => None,
    }
}

pub fn exists(fs: &Rootfs<SpillFile>, path: &str) -> bool {
    fs.tree().lookup(path.as_bytes()).is_some()
}

/// A Debian-like systemd tree (merged /usr) with `extra` on top.
pub fn systemd(extra: impl FnOnce(&mut LayerTar)) -> Rootfs<SpillFile> {
    rootfs(|l| {
        l.mtime(1_700_000_000)
            .dir("usr/lib/systemd/system")
            .symlink("lib", "usr/lib")
            .symlink("bin", "usr/bin")
            .symlink("sbin", "usr/sbin")
            .file_mode("usr/lib/systemd/systemd", b"", 0o755)
            .file("usr/lib/systemd/system/multi-user.target", b"")
            .file(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/bash\n",
            )
            .file_owned(
                "etc/shadow",
                b"root:*:19000:0:99999:7:::\nbob:!:19000::::::\n",
                0,
                42,
            )
            .file(
                "etc/group",
                b"root:x:0:\nsudo:x:27:\nshadow:x:42:\nbob:x:1000:\n",
            )
            .file_owned(
                "etc/gshadow",
                b"root:*::\nsudo:*::\nshadow:*::\nbob:!::\n",
                0,
                42,
            )
            .file_mode("usr/bin/bash", b"", 0o755);
        extra(l);
    })
}
