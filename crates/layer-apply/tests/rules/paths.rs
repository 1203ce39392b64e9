//! Paths.

use crate::helpers::*;

#[test]
fn paths_leading_slash_and_dot_slash_stripped_double_slash_and_dot_cleaned() {
    let mut l = LayerTar::new();
    l.file("/a", b"a")
        .file("./b", b"b")
        .file(".//c//d", b"d")
        .file("./e/./f", b"f")
        .file("g/h/../i", b"i")
        .dir("/j/")
        .dir("./k/.")
        .file("///l", b"l");
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 1 \"a\"",
            "b file 0644 0:0 1 \"b\"",
            "c dir 0755 0:0 1",
            "c/d file 0644 0:0 1 \"d\"",
            "e dir 0755 0:0 1",
            "e/f file 0644 0:0 1 \"f\"",
            "g dir 0755 0:0 1",
            "g/i file 0644 0:0 1 \"i\"",
            "j dir 0755 0:0 1",
            "k dir 0755 0:0 1",
            "l file 0644 0:0 1 \"l\"",
        ])
    );
}

#[test]
fn paths_dotdot_is_resolved_lexically_not_through_symlinks() {
    // `g/h/../i` is `g/i` even when `g/h` is a symlink pointing elsewhere.
    let mut l1 = LayerTar::new();
    l1.dir("g").dir("elsewhere").symlink("g/h", "/elsewhere");
    let mut l2 = LayerTar::new();
    l2.file("g/h/../i", b"i");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "elsewhere dir 0755 0:0 1",
            "g dir 0755 0:0 1",
            "g/h symlink 0777 0:0 1 -> /elsewhere",
            "g/i file 0644 0:0 1 \"i\"",
        ])
    );
}

#[test]
fn paths_climbing_above_root_is_an_error() {
    for path in ["../etc/x", "a/../../b", "/../x", "./../x", ".."] {
        let mut l = LayerTar::new();
        l.file(path, b"x");
        assert_fails!(
            [l.finish()],
            EntryError::Tree(d2l_rootfs::Error::EscapesRoot)
        );
    }
    // Directories and link names too.
    let mut l = LayerTar::new();
    l.dir("../d");
    assert_fails!(
        [l.finish()],
        EntryError::Tree(d2l_rootfs::Error::EscapesRoot)
    );
    let mut l = LayerTar::new();
    l.file("a", b"").hardlink("x/../../h", "a");
    assert_fails!(
        [l.finish()],
        EntryError::Tree(d2l_rootfs::Error::EscapesRoot)
    );
}

#[test]
fn paths_component_over_255_bytes_is_an_error() {
    let ok = "x".repeat(255);
    let long = "x".repeat(256);
    let mut l = LayerTar::new();
    l.file(&ok, b"ok").file(&format!("d/{ok}"), b"ok");
    let a = apply(&[l.finish()]);
    assert_eq!(content(&a, &ok), b"ok");
    assert_eq!(content(&a, &format!("d/{ok}")), b"ok");

    for path in [long.clone(), format!("d/{long}"), format!("{long}/f")] {
        let mut l = LayerTar::new();
        l.file(&path, b"x");
        assert_fails!(
            [l.finish()],
            EntryError::Tree(d2l_rootfs::Error::NameTooLong)
        );
    }
    let mut l = LayerTar::new();
    l.dir(&format!("{long}/"));
    assert_fails!(
        [l.finish()],
        EntryError::Tree(d2l_rootfs::Error::NameTooLong)
    );
    // A component that only appears through a symlink's target.
    let mut l1 = LayerTar::new();
    l1.symlink("s", &long);
    let mut l2 = LayerTar::new();
    l2.file("s/f", b"x");
    assert_fails!(
        [l1.finish(), l2.finish()],
        EntryError::Tree(d2l_rootfs::Error::NameTooLong)
    );
}

