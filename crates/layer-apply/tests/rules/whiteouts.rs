//! Whiteouts.

use crate::helpers::*;

#[test]
fn whiteout_removes_lower_file() {
    let mut l1 = LayerTar::new();
    l1.file("a", b"aaa")
        .file("b", b"b")
        .dir("d")
        .file("d/c", b"cc");
    let mut l2 = LayerTar::new();
    l2.whiteout("a").whiteout("d/c");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "b file 0644 0:0 1 \"b\"",
            "d dir 0755 0:0 1"
        ])
    );
    assert_eq!(a.released, 5);
}

#[test]
fn whiteout_removes_lower_directory_recursively() {
    let mut l1 = LayerTar::new();
    l1.dir("d")
        .file("d/f", b"ff")
        .dir("d/sub")
        .file("d/sub/g", b"ggg")
        .symlink("d/sub/link", "../f")
        .fifo("d/sub/fifo")
        .file("keep", b"k");
    let mut l2 = LayerTar::new();
    l2.file("d/sub/h", b"hhhh");
    let mut l3 = LayerTar::new();
    l3.whiteout("d");
    let a = apply(&[l1.finish(), l2.finish(), l3.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[". dir 0755 0:0", "keep file 0644 0:0 1 \"k\""])
    );
    assert_eq!(a.released, 2 + 3 + 4);
}

#[test]
fn whiteout_same_layer_name_survives_whiteout_before_or_after() {
    let mut l1 = LayerTar::new();
    l1.file("a", b"old")
        .dir("d")
        .file("d/old", b"o")
        .file("n0", b"lower");
    let before = {
        let mut l = LayerTar::new();
        l.whiteout("a")
            .file("a", b"new")
            .whiteout("d")
            .dir_mode("d", 0o700)
            .file("d/new", b"n")
            .whiteout("n1")
            .file("n1", b"only here");
        l.finish()
    };
    let after = {
        let mut l = LayerTar::new();
        l.file("a", b"new")
            .whiteout("a")
            .dir_mode("d", 0o700)
            .file("d/new", b"n")
            .whiteout("d")
            .file("n1", b"only here")
            .whiteout("n1");
        l.finish()
    };
    let expected = lines(&[
        ". dir 0755 0:0",
        "a file 0644 0:0 1 \"new\"",
        "d dir 0700 0:0 1",
        "d/new file 0644 0:0 1 \"n\"",
        "n0 file 0644 0:0 1 \"lower\"",
        "n1 file 0644 0:0 1 \"only here\"",
    ]);
    let a = apply(&[l1.finish(), before]);
    let b = apply(&[l1.finish(), after]);
    assert_eq!(listing(&a), expected);
    assert_eq!(listing(&b), expected);
    assert_eq!(mtimes(&a), mtimes(&b));
}

#[test]
fn opaque_hides_lower_children_and_keeps_the_dir() {
    let mut l1 = LayerTar::new();
    entry_with(&mut l1, "d", b'5', 0o750, b"", |h| {
        h.set_uid(5);
        h.set_gid(6);
    });
    l1.file("d/a", b"a")
        .dir("d/sub")
        .file("d/sub/c", b"c")
        .symlink("d/l", "a")
        .dir("e")
        .file("e/f", b"f");
    let mut l2 = LayerTar::new();
    l2.file("d/sub/lower2", b"2");
    let mut l3 = LayerTar::new();
    l3.opaque("d");
    let a = apply(&[l1.finish(), l2.finish(), l3.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "d dir 0750 5:6 1",
            "e dir 0755 0:0 1",
            "e/f file 0644 0:0 1 \"f\"",
        ])
    );
    assert_eq!(inode(&a, "d").mtime, ts(BUILDER_MTIME, 0));
    assert_eq!(a.released, 3);
}

#[test]
fn opaque_at_the_root_hides_everything_lower() {
    let mut l1 = LayerTar::new();
    l1.file("a", b"a").dir("d").file("d/b", b"b");
    let mut l2 = LayerTar::new();
    l2.file("new", b"n").file("./.wh..wh..opq", b"");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[". dir 0755 0:0", "new file 0644 0:0 1 \"n\""])
    );
}

