//! Hard links.

use crate::helpers::*;

#[test]
fn hardlink_across_layers() {
    let mut l1 = LayerTar::new();
    l1.file_owned("a", b"A", 3, 4);
    let mut l2 = LayerTar::new();
    l2.hardlink("b", "a");
    let mut l3 = LayerTar::new();
    l3.hardlink("c", "b");
    let a = apply(&[l1.finish(), l2.finish(), l3.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 3:4 3 \"A\"",
            "b file 0644 3:4 3 \"A\"",
            "c file 0644 3:4 3 \"A\"",
        ])
    );
    assert_eq!(inode_at(&a, "a"), inode_at(&a, "b"));
    assert_eq!(inode_at(&a, "a"), inode_at(&a, "c"));
    assert_eq!(a.stored, 1);
}

#[test]
fn hardlink_absolute_target_is_root_relative() {
    let mut l1 = LayerTar::new();
    l1.dir("d").file("d/a", b"A");
    let mut l2 = LayerTar::new();
    l2.hardlink("/x", "/d/a")
        .hardlink("y", "./d//a")
        .hardlink("d/z", "/d/../d/a");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "d dir 0755 0:0 1",
            "d/a file 0644 0:0 4 \"A\"",
            "d/z file 0644 0:0 4 \"A\"",
            "x file 0644 0:0 4 \"A\"",
            "y file 0644 0:0 4 \"A\"",
        ])
    );
}

#[test]
fn hardlink_parents_resolved_through_symlinks() {
    let mut l1 = LayerTar::new();
    l1.dir("usr")
        .dir("usr/lib")
        .file("usr/lib/f", b"F")
        .symlink("lib", "usr/lib")
        .symlink("lib64", "/usr/lib");
    let mut l2 = LayerTar::new();
    l2.hardlink("lib/g", "lib64/f").hardlink("h", "lib/f");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "h file 0644 0:0 3 \"F\"",
            "lib symlink 0777 0:0 1 -> usr/lib",
            "lib64 symlink 0777 0:0 1 -> /usr/lib",
            "usr dir 0755 0:0 1",
            "usr/lib dir 0755 0:0 1",
            "usr/lib/f file 0644 0:0 3 \"F\"",
            "usr/lib/g file 0644 0:0 3 \"F\"",
        ])
    );
}

#[test]
fn hardlink_to_a_symlink_shares_the_symlink_inode() {
    let mut l1 = LayerTar::new();
    l1.symlink("s", "t").dir("d").symlink("sd", "d");
    let mut l2 = LayerTar::new();
    l2.hardlink("h", "s").hardlink("hd", "sd");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "d dir 0755 0:0 1",
            "h symlink 0777 0:0 2 -> t",
            "hd symlink 0777 0:0 2 -> d",
            "s symlink 0777 0:0 2 -> t",
            "sd symlink 0777 0:0 2 -> d",
        ])
    );
    assert_eq!(inode_at(&a, "h"), inode_at(&a, "s"));
    assert_eq!(inode_at(&a, "hd"), inode_at(&a, "sd"));
}

#[test]
fn hardlink_missing_target_is_an_error() {
    let mut l1 = LayerTar::new();
    l1.file("f", b"f").file("gone", b"g");
    let lower = l1.finish();
    for target in ["nothere", "x/y", "f/y", "gone"] {
        let mut l2 = LayerTar::new();
        l2.whiteout("gone").hardlink("h", target);
        assert_fails!(
            [lower.clone(), l2.finish()],
            EntryError::HardlinkTargetMissing(_)
        );
    }
    // A target that only comes later in the layer.
    let mut l = LayerTar::new();
    l.hardlink("h", "later").file("later", b"l");
    assert_fails!([l.finish()], EntryError::HardlinkTargetMissing(_));
}

#[test]
fn hardlink_to_a_directory_is_an_error() {
    for target in ["d", "/d/", "lnk/sub", "./"] {
        let mut l = LayerTar::new();
        l.dir("d")
            .dir("d/sub")
            .symlink("lnk", "d")
            .hardlink("h", target);
        assert_fails!([l.finish()], EntryError::HardlinkToDirectory(_));
    }
}