#[test]
fn paths_empty_name_is_an_error() {
    // An entry with an empty name is not the root entry "./": the note makes empty names
    // an error, and the crate has `EntryError::Tree(d2l_rootfs::Error::EmptyName)` for it.
    let mut l = LayerTar::new();
    l.file_bytes(b"", b"x");
    assert_fails!([l.finish()], EntryError::Tree(d2l_rootfs::Error::EmptyName));
    let mut l = LayerTar::new();
    l.raw(l.header_for(b"", b'5', 0o755, 0), &[]);
    assert_fails!([l.finish()], EntryError::Tree(d2l_rootfs::Error::EmptyName));
}

#[test]
fn paths_names_are_bytes_not_utf8() {
    let mut l = LayerTar::new();
    l.file_bytes(b"caf\xe9", b"latin1")
        .file_bytes(b"\xff\xfe/\x80\x00", b"raw")
        .file_bytes("\u{e9}t\u{e9}".as_bytes(), b"utf8");
    let mut h = l.header_for(b"link\xc0", b'2', 0o777, 0);
    h.set_link_name_literal(b"target\xfe").unwrap();
    l.raw(h, &[]);
    let a = apply(&[l.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "caf\\xe9 file 0644 0:0 1 \"latin1\"",
            "link\\xc0 symlink 0777 0:0 1 -> target\\xfe",
            "\\xc3\\xa9t\\xc3\\xa9 file 0644 0:0 1 \"utf8\"",
            "\\xff\\xfe dir 0755 0:0 1",
            "\\xff\\xfe/\\x80 file 0644 0:0 1 \"raw\"",
        ])
    );
    assert!(a.tree.lookup(b"caf\xe9").is_some());
    assert!(a.tree.lookup(b"\xff\xfe/\x80").is_some());
}

#[test]
fn paths_parent_relative_symlink_in_lower_layer_is_followed() {
    let mut l1 = LayerTar::new();
    l1.dir("usr").dir("usr/lib").symlink("lib", "usr/lib");
    let mut l2 = LayerTar::new();
    l2.file("lib/x", b"x")
        .dir("lib/sub")
        .file("lib/sub/y", b"y");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "lib symlink 0777 0:0 1 -> usr/lib",
            "usr dir 0755 0:0 1",
            "usr/lib dir 0755 0:0 1",
            "usr/lib/sub dir 0755 0:0 1",
            "usr/lib/sub/y file 0644 0:0 1 \"y\"",
            "usr/lib/x file 0644 0:0 1 \"x\"",
        ])
    );
}

#[test]
fn paths_parent_absolute_symlink_and_symlink_chains_are_followed() {
    let mut l1 = LayerTar::new();
    l1.dir("usr")
        .dir("usr/lib")
        .symlink("lib", "/usr/lib")
        // Relative, resolved from the directory holding the link.
        .symlink("usr/lib64", "lib")
        // Absolute to another symlink.
        .symlink("lib64", "/lib")
        .dir("opt")
        .symlink("opt/up", "../usr/./lib/");
    let mut l2 = LayerTar::new();
    l2.file("lib/a", b"a")
        .file("usr/lib64/b", b"b")
        .file("lib64/c", b"c")
        .file("opt/up/d", b"d");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "lib symlink 0777 0:0 1 -> /usr/lib",
            "lib64 symlink 0777 0:0 1 -> /lib",
            "opt dir 0755 0:0 1",
            "opt/up symlink 0777 0:0 1 -> ../usr/./lib/",
            "usr dir 0755 0:0 1",
            "usr/lib dir 0755 0:0 1",
            "usr/lib/a file 0644 0:0 1 \"a\"",
            "usr/lib/b file 0644 0:0 1 \"b\"",
            "usr/lib/c file 0644 0:0 1 \"c\"",
            "usr/lib/d file 0644 0:0 1 \"d\"",
            "usr/lib64 symlink 0777 0:0 1 -> lib",
        ])
    );
}

