//! Entries.

use crate::helpers::*;

#[test]
fn entries_every_type_is_applied() {
    let long_target = format!("/{}/end", "t".repeat(150));
    let mut l = LayerTar::new();
    l.dir_mode("d", 0o750)
        .file_mode("d/f", b"data", 0o640)
        .hardlink("d/h", "d/f")
        .symlink("s1", "d/f")
        .symlink("s2", "")
        .symlink("s3", "../../outside/..//x/")
        .symlink("s4", "/abs/./p")
        .symlink("s5", "with space\tand tab")
        .symlink("s6", &long_target)
        .dir("dev")
        .device("dev/null", false, 1, 3)
        .device("dev/sda1", true, 8, 1)
        .device("dev/big", false, 4095, 1_048_575)
        .fifo("fifo");
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "d dir 0750 0:0 1",
            "d/f file 0640 0:0 2 \"data\"",
            "d/h file 0640 0:0 2 \"data\"",
            "dev dir 0755 0:0 1",
            "dev/big char 0660 0:0 1 4095:1048575",
            "dev/null char 0660 0:0 1 1:3",
            "dev/sda1 block 0660 0:0 1 8:1",
            "fifo fifo 0644 0:0 1",
            "s1 symlink 0777 0:0 1 -> d/f",
            "s2 symlink 0777 0:0 1 -> ",
            "s3 symlink 0777 0:0 1 -> ../../outside/..//x/",
            "s4 symlink 0777 0:0 1 -> /abs/./p",
            "s5 symlink 0777 0:0 1 -> with space\\tand tab",
            &format!("s6 symlink 0777 0:0 1 -> {long_target}"),
        ])
    );
    assert_eq!(inode_at(&a, "d/f"), inode_at(&a, "d/h"));
}

#[test]
fn entries_symlink_keeps_owner_and_mtime() {
    let mut l = LayerTar::new();
    l.mtime(99);
    let mut h = l.header_for(b"s", b'2', 0o777, 0);
    h.set_uid(12);
    h.set_gid(34);
    h.set_link_name_literal(b"t").unwrap();
    l.raw(h, &[]);
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[". dir 0755 0:0", "s symlink 0777 12:34 1 -> t"])
    );
    assert_eq!(inode(&a, "s").mtime, ts(99, 0));
}

#[test]
fn entries_regular_type_nul_and_7_are_files() {
    let mut l = LayerTar::new();
    entry_with(&mut l, "nul", b'\0', 0o644, b"nul", |_| {});
    entry_with(&mut l, "seven", b'7', 0o600, b"contiguous", |_| {});
    entry_with(&mut l, "zero", b'0', 0o644, b"zero", |_| {});
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "nul file 0644 0:0 1 \"nul\"",
            "seven file 0600 0:0 1 \"contiguous\"",
            "zero file 0644 0:0 1 \"zero\"",
        ])
    );
}

#[test]
fn entries_pax_global_header_is_ignored() {
    let mut l = LayerTar::new();
    l.pax_global(&[
        ("path", b"global-path"),
        ("uid", b"77"),
        ("gid", b"88"),
        ("mtime", b"5.5"),
        ("SCHILY.xattr.user.g", b"global"),
    ])
    .file("f", b"f")
    .pax_global(&[("comment", b"between")])
    .dir("d");
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "d dir 0755 0:0 1",
            "f file 0644 0:0 1 \"f\""
        ])
    );
    assert_eq!(inode(&a, "f").mtime, ts(BUILDER_MTIME, 0));
}

#[test]
fn entries_gnu_long_name_and_long_link() {
    let long_dir = "d".repeat(120);
    let long_file = format!("{long_dir}/{}", "f".repeat(130));
    let long_link = format!("{long_dir}/{}", "s".repeat(110));
    let long_target = format!("/{}/target", "t".repeat(200));
    let long_hard = format!("{long_dir}/{}", "h".repeat(140));
    let mut l = LayerTar::new();
    // A file with a GNU long name; the header name is a truncated stand-in.
    l.gnu_long(b'L', long_file.as_bytes());
    entry_with(&mut l, &long_file[..100], b'0', 0o644, b"long", |_| {});
    // A symlink with a long name and a long target.
    l.gnu_long(b'L', long_link.as_bytes())
        .gnu_long(b'K', long_target.as_bytes());
    link_entry(&mut l, &long_link[..100], b'2', &long_target[..100]);
    // A hard link with a long name to the long-named file.
    l.gnu_long(b'L', long_hard.as_bytes())
        .gnu_long(b'K', long_file.as_bytes());
    link_entry(&mut l, "stand-in", b'1', "stand-in-target");
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            &format!("{long_dir} dir 0755 0:0 1"),
            &format!("{long_file} file 0644 0:0 2 \"long\""),
            &format!("{long_hard} file 0644 0:0 2 \"long\""),
            &format!("{long_link} symlink 0777 0:0 1 -> {long_target}"),
        ])
    );
}

#[test]
fn entries_ustar_prefix_field_is_part_of_the_path() {
    let prefix = "p".repeat(120);
    let mut l = LayerTar::new();
    let mut h = l.header_for(b"name", b'0', 0o644, 1);
    // The ustar prefix field: 155 bytes at offset 345, joined to the name with "/".
    h.as_mut_bytes()[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    l.raw(h, b"x");
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            &format!("{prefix} dir 0755 0:0 1"),
            &format!("{prefix}/name file 0644 0:0 1 \"x\""),
        ])
    );
}