#[test]
fn opaque_keeps_same_layer_children_marker_before_or_after() {
    let lower = {
        let mut l = LayerTar::new();
        l.dir_mode("d", 0o750)
            .file("d/a", b"lower a")
            .file("d/b", b"lower b")
            .dir_mode("d/sub", 0o700)
            .file("d/sub/c", b"lower c")
            .dir("d/re")
            .file("d/re/old", b"o")
            .dir("e")
            .file("e/f", b"f");
        l.finish()
    };
    let children = |l: &mut LayerTar| {
        l.mtime(1_800_000_000)
            .file("d/a", b"A2")
            .file("d/new", b"n")
            .file("d/sub/new", b"s")
            .dir_mode("d/re", 0o711)
            .file("d/re/new", b"r");
    };
    let marker_first = {
        let mut l = LayerTar::new();
        l.opaque("d");
        children(&mut l);
        l.finish()
    };
    let marker_last = {
        let mut l = LayerTar::new();
        children(&mut l);
        l.opaque("d");
        l.finish()
    };
    let expected = lines(&[
        ". dir 0755 0:0",
        "d dir 0750 0:0 1",
        "d/a file 0644 0:0 1 \"A2\"",
        "d/new file 0644 0:0 1 \"n\"",
        "d/re dir 0711 0:0 1",
        "d/re/new file 0644 0:0 1 \"r\"",
        "d/sub dir 0755 0:0 1",
        "d/sub/new file 0644 0:0 1 \"s\"",
        "e dir 0755 0:0 1",
        "e/f file 0644 0:0 1 \"f\"",
    ]);
    let a = apply(&[lower.clone(), marker_first]);
    let b = apply(&[lower, marker_last]);
    assert_eq!(listing(&a), expected);
    assert_eq!(listing(&b), expected);
    assert_eq!(mtimes(&a), mtimes(&b));
    // d/sub was only a parent in layer 2: an implicit directory, whatever the order.
    assert_eq!(inode(&a, "d/sub").mtime, ts(0, 0));
    // d itself is kept from the lower layer.
    assert_eq!(inode(&a, "d").mtime, ts(BUILDER_MTIME, 0));
    assert_eq!(a.released, b.released);
}

#[test]
fn whiteout_of_lower_dir_used_as_parent_in_same_layer_either_order() {
    let lower = {
        let mut l = LayerTar::new();
        l.dir_mode("d", 0o700)
            .file("d/old", b"o")
            .dir("d/sub")
            .file("d/sub/x", b"x");
        l.finish()
    };
    let used_then_whited = {
        let mut l = LayerTar::new();
        l.file("d/new", b"n").file("d/sub/y", b"y").whiteout("d");
        l.finish()
    };
    let whited_then_used = {
        let mut l = LayerTar::new();
        l.whiteout("d").file("d/new", b"n").file("d/sub/y", b"y");
        l.finish()
    };
    let expected = lines(&[
        ". dir 0755 0:0",
        "d dir 0755 0:0 1",
        "d/new file 0644 0:0 1 \"n\"",
        "d/sub dir 0755 0:0 1",
        "d/sub/y file 0644 0:0 1 \"y\"",
    ]);
    let options = ApplyOptions {
        implicit_mtime: ts(42, 0),
        ..ApplyOptions::default()
    };
    let a = apply_with(options.clone(), &[lower.clone(), used_then_whited]);
    let b = apply_with(options, &[lower, whited_then_used]);
    assert_eq!(listing(&a), expected);
    assert_eq!(listing(&b), expected);
    assert_eq!(mtimes(&a), mtimes(&b));
    assert_eq!(inode(&a, "d").mtime, ts(42, 0));
    assert_eq!(a.released, 2);
    assert_eq!(b.released, 2);
}

/// A lower-layer FILE used as a parent is an error, as in containerd (chosen): the layer
/// cannot put entries under a file. Whiting the file out first makes room for the directory.
#[test]
fn lower_file_as_parent_is_an_error_unless_whited_out_first() {
    let mut l1 = LayerTar::new();
    l1.file("a", b"a");
    let mut first = LayerTar::new();
    first.whiteout("a").file("a/x", b"x");
    let mut last = LayerTar::new();
    last.file("a/x", b"x").whiteout("a");
    let a = apply(&[l1.finish(), first.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a dir 0755 0:0 1",
            "a/x file 0644 0:0 1 \"x\""
        ])
    );
    let error = apply_err(&[l1.finish(), last.finish()]);
    assert!(
        matches!(error, EntryError::Tree(d2l_rootfs::Error::ParentNotDirectory(ref p)) if p == "a"),
        "{error:?}"
    );
}