#[test]
fn paths_symlink_dotdot_clamps_at_root_and_stays_inside_the_tree() {
    let mut l1 = LayerTar::new();
    l1.dir("etc")
        .symlink("evil", "/../../../../../../etc")
        .dir("deep")
        .dir("deep/er")
        .symlink("deep/er/up", "../../../../../../../../tmp")
        .symlink("rootdir", "/..");
    let mut l2 = LayerTar::new();
    l2.file("evil/passwd", b"p")
        .file("deep/er/up/y", b"y")
        .file("rootdir/z", b"z");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "deep dir 0755 0:0 1",
            "deep/er dir 0755 0:0 1",
            "deep/er/up symlink 0777 0:0 1 -> ../../../../../../../../tmp",
            "etc dir 0755 0:0 1",
            "etc/passwd file 0644 0:0 1 \"p\"",
            "evil symlink 0777 0:0 1 -> /../../../../../../etc",
            "rootdir symlink 0777 0:0 1 -> /..",
            "tmp dir 0755 0:0 1",
            "tmp/y file 0644 0:0 1 \"y\"",
            "z file 0644 0:0 1 \"z\"",
        ])
    );
}

#[test]
fn paths_symlink_loop_is_an_error() {
    // a -> b -> a
    let mut l1 = LayerTar::new();
    l1.symlink("a", "b").symlink("b", "a");
    let mut l2 = LayerTar::new();
    l2.file("a/x", b"x");
    assert_fails!(
        [l1.finish(), l2.finish()],
        EntryError::Tree(d2l_rootfs::Error::SymlinkLoop)
    );
    // Self loop through an absolute path.
    let mut l1 = LayerTar::new();
    l1.dir("d").symlink("d/s", "/d/s");
    let mut l2 = LayerTar::new();
    l2.file("d/s/x", b"x");
    assert_fails!(
        [l1.finish(), l2.finish()],
        EntryError::Tree(d2l_rootfs::Error::SymlinkLoop)
    );
    // A link that grows itself.
    let mut l1 = LayerTar::new();
    l1.symlink("g", "g/g");
    let mut l2 = LayerTar::new();
    l2.file("g/x", b"x");
    assert_fails!(
        [l1.finish(), l2.finish()],
        EntryError::Tree(d2l_rootfs::Error::SymlinkLoop)
    );
    // In the same layer.
    let mut l = LayerTar::new();
    l.symlink("p", "q").symlink("q", "p").file("p/x", b"x");
    assert_fails!(
        [l.finish()],
        EntryError::Tree(d2l_rootfs::Error::SymlinkLoop)
    );
}

#[test]
fn paths_255_symlink_hops_resolve_256_are_a_loop() {
    fn chain(n: usize) -> Vec<u8> {
        let mut l = LayerTar::new();
        l.dir("d");
        for i in 0..n {
            let target = if i + 1 == n {
                "d".to_string()
            } else {
                format!("s{}", i + 1)
            };
            l.symlink(&format!("s{i}"), &target);
        }
        l.file("s0/x", b"x");
        l.finish()
    }
    let a = apply(&[chain(255)]);
    assert_eq!(content(&a, "d/x"), b"x");
    assert_fails!(
        [chain(256)],
        EntryError::Tree(d2l_rootfs::Error::SymlinkLoop)
    );
}

#[test]
fn paths_last_component_is_never_followed() {
    let mut l1 = LayerTar::new();
    l1.file("t", b"target")
        .symlink("s", "t")
        .dir("real")
        .file("real/keep", b"k")
        .symlink("sd", "real")
        .symlink("s2", "t");
    let mut l2 = LayerTar::new();
    l2.file("s", b"new").fifo("sd").symlink("s2", "real");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "real dir 0755 0:0 1",
            "real/keep file 0644 0:0 1 \"k\"",
            "s file 0644 0:0 1 \"new\"",
            "s2 symlink 0777 0:0 1 -> real",
            "sd fifo 0644 0:0 1",
            "t file 0644 0:0 1 \"target\"",
        ])
    );
}

#[test]
fn paths_parent_that_is_a_file_is_an_error() {
    let mut l1 = LayerTar::new();
    l1.file("f", b"f").symlink("lf", "f");
    let mut l2 = LayerTar::new();
    l2.file("f/x", b"x");
    assert_fails!(
        [l1.finish(), l2.finish()],
        EntryError::Tree(d2l_rootfs::Error::ParentNotDirectory(_))
    );
    let mut l2 = LayerTar::new();
    l2.file("lf/x", b"x");
    assert_fails!(
        [l1.finish(), l2.finish()],
        EntryError::Tree(d2l_rootfs::Error::ParentNotDirectory(_))
    );
}
