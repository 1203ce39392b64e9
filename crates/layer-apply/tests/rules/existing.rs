//! Existing paths.

use crate::helpers::*;

#[test]
fn existing_dir_over_dir_keeps_children_and_takes_metadata() {
    let mut l1 = LayerTar::new();
    l1.pax(&[("SCHILY.xattr.user.old", b"1")])
        .dir("d")
        .file("d/child", b"c")
        .pax(&[("SCHILY.xattr.user.old", b"1")])
        .dir("e");
    let mut l2 = LayerTar::new();
    l2.mtime(1_800_000_000)
        .pax(&[("SCHILY.xattr.user.new", b"2"), ("mtime", b"1800000000.5")]);
    entry_with(&mut l2, "d", b'5', 0o700, b"", |h| {
        h.set_uid(7);
        h.set_gid(8);
    });
    // No xattrs on the new entry: the old ones go.
    l2.dir_mode("e", 0o711);
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "d dir 0700 7:8 1 [user.new=2]",
            "d/child file 0644 0:0 1 \"c\"",
            "e dir 0711 0:0 1",
        ])
    );
    assert_eq!(inode(&a, "d").mtime, ts(1_800_000_000, 500_000_000));
    assert_eq!(inode(&a, "e").mtime, ts(1_800_000_000, 0));
    assert_eq!(inode(&a, "d/child").mtime, ts(BUILDER_MTIME, 0));
}

#[test]
fn existing_non_dir_over_dir_replaces_the_subtree() {
    let mut l1 = LayerTar::new();
    l1.dir("d")
        .file("d/f", b"ffff")
        .dir("d/sub")
        .file("d/sub/g", b"gg")
        .dir("e")
        .file("e/x", b"x")
        .dir("h")
        .file("h/y", b"y")
        .file("target", b"t");
    let mut l2 = LayerTar::new();
    l2.file("d", b"file")
        .symlink("e", "target")
        .hardlink("h", "target");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "d file 0644 0:0 1 \"file\"",
            "e symlink 0777 0:0 1 -> target",
            "h file 0644 0:0 2 \"t\"",
            "target file 0644 0:0 2 \"t\"",
        ])
    );
    assert_eq!(a.released, 4 + 2 + 1 + 1);
}

#[test]
fn existing_dir_over_symlink_replaces_the_symlink() {
    let mut l1 = LayerTar::new();
    l1.dir("real").file("real/f", b"f").symlink("link", "real");
    let mut l2 = LayerTar::new();
    l2.dir_mode("link", 0o700).file("link/new", b"n");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "link dir 0700 0:0 1",
            "link/new file 0644 0:0 1 \"n\"",
            "real dir 0755 0:0 1",
            "real/f file 0644 0:0 1 \"f\"",
        ])
    );
}

#[test]
fn existing_last_duplicate_wins() {
    let mut l = LayerTar::new();
    l.file("a", b"1")
        .file("a", b"22")
        .symlink("b", "x")
        .file("b", b"b")
        .file("c", b"c")
        .dir("c")
        .dir_mode("e", 0o700)
        .dir_mode("e", 0o750)
        .fifo("f")
        .symlink("f", "y")
        .symlink("f", "z");
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 1 \"22\"",
            "b file 0644 0:0 1 \"b\"",
            "c dir 0755 0:0 1",
            "e dir 0750 0:0 1",
            "f symlink 0777 0:0 1 -> z",
        ])
    );
    assert_eq!(a.released, 2);
}

#[test]
fn existing_dir_entry_after_its_children_updates_metadata_only() {
    let mut l = LayerTar::new();
    l.file("a/b/f", b"f").dir_mode("a/b", 0o700);
    entry_with(&mut l, "a", b'5', 0o750, b"", |h| h.set_uid(3));
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a dir 0750 3:0 1",
            "a/b dir 0700 0:0 1",
            "a/b/f file 0644 0:0 1 \"f\"",
        ])
    );
    assert_eq!(inode(&a, "a").mtime, ts(BUILDER_MTIME, 0));
}