#[test]
fn whiteout_entry_never_appears_whatever_its_type() {
    let mut l1 = LayerTar::new();
    for name in ["a", "b", "c", "d", "e", "f", "g"] {
        l1.file(name, name.as_bytes());
    }
    l1.file("keep", b"k");
    let mut l2 = LayerTar::new();
    // A file with content (skipped), a directory, a symlink, a hard link to nothing, a hard
    // link to something, a fifo and a device.
    l2.file(".wh.a", b"junk content that is not stored")
        .dir(".wh.b")
        .symlink(".wh.c", "anything")
        .hardlink(".wh.d", "does/not/exist")
        .hardlink(".wh.e", "keep")
        .fifo(".wh.f")
        .device(".wh.g", false, 1, 3);
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[". dir 0755 0:0", "keep file 0644 0:0 1 \"k\""])
    );
    // Only layer 1's eight bytes reached the store.
    assert_eq!(a.stored, 8);
    assert_eq!(a.released, 7);
}

#[test]
fn whiteout_target_missing_does_nothing() {
    let mut l1 = LayerTar::new();
    l1.file("a", b"a").dir("d");
    let mut l2 = LayerTar::new();
    l2.whiteout("nothere").whiteout("d/nothere").opaque("d");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 1 \"a\"",
            "d dir 0755 0:0 1"
        ])
    );
}

#[test]
fn whiteout_parent_missing_creates_implicit_parents() {
    let mut l1 = LayerTar::new();
    l1.file("a", b"a");
    let mut l2 = LayerTar::new();
    l2.whiteout("x/y/z").opaque("p/q");
    let options = ApplyOptions {
        implicit_mtime: ts(1234, 5),
        ..ApplyOptions::default()
    };
    let a = apply_with(options, &[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 1 \"a\"",
            "p dir 0755 0:0 1",
            "p/q dir 0755 0:0 1",
            "x dir 0755 0:0 1",
            "x/y dir 0755 0:0 1",
        ])
    );
    for path in ["p", "p/q", "x", "x/y"] {
        assert_eq!(inode(&a, path).mtime, ts(1234, 5), "{path}");
    }
}

#[test]
fn whiteout_parent_is_a_file_does_nothing() {
    let mut l1 = LayerTar::new();
    l1.file("f", b"f").symlink("lf", "f");
    let mut l2 = LayerTar::new();
    l2.whiteout("f/x")
        .whiteout("f/g/y")
        .whiteout("lf/z")
        .opaque("f")
        .opaque("lf");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "f file 0644 0:0 1 \"f\"",
            "lf symlink 0777 0:0 1 -> f",
        ])
    );
}

#[test]
fn whiteout_parent_resolved_through_symlinks() {
    let mut l1 = LayerTar::new();
    l1.dir("usr")
        .dir("usr/lib")
        .file("usr/lib/x", b"x")
        .file("usr/lib/y", b"y")
        .dir("usr/lib/d")
        .file("usr/lib/d/z", b"z")
        .symlink("lib", "usr/lib")
        .symlink("abs", "/usr/lib");
    let mut l2 = LayerTar::new();
    l2.whiteout("lib/x").whiteout("abs/y").opaque("lib/d");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "abs symlink 0777 0:0 1 -> /usr/lib",
            "lib symlink 0777 0:0 1 -> usr/lib",
            "usr dir 0755 0:0 1",
            "usr/lib dir 0755 0:0 1",
            "usr/lib/d dir 0755 0:0 1",
        ])
    );
}

#[test]
fn whiteout_last_component_is_not_followed() {
    let mut l1 = LayerTar::new();
    l1.dir("real").file("real/f", b"f").symlink("link", "real");
    let mut l2 = LayerTar::new();
    l2.whiteout("link");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "real dir 0755 0:0 1",
            "real/f file 0644 0:0 1 \"f\"",
        ])
    );
}

