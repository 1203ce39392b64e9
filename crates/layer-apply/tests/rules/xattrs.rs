//! Xattrs.

use crate::helpers::*;

#[test]
fn xattr_schily_binary_value_is_kept_byte_exact() {
    // A file capability (cap_net_bind_service) whose value holds 0x0a, 0x00 and 0xff.
    let cap: &[u8] = b"\x01\x00\x00\x02\x0a\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\n";
    let mut l = LayerTar::new();
    l.pax(&[
        ("SCHILY.xattr.security.capability", cap),
        ("SCHILY.xattr.user.nl", b"line1\nline2\n"),
        ("SCHILY.xattr.user.empty", b""),
        ("SCHILY.xattr.user.eq", b"a=b"),
    ])
    .file("ping", b"elf");
    let a = apply(&[l.finish()]);
    let xattrs = &inode(&a, "ping").xattrs;
    let got: Vec<(&[u8], &[u8])> = xattrs.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    assert_eq!(
        got,
        vec![
            (&b"security.capability"[..], cap),
            (&b"user.empty"[..], &b""[..]),
            (&b"user.eq"[..], &b"a=b"[..]),
            (&b"user.nl"[..], &b"line1\nline2\n"[..]),
        ]
    );
}

#[test]
fn xattr_libarchive_url_encoded_name_base64_value() {
    let mut l = LayerTar::new();
    l.pax(&[
        // "user.a=b%" with a binary value 00 0a ff 3d.
        ("LIBARCHIVE.xattr.user.a%3Db%25", b"AAr/PQ=="),
        // Unpadded base64.
        ("LIBARCHIVE.xattr.user.hello", b"aGVsbG8"),
        (
            "LIBARCHIVE.xattr.security.capability",
            b"AQAAAgAgAAAAAAAAAAAAAAAAAAA=",
        ),
    ])
    .file("f", b"");
    let a = apply(&[l.finish()]);
    let xattrs = &inode(&a, "f").xattrs;
    let got: Vec<(&[u8], &[u8])> = xattrs.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    assert_eq!(
        got,
        vec![
            (
                &b"security.capability"[..],
                &b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"[..]
            ),
            (&b"user.a=b%"[..], &b"\x00\x0a\xff\x3d"[..]),
            (&b"user.hello"[..], &b"hello"[..]),
        ]
    );
}

#[test]
fn xattr_schily_wins_over_libarchive_in_either_order() {
    let mut l = LayerTar::new();
    l.pax(&[
        ("SCHILY.xattr.user.a", b"schily"),
        ("LIBARCHIVE.xattr.user.a", b"bGliYXJjaGl2ZQ=="),
    ])
    .file("schily-first", b"")
    .pax(&[
        ("LIBARCHIVE.xattr.user.a", b"bGliYXJjaGl2ZQ=="),
        ("SCHILY.xattr.user.a", b"schily"),
    ])
    .file("libarchive-first", b"")
    .pax(&[("LIBARCHIVE.xattr.user.a", b"bGliYXJjaGl2ZQ==")])
    .file("libarchive-only", b"");
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "libarchive-first file 0644 0:0 1 \"\" [user.a=schily]",
            "libarchive-only file 0644 0:0 1 \"\" [user.a=libarchive]",
            "schily-first file 0644 0:0 1 \"\" [user.a=schily]",
        ])
    );
}

#[test]
fn xattr_selinux_dropped_by_default_kept_with_keep_selinux() {
    let layer = || {
        let mut l = LayerTar::new();
        l.pax(&[
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:bin_t:s0\0",
            ),
            ("SCHILY.xattr.user.x", b"1"),
        ])
        .file("f", b"")
        .pax(&[("LIBARCHIVE.xattr.security.selinux", b"c3lzdGVtX3U=")])
        .dir("d");
        l.finish()
    };
    let a = apply(&[layer()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "d dir 0755 0:0 1",
            "f file 0644 0:0 1 \"\" [user.x=1]",
        ])
    );
    let kept = apply_with(
        ApplyOptions {
            xattrs: XattrPolicy { keep_selinux: true },
            ..ApplyOptions::default()
        },
        &[layer()],
    );
    assert_eq!(
        listing(&kept),
        lines(&[
            ". dir 0755 0:0",
            "d dir 0755 0:0 1 [security.selinux=system_u]",
            "f file 0644 0:0 1 \"\" [security.selinux=system_u:object_r:bin_t:s0\\x00,user.x=1]",
        ])
    );
}

#[test]
fn xattr_trusted_and_nfs4_acl_are_dropped() {
    let mut l = LayerTar::new();
    l.pax(&[
        ("SCHILY.xattr.trusted.overlay.origin", b"x"),
        ("SCHILY.xattr.trusted.md5", b"y"),
        ("SCHILY.xattr.system.nfs4_acl", b"\x00\x00\x00\x01"),
        ("LIBARCHIVE.xattr.trusted.lib", b"eA=="),
        ("SCHILY.xattr.system.posix_acl_access", b"\x02\x00\x00\x00"),
        ("SCHILY.xattr.user.ok", b"1"),
    ])
    .file("f", b"")
    .pax(&[("SCHILY.xattr.trusted.x", b"1")])
    .dir("d");
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "d dir 0755 0:0 1",
            "f file 0644 0:0 1 \"\" [system.posix_acl_access=\\x02\\x00\\x00\\x00,user.ok=1]",
        ])
    );
}

#[test]
fn xattr_user_dropped_on_symlinks_devices_fifos_kept_on_files_and_dirs() {
    let records: &[(&str, &[u8])] = &[
        ("SCHILY.xattr.user.u", b"1"),
        ("SCHILY.xattr.security.s", b"2"),
    ];
    let mut l = LayerTar::new();
    l.pax(records)
        .file("file", b"")
        .pax(records)
        .dir("dir")
        .pax(records)
        .symlink("link", "file")
        .pax(records)
        .device("chr", false, 1, 3)
        .pax(records)
        .device("blk", true, 8, 0)
        .pax(records)
        .fifo("fifo");
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "blk block 0660 0:0 1 8:0 [security.s=2]",
            "chr char 0660 0:0 1 1:3 [security.s=2]",
            "dir dir 0755 0:0 1 [security.s=2,user.u=1]",
            "fifo fifo 0644 0:0 1 [security.s=2]",
            "file file 0644 0:0 1 \"\" [security.s=2,user.u=1]",
            "link symlink 0777 0:0 1 -> file [security.s=2]",
        ])
    );
}