#[test]
fn existing_implicit_parents_are_0755_root_with_implicit_mtime() {
    let options = ApplyOptions {
        implicit_mtime: ts(1234, 5),
        ..ApplyOptions::default()
    };
    let mut l1 = LayerTar::new();
    l1.file_owned("x/y/z", b"z", 5, 6).symlink("lnk", "/m/n");
    let mut l2 = LayerTar::new();
    l2.file("lnk/o", b"o");
    let a = apply_with(options, &[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "lnk symlink 0777 0:0 1 -> /m/n",
            "m dir 0755 0:0 1",
            "m/n dir 0755 0:0 1",
            "m/n/o file 0644 0:0 1 \"o\"",
            "x dir 0755 0:0 1",
            "x/y dir 0755 0:0 1",
            "x/y/z file 0644 5:6 1 \"z\"",
        ])
    );
    for path in [".", "x", "x/y", "m", "m/n"] {
        let id = if path == "." {
            a.tree.root()
        } else {
            inode_at(&a, path)
        };
        assert_eq!(a.tree.inode(id).mtime, ts(1234, 5), "{path}");
        assert!(a.tree.inode(id).xattrs.is_empty());
    }
    // Default options: the epoch.
    let mut l = LayerTar::new();
    l.file("p/q", b"");
    let a = apply(&[l.finish()]);
    assert_eq!(inode(&a, "p").mtime, ts(0, 0));
    assert_eq!(a.tree.inode(a.tree.root()).mtime, ts(0, 0));
}

#[test]
fn existing_root_entry_metadata_is_ignored() {
    let mut l = LayerTar::new();
    l.pax(&[("SCHILY.xattr.user.root", b"1"), ("mtime", b"99.5")]);
    entry_with(&mut l, "./", b'5', 0o700, b"", |h| {
        h.set_uid(5);
        h.set_gid(5);
    });
    l.dir_mode("/", 0o777).dir_mode(".", 0o711).file("f", b"f");
    let mut l2 = LayerTar::new();
    l2.dir_mode("./", 0o1777);
    let a = apply(&[l.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[". dir 0755 0:0", "f file 0644 0:0 1 \"f\""])
    );
    assert_eq!(a.tree.inode(a.tree.root()).mtime, ts(0, 0));
}

#[test]
fn existing_root_entry_that_is_not_a_directory_is_an_error() {
    for (path, kind) in [
        ("./", b'0'),
        ("/", b'2'),
        (".", b'6'),
        ("./", b'3'),
        ("./", b'1'),
    ] {
        let mut l = LayerTar::new();
        l.file("a", b"a");
        let mut h = l.header_for(path.as_bytes(), kind, 0o644, 0);
        h.set_link_name_literal(b"a").unwrap();
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        l.raw(h, &[]);
        assert_fails!([l.finish()], EntryError::RootNotDirectory);
    }
}

#[test]
fn existing_truncated_data_is_an_error() {
    let data = vec![b'x'; 1000];
    let mut l = LayerTar::new();
    l.file("a", &data);
    let stream = l.unterminated();
    // Mid-data, with and without what follows.
    assert_fails!([stream[..512 + 500].to_vec()], EntryError::Truncated);
    assert_fails!([stream[..512 + 999].to_vec()], EntryError::Truncated);
    // Only the header.
    assert_fails!([stream[..512].to_vec()], EntryError::Truncated);
    // Mid-header.
    assert_fails!([stream[..300].to_vec()], EntryError::Truncated);
    // Data complete, padding missing.
    assert_fails!([stream[..512 + 1000].to_vec()], EntryError::Truncated);
    // A later layer truncated, the earlier one intact.
    let mut ok = LayerTar::new();
    ok.file("z", b"z");
    assert_fails!([ok.finish(), stream[..600].to_vec()], EntryError::Truncated);

    // A PAX header and nothing after it, or cut inside its records.
    let mut l = LayerTar::new();
    l.pax(&[("path", b"long/name")]).file("a", b"abc");
    let stream = l.unterminated();
    assert_fails!([stream[..1024].to_vec()], EntryError::Truncated);
    assert_fails!([stream[..520].to_vec()], EntryError::Truncated);
    assert_fails!([stream[..1024 + 100].to_vec()], EntryError::Truncated);
    // The whole entry, no end-of-archive marker: complete, accepted.
    let a = apply(std::slice::from_ref(&stream));
    assert_eq!(content(&a, "long/name"), b"abc");

    // A GNU long name and nothing after it.
    let mut l = LayerTar::new();
    l.gnu_long(b'L', b"some/long/name").file("stand-in", b"x");
    let stream = l.unterminated();
    assert_fails!([stream[..1024].to_vec()], EntryError::Truncated);

    // A whiteout's skipped content cut short.
    let mut l = LayerTar::new();
    l.file(".wh.a", &data);
    let stream = l.unterminated();
    assert_fails!([stream[..512 + 10].to_vec()], EntryError::Truncated);
}