#[test]
fn entries_pax_path_and_linkpath() {
    let long = format!("{}/{}", "p".repeat(90), "q".repeat(90));
    let mut l = LayerTar::new();
    l.pax(&[("path", b"real/name")])
        .file("stand-in", b"x")
        .file(&long, b"long")
        .pax(&[("linkpath", b"real/name")])
        .symlink("sym", "ignored")
        .pax(&[("linkpath", b"/real/name"), ("path", b"real/hard")])
        .hardlink("stand-in-2", "ignored");
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            &format!("{} dir 0755 0:0 1", "p".repeat(90)),
            &format!("{long} file 0644 0:0 1 \"long\""),
            "real dir 0755 0:0 1",
            "real/hard file 0644 0:0 2 \"x\"",
            "real/name file 0644 0:0 2 \"x\"",
            "sym symlink 0777 0:0 1 -> real/name",
        ])
    );
}

#[test]
fn entries_mode_keeps_low_12_bits_with_setuid_setgid_sticky() {
    let mut l = LayerTar::new();
    l.file_mode("suid", b"", 0o4755)
        .file_mode("sgid", b"", 0o2711)
        .dir_mode("tmp", 0o1777)
        .file_mode("all", b"", 0o7777)
        .file_mode("typebits", b"", 0o100_644)
        .dir_mode("dirbits", 0o40_700)
        .file_mode("none", b"", 0);
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "all file 7777 0:0 1 \"\"",
            "dirbits dir 0700 0:0 1",
            "none file 0000 0:0 1 \"\"",
            "sgid file 2711 0:0 1 \"\"",
            "suid file 4755 0:0 1 \"\"",
            "tmp dir 1777 0:0 1",
            "typebits file 0644 0:0 1 \"\"",
        ])
    );
}

#[test]
fn entries_uid_gid_from_pax_and_base256() {
    let mut l = LayerTar::new();
    l.pax(&[("uid", b"3000000"), ("gid", b"4000000")])
        .file("pax", b"")
        // Over 2^21: the tar crate writes these header fields in base-256.
        .file_owned("b256", b"", 3_000_000, 4_294_967_295)
        .file_owned("octal", b"", 2_097_151, 1000);
    // PAX wins over the header fields.
    l.pax(&[("uid", b"7")]).file_owned("mixed", b"", 1, 2);
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "b256 file 0644 3000000:4294967295 1 \"\"",
            "mixed file 0644 7:2 1 \"\"",
            "octal file 0644 2097151:1000 1 \"\"",
            "pax file 0644 3000000:4000000 1 \"\"",
        ])
    );
}

#[test]
fn entries_uid_or_gid_over_32_bits_is_an_error() {
    let mut l = LayerTar::new();
    l.pax(&[("uid", b"4294967296")]).file("f", b"");
    assert_fails!([l.finish()], EntryError::IdTooLarge(4_294_967_296));
    let mut l = LayerTar::new();
    l.pax(&[("gid", b"18446744073709551615")]).dir("d");
    assert_fails!([l.finish()], EntryError::IdTooLarge(u64::MAX));
    let mut l = LayerTar::new();
    l.file_owned("f", b"", 1 << 32, 0);
    assert_fails!([l.finish()], EntryError::IdTooLarge(4_294_967_296));
    let mut l = LayerTar::new();
    entry_with(&mut l, "s", b'2', 0o777, b"", |h| {
        h.set_gid(1 << 40);
        h.set_link_name_literal(b"t").unwrap();
    });
    assert_fails!([l.finish()], EntryError::IdTooLarge(_));
}

#[test]
fn entries_uname_and_gname_are_ignored() {
    let mut l = LayerTar::new();
    entry_with(&mut l, "named", b'0', 0o644, b"", |h| {
        h.set_uid(5);
        h.set_gid(6);
        h.set_username("root").unwrap();
        h.set_groupname("root").unwrap();
    });
    l.pax(&[("uname", b"nobody"), ("gname", b"nogroup")]);
    entry_with(&mut l, "paxnamed", b'0', 0o644, b"", |h| {
        h.set_uid(0);
        h.set_username("daemon").unwrap();
    });
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "named file 0644 5:6 1 \"\"",
            "paxnamed file 0644 0:0 1 \"\"",
        ])
    );
}

#[test]
fn entries_mtime_with_nanoseconds_from_pax() {
    let mut l = LayerTar::new();
    l.pax(&[("mtime", b"1700000000.123456789")])
        .file("nanos", b"")
        .pax(&[("mtime", b"-1.25")])
        .file("negative", b"")
        .pax(&[("mtime", b"12.5")])
        .dir("dir")
        .pax(&[("mtime", b"7")])
        .symlink("link", "t")
        .pax(&[("mtime", b"1.0000000019")])
        .file("truncated", b"")
        .mtime(1_234)
        .file("header", b"");
    let a = apply(&[l.finish()]);
    assert_eq!(inode(&a, "nanos").mtime, ts(1_700_000_000, 123_456_789));
    assert_eq!(inode(&a, "negative").mtime, ts(-2, 750_000_000));
    assert_eq!(inode(&a, "dir").mtime, ts(12, 500_000_000));
    assert_eq!(inode(&a, "link").mtime, ts(7, 0));
    assert_eq!(inode(&a, "truncated").mtime, ts(1, 1));
    assert_eq!(inode(&a, "header").mtime, ts(1234, 0));
}

#[test]
fn entries_unsupported_type_is_an_error() {
    for kind in [b'V', b'M', b'N', b'A', b'X'] {
        let mut l = LayerTar::new();
        entry_with(&mut l, "odd", kind, 0o644, b"", |_| {});
        let error = apply_err(&[l.finish()]);
        assert!(
            matches!(error, EntryError::UnsupportedType(k) if k == kind),
            "type {:?}: {error:?}",
            char::from(kind)
        );
    }
}
