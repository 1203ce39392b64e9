//! The crafted image with every entry type.

use crate::prelude::*;

/// A VFS capability (`security.capability`, revision 2, cap_net_raw): binary, with NULs.
pub(crate) const CAPABILITY: &[u8] = &[
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A POSIX ACL in the VFS xattr form tar carries (`u32` version 2, then `{u16 tag, u16
/// perm, u32 id}`): user::rw-, user:1000:r--, group::r--, group:2000:r-x, mask::rw-,
/// other::r--. Entries without a qualifier carry `ACL_UNDEFINED_ID`, as the kernel gives them.
pub(crate) fn acl(extra_user: u32) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, extra_user),
        (0x04, 4, u32::MAX),
        (0x08, 5, 2000),
        (0x10, 6, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// A 200-byte symlink target: too long for the inode, a "slow" symlink.
pub(crate) fn slow_target() -> String {
    let mut t = String::from("../");
    while t.len() < 200 {
        t.push_str("long-component/");
    }
    t.truncate(200);
    t
}

/// A file path of 4095 bytes, the longest PATH_MAX (4096 with its NUL) allows: 16
/// directories of 254 bytes, each followed by '/', and a 15-byte name.
pub(crate) fn long_path() -> String {
    let mut path = String::new();
    for i in 0..16 {
        path.push_str(&format!("d{i:02}{}/", "x".repeat(251)));
    }
    path.push_str("file-at-4095-b.");
    assert_eq!(path.len(), 4095);
    path
}

/// A lower layer with every entry type and an upper layer that deletes, replaces and links.
pub(crate) fn every_type_layers() -> Vec<Vec<u8>> {
    let acl_access = acl(1000);
    let acl_default = acl(1001);
    let mut lower = LayerTar::new();
    lower
        .dir("bin")
        .pax(&[
            ("SCHILY.xattr.security.capability", CAPABILITY),
            ("mtime", b"1700000000.123456789"),
        ])
        .file_mode("bin/ping", b"ELF ping", 0o4755)
        .file_mode("bin/sgid", b"sgid", 0o2755)
        .file_mode("bin/all-bits", b"all", 0o7777)
        .file_mode("bin/none", b"none", 0o000)
        .dir_mode("tmp", 0o1777)
        .symlink("lib", "usr/lib")
        .symlink("slow", &slow_target())
        .symlink("edge-59", &"f".repeat(59))
        .symlink("edge-60", &"s".repeat(60))
        .symlink("dangling", "/nowhere/at/all")
        .dir("usr")
        .dir("usr/lib")
        .file("usr/lib/libc.so", b"libc v1")
        .device("dev/null", false, 1, 3)
        .device("dev/sda", true, 8, 0)
        .device("dev/big-major", false, 300, 5)
        .device("dev/big-minor", true, 8, 70000)
        .device("dev/both-big", false, 4095, 1_048_575)
        .fifo("run/initctl")
        .pax(&[("uid", b"4000000000"), ("gid", b"3000000000")])
        .file("home/huge-ids", b"ids over 2^31")
        .file_owned("home/user/file", b"mine", 100_000, 200_000)
        .pax(&[("mtime", b"-315619200")])
        .file("times/1960", b"before the epoch")
        .pax(&[("mtime", b"4102444800.5")])
        .file("times/2100", b"after 2038")
        .pax(&[("mtime", b"1700000000.000000001")])
        .file("times/one-ns", b"1 ns")
        .pax(&[("mtime", b"1600000000.999999999")])
        .dir("times/dir-ns")
        .pax(&[
            ("SCHILY.xattr.system.posix_acl_access", &acl_access),
            ("SCHILY.xattr.user.comment", b"quote \" backslash \\ done"),
            ("SCHILY.xattr.user.bin", &[0, 1, 2, 0xff, 0, b'\n']),
            ("SCHILY.xattr.trusted.dropped", b"d2l drops trusted.*"),
        ])
        .file_mode("acl/file", b"acl", 0o664)
        .pax(&[
            ("SCHILY.xattr.system.posix_acl_access", &acl_access),
            ("SCHILY.xattr.system.posix_acl_default", &acl_default),
        ])
        .dir_mode("acl/dir", 0o775)
        .file("files/empty", b"")
        .file("files/one-block", &pattern(0, 4096))
        .file("files/multi-block", &pattern(0, 100_001))
        .dir("files/empty-dir")
        .file("files/group-a", b"three names")
        .hardlink("files/group-b", "files/group-a")
        .hardlink("files/group-c", "files/group-a")
        .file("etc/secret", b"TOP-SECRET-LOWER")
        .dir("var/cache/apt")
        .file("var/cache/apt/pkgcache.bin", b"cache");
    let mut upper = LayerTar::new();
    upper
        .whiteout("etc/secret")
        .opaque("var/cache")
        .file("var/cache/new", b"new")
        .file("lib/libm.so", b"libm") // through the symlink: lands in usr/lib
        .file("usr/lib/libc.so", b"libc v2")
        .hardlink("bin/ping6", "bin/ping")
        .file(&format!("deep/{}", "d/".repeat(60)), b"deep");
    vec![lower.finish(), upper.finish()]
}

/// A small image for tests about the filesystem as a whole: a few files, a directory, a
/// symlink, all dated in the past.
pub(crate) fn small_layers() -> Vec<Vec<u8>> {
    let mut layer = LayerTar::new();
    layer
        .dir("etc")
        .file("etc/hostname", b"small\n")
        .file("usr/bin/tool", &pattern(0, 50_000))
        .symlink("bin", "usr/bin");
    vec![layer.finish()]
}