#[test]
fn whiteout_bad_names_are_errors() {
    for path in [".wh.", ".wh..", ".wh...", "d/.wh.", "d/.wh..", "d/.wh..."] {
        let mut l = LayerTar::new();
        l.dir("d").file(path, b"");
        assert_fails!([l.finish()], EntryError::BadWhiteout);
    }
}

#[test]
fn aufs_plnk_hardlinks_take_the_stashed_content_and_aufs_metadata_is_skipped() {
    let mut l = LayerTar::new();
    l.dir(".wh..wh.plnk")
        .file_mode(".wh..wh.plnk/1234.5", b"stashed", 0o750)
        .file(".wh..wh.plnk/999.9", b"unused")
        .file(".wh..wh.aufs", b"meta")
        .dir(".wh..wh.orph")
        .file(".wh..wh.orph/x", b"orphan")
        .dir("usr")
        .hardlink("usr/a", "/.wh..wh.plnk/1234.5")
        .hardlink("usr/b", ".wh..wh.plnk/1234.5");
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "usr dir 0755 0:0 1",
            "usr/a file 0750 0:0 2 \"stashed\"",
            "usr/b file 0750 0:0 2 \"stashed\"",
        ])
    );
    assert_eq!(inode_at(&a, "usr/a"), inode_at(&a, "usr/b"));
    // The stash entry nobody linked to is dead data.
    assert_eq!(a.released, 6);
}

#[test]
fn overlay_char_device_0_0_is_a_device_by_default() {
    let mut l1 = LayerTar::new();
    l1.file("a", b"a").dir("d").file("d/x", b"x");
    let mut l2 = LayerTar::new();
    l2.device("a", false, 0, 0)
        .device("d", false, 0, 0)
        .device("new", false, 0, 0);
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a char 0660 0:0 1 0:0",
            "d char 0660 0:0 1 0:0",
            "new char 0660 0:0 1 0:0",
        ])
    );
}

#[test]
fn overlay_char_device_0_0_is_a_whiteout_with_overlay_whiteouts() {
    let options = ApplyOptions {
        overlay_whiteouts: true,
        ..ApplyOptions::default()
    };
    let mut l1 = LayerTar::new();
    l1.file("a", b"a")
        .dir("d")
        .file("d/x", b"x")
        .file("c", b"c");
    let mut l2 = LayerTar::new();
    l2.device("a", false, 0, 0)
        .device("d", false, 0, 0)
        .device("new", false, 0, 0)
        // Not a marker: other numbers, or a block device.
        .device("c", false, 0, 1)
        .device("blk", true, 0, 0);
    let a = apply_with(options, &[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "blk block 0660 0:0 1 0:0",
            "c char 0660 0:0 1 0:1",
        ])
    );
}

#[test]
fn overlay_opaque_xattr_only_with_overlay_whiteouts_and_trusted_never_kept() {
    let layers = || {
        let mut l1 = LayerTar::new();
        l1.dir("d").file("d/old", b"o");
        let mut l2 = LayerTar::new();
        l2.file("d/before", b"b")
            .pax(&[
                ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
                ("SCHILY.xattr.user.k", b"v"),
            ])
            .dir("d")
            .file("d/after", b"a")
            .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
            .dir("new")
            .pax(&[("SCHILY.xattr.trusted.other", b"1")])
            .file("f", b"f");
        [l1.finish(), l2.finish()]
    };
    let plain = apply(&layers());
    assert_eq!(
        listing(&plain),
        lines(&[
            ". dir 0755 0:0",
            "d dir 0755 0:0 1 [user.k=v]",
            "d/after file 0644 0:0 1 \"a\"",
            "d/before file 0644 0:0 1 \"b\"",
            "d/old file 0644 0:0 1 \"o\"",
            "f file 0644 0:0 1 \"f\"",
            "new dir 0755 0:0 1",
        ])
    );
    let overlay = apply_with(
        ApplyOptions {
            overlay_whiteouts: true,
            ..ApplyOptions::default()
        },
        &layers(),
    );
    assert_eq!(
        listing(&overlay),
        lines(&[
            ". dir 0755 0:0",
            "d dir 0755 0:0 1 [user.k=v]",
            "d/after file 0644 0:0 1 \"a\"",
            "d/before file 0644 0:0 1 \"b\"",
            "f file 0644 0:0 1 \"f\"",
            "new dir 0755 0:0 1",
        ])
    );
}