#[test]
fn hardlink_replaces_an_existing_destination() {
    let mut l1 = LayerTar::new();
    l1.file("a", b"A")
        .file("b", b"B")
        .dir("c")
        .file("c/x", b"X")
        .symlink("s", "a")
        .fifo("p");
    let mut l2 = LayerTar::new();
    l2.hardlink("b", "a")
        .hardlink("c", "a")
        .hardlink("s", "a")
        .hardlink("p", "a")
        // A link onto itself changes nothing.
        .hardlink("a", "a");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 5 \"A\"",
            "b file 0644 0:0 5 \"A\"",
            "c file 0644 0:0 5 \"A\"",
            "p file 0644 0:0 5 \"A\"",
            "s file 0644 0:0 5 \"A\"",
        ])
    );
    assert_eq!(a.released, 2);
}

#[test]
fn hardlink_creates_missing_parents() {
    let options = ApplyOptions {
        implicit_mtime: ts(77, 0),
        ..ApplyOptions::default()
    };
    let mut l1 = LayerTar::new();
    l1.file("a", b"A");
    let mut l2 = LayerTar::new();
    l2.hardlink("x/y/h", "a");
    let a = apply_with(options, &[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 2 \"A\"",
            "x dir 0755 0:0 1",
            "x/y dir 0755 0:0 1",
            "x/y/h file 0644 0:0 2 \"A\"",
        ])
    );
    assert_eq!(inode(&a, "x/y").mtime, ts(77, 0));
}

#[test]
fn hardlink_header_metadata_is_ignored() {
    let mut l1 = LayerTar::new();
    l1.pax(&[("SCHILY.xattr.user.keep", b"k")])
        .file_mode("a", b"A", 0o600);
    let mut l2 = LayerTar::new();
    l2.mtime(5).pax(&[
        ("SCHILY.xattr.user.z", b"1"),
        ("uid", b"9"),
        ("gid", b"9"),
        ("mtime", b"7.5"),
    ]);
    entry_with(&mut l2, "h", b'1', 0o4777, b"", |h| {
        h.set_uid(9);
        h.set_link_name_literal(b"a").unwrap();
    });
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0600 0:0 2 \"A\" [user.keep=k]",
            "h file 0600 0:0 2 \"A\" [user.keep=k]",
        ])
    );
    assert_eq!(inode(&a, "h").mtime, ts(BUILDER_MTIME, 0));
}

#[test]
fn hardlink_unlinking_one_name_keeps_the_others() {
    let mut l1 = LayerTar::new();
    l1.file("a", b"old")
        .hardlink("b", "a")
        .dir("d")
        .hardlink("d/c", "a")
        .hardlink("e", "a");
    let mut l2 = LayerTar::new();
    l2.whiteout("b");
    let mut l3 = LayerTar::new();
    l3.file("a", b"new");
    let mut l4 = LayerTar::new();
    l4.whiteout("d");
    let mut l5 = LayerTar::new();
    l5.symlink("e", "a");
    let layers = [
        l1.finish(),
        l2.finish(),
        l3.finish(),
        l4.finish(),
        l5.finish(),
    ];

    let a = apply(&layers[..1]);
    assert_eq!(inode(&a, "a").link_count(), 4);

    let a = apply(&layers[..2]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 3 \"old\"",
            "d dir 0755 0:0 1",
            "d/c file 0644 0:0 3 \"old\"",
            "e file 0644 0:0 3 \"old\"",
        ])
    );
    assert_eq!(a.released, 0);

    let a = apply(&layers[..3]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 1 \"new\"",
            "d dir 0755 0:0 1",
            "d/c file 0644 0:0 2 \"old\"",
            "e file 0644 0:0 2 \"old\"",
        ])
    );
    assert_eq!(a.released, 0);

    let a = apply(&layers[..4]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 1 \"new\"",
            "e file 0644 0:0 1 \"old\"",
        ])
    );
    assert_eq!(a.released, 0);

    let a = apply(&layers);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 1 \"new\"",
            "e symlink 0777 0:0 1 -> a",
        ])
    );
    // The old content died with its last name.
    assert_eq!(a.released, 3);
}
