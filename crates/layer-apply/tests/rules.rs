//! Crafted-layer tests of layer application: one test per rule of
//! `shared/notes/layer-semantics.md` (sections Paths, Whiteouts, Entries, Hardlinks), each
//! applying small hand-made tar streams and asserting the exact resulting tree.
//!
//! Trees are compared as listings, one line per name in walk order (each directory's entries
//! in byte order, parents first), the root first as "." (without nlink: it has no name):
//! `path type mode uid:gid nlink [detail] [xattrs]`, where the detail is the content of a small
//! file (`"..."`, escaped) or `size=N`, ` -> target` for a symlink, `major:minor` for a device.
//! Every applied tree is also checked for consistency: each live inode is reachable, its link
//! count equals its number of names, and file extents are sorted, non-empty and inside the file.

use std::collections::HashMap;

use d2l_layer_apply::{Applier, ApplyOptions, EntryError, EntryFailure, XattrPolicy};
use d2l_rootfs::{Inode, InodeId, InodeKind, SpillFile, SpillReader, Timestamp, Tree};
use d2l_testkit::layer::{gnu_sparse_tar, pattern, LayerTar};
use tar::Header;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// mtime the builder gives entries unless told otherwise.
const BUILDER_MTIME: i64 = 1_700_000_000;

/// A finished rootfs: the tree, the stored file data, and the store's counters.
struct Applied {
    tree: Tree,
    data: SpillReader,
    /// Bytes written to the store (released ones included).
    stored: u64,
    /// Bytes the store was told are dead.
    released: u64,
}

/// Applies `layers` as layers 1, 2, 3... with `options`; on failure, the failing layer's
/// number and the failure.
fn try_apply_with(
    options: ApplyOptions,
    layers: &[Vec<u8>],
) -> Result<Applied, (u32, EntryFailure)> {
    let mut rootfs = Applier::new(SpillFile::new().expect("spill file"), options);
    for (i, layer) in layers.iter().enumerate() {
        let number = u32::try_from(i).unwrap() + 1;
        rootfs
            .apply_layer(number, &layer[..])
            .map_err(|failure| (number, failure))?;
    }
    let (tree, store) = rootfs.finish().expect("finish").into_parts();
    let stored = store.len();
    let released = store.released();
    let data = store.into_reader().expect("spill reader");
    check_invariants(&tree);
    Ok(Applied {
        tree,
        data,
        stored,
        released,
    })
}

/// Applies `layers` with `options`, panicking on a failure.
fn apply_with(options: ApplyOptions, layers: &[Vec<u8>]) -> Applied {
    try_apply_with(options, layers).unwrap_or_else(|(layer, f)| {
        panic!(
            "layer {layer}: entry {:?} at offset {}: {:?}",
            f.path, f.offset, f.error
        )
    })
}

/// Applies `layers` with default options, panicking on a failure.
fn apply(layers: &[Vec<u8>]) -> Applied {
    apply_with(ApplyOptions::default(), layers)
}

/// Applies `layers` expecting a failure in the last one; returns its error.
fn apply_err_with(options: ApplyOptions, layers: &[Vec<u8>]) -> EntryError {
    match try_apply_with(options, layers) {
        Ok(applied) => panic!("expected an error, got the tree {:#?}", listing(&applied)),
        Err((layer, failure)) => {
            assert_eq!(
                layer as usize,
                layers.len(),
                "the failure is in an earlier layer than expected: {failure:?}"
            );
            failure.error
        }
    }
}

fn apply_err(layers: &[Vec<u8>]) -> EntryError {
    apply_err_with(ApplyOptions::default(), layers)
}

/// Asserts that applying the layers fails in the last layer with an error matching `pattern`.
macro_rules! assert_fails {
    ($layers:expr, $pattern:pat) => {
        assert_fails!(ApplyOptions::default(), $layers, $pattern)
    };
    ($options:expr, $layers:expr, $pattern:pat) => {{
        let error = apply_err_with($options, &$layers);
        assert!(
            matches!(error, $pattern),
            "expected {}, got {:?}",
            stringify!($pattern),
            error
        );
    }};
}

/// Checks that the tree is consistent: every live inode but the root has a name, link
/// counts equal the number of names, file extents are sorted, non-empty and in the file.
fn check_invariants(tree: &Tree) {
    let mut names: HashMap<InodeId, u32> = HashMap::new();
    let mut walk = tree.walk();
    while let Some(entry) = walk.next_entry() {
        *names.entry(entry.inode).or_default() += 1;
    }
    assert_eq!(
        names.len() + 1,
        tree.inode_count(),
        "live inodes that no name reaches (leaked) or names of freed inodes"
    );
    for (id, count) in names {
        let inode = tree.inode(id);
        assert_eq!(inode.link_count(), count, "link count of inode {id:?}");
        if let Some(file) = inode.as_file() {
            let mut end = 0;
            for extent in &file.extents {
                assert!(extent.len > 0, "empty extent");
                assert!(extent.file_offset >= end, "extents overlap or are unsorted");
                end = extent.file_offset + extent.len;
            }
            assert!(end <= file.size, "extent past the end of the file");
        }
    }
}

/// One listing line for `inode` named `path` (`nlink` false for the root, which has no name).
fn line(applied: &Applied, path: &str, inode: &Inode, nlink: bool) -> String {
    let (kind, detail) = match &inode.kind {
        InodeKind::Directory(_) => ("dir", String::new()),
        InodeKind::File(file) => {
            let detail = if file.size <= 64 {
                let content = read_inode(applied, inode);
                format!(" \"{}\"", content.escape_ascii())
            } else {
                format!(" size={}", file.size)
            };
            ("file", detail)
        }
        InodeKind::Symlink(target) => ("symlink", format!(" -> {}", target.escape_ascii())),
        InodeKind::CharDevice(d) => ("char", format!(" {}:{}", d.major, d.minor)),
        InodeKind::BlockDevice(d) => ("block", format!(" {}:{}", d.major, d.minor)),
        InodeKind::Fifo => ("fifo", String::new()),
    };
    let mut out = format!(
        "{path} {kind} {:04o} {}:{}",
        inode.mode, inode.uid, inode.gid
    );
    if nlink {
        out.push_str(&format!(" {}", inode.link_count()));
    }
    out.push_str(&detail);
    if !inode.xattrs.is_empty() {
        let xattrs: Vec<String> = inode
            .xattrs
            .iter()
            .map(|(name, value)| format!("{}={}", name.escape_ascii(), value.escape_ascii()))
            .collect();
        out.push_str(&format!(" [{}]", xattrs.join(",")));
    }
    out
}

/// The tree as lines, the root first, then every name in walk order.
fn listing(applied: &Applied) -> Vec<String> {
    let tree = &applied.tree;
    let mut lines = vec![line(applied, ".", tree.inode(tree.root()), false)];
    let mut walk = tree.walk();
    while let Some(entry) = walk.next_entry() {
        let path = entry.path.escape_ascii().to_string();
        lines.push(line(applied, &path, tree.inode(entry.inode), true));
    }
    lines
}

/// Every path with its mtime, root first, in walk order.
fn mtimes(applied: &Applied) -> Vec<(String, Timestamp)> {
    let tree = &applied.tree;
    let mut out = vec![(".".to_string(), tree.inode(tree.root()).mtime)];
    let mut walk = tree.walk();
    while let Some(entry) = walk.next_entry() {
        out.push((
            entry.path.escape_ascii().to_string(),
            tree.inode(entry.inode).mtime,
        ));
    }
    out
}

fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|s| s.to_string()).collect()
}

/// A file inode's content: its extents read from the store, holes as zeros.
fn read_inode(applied: &Applied, inode: &Inode) -> Vec<u8> {
    let file = inode.as_file().expect("a regular file");
    let mut content = vec![0u8; usize::try_from(file.size).unwrap()];
    for extent in &file.extents {
        let start = usize::try_from(extent.file_offset).unwrap();
        let end = start + usize::try_from(extent.len).unwrap();
        applied
            .data
            .read_exact_at(&mut content[start..end], extent.store_offset)
            .expect("read extent");
    }
    content
}

/// The inode at `path` (not following symlinks); panics if missing.
fn inode_at(applied: &Applied, path: &str) -> InodeId {
    applied
        .tree
        .lookup(path.as_bytes())
        .unwrap_or_else(|| panic!("{path} is missing"))
}

fn inode<'a>(applied: &'a Applied, path: &str) -> &'a Inode {
    applied.tree.inode(inode_at(applied, path))
}

/// The content of the regular file at `path`.
fn content(applied: &Applied, path: &str) -> Vec<u8> {
    read_inode(applied, inode(applied, path))
}

/// Extents of the file at `path` as (file offset, length) pairs.
fn extents(applied: &Applied, path: &str) -> Vec<(u64, u64)> {
    inode(applied, path)
        .as_file()
        .expect("a regular file")
        .extents
        .iter()
        .map(|e| (e.file_offset, e.len))
        .collect()
}

fn ts(seconds: i64, nanoseconds: u32) -> Timestamp {
    Timestamp {
        seconds,
        nanoseconds,
    }
}

/// Appends a header of type `kind` named `path` with `link` as link name.
fn link_entry(layer: &mut LayerTar, path: &str, kind: u8, link: &str) {
    let mut h = layer.header_for(path.as_bytes(), kind, 0o777, 0);
    h.set_link_name_literal(link.as_bytes()).unwrap();
    layer.raw(h, &[]);
}

/// Appends an entry with the given header tweak applied.
fn entry_with(
    layer: &mut LayerTar,
    path: &str,
    kind: u8,
    mode: u32,
    data: &[u8],
    tweak: impl FnOnce(&mut Header),
) {
    let mut h = layer.header_for(path.as_bytes(), kind, mode, data.len() as u64);
    tweak(&mut h);
    layer.raw(h, data);
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Whiteouts
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Entries
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Sparse files, made by the system's GNU tar
// ---------------------------------------------------------------------------------------------

/// Makes `d/sparse.img` of `size` bytes with data at `runs` (offset, length; 4 KiB aligned so
/// the filesystem reports exactly those runs) and archives `d` with GNU tar and `args`.
fn sparse_archive(args: &[&str], size: u64, runs: &[(u64, u64)]) -> Vec<u8> {
    gnu_sparse_tar(args, "sparse.img", size, runs)
}

/// Applies a sparse archive and checks the tree: only `d` and `d/sparse.img`, the right size,
/// extents exactly the data runs, holes reading as zeros.
fn check_sparse(args: &[&str], size: u64, runs: &[(u64, u64)]) {
    let archive = sparse_archive(args, size, runs);
    let a = apply(&[archive]);
    let mut paths = Vec::new();
    let mut walk = a.tree.walk();
    while let Some(entry) = walk.next_entry() {
        paths.push(entry.path.escape_ascii().to_string());
    }
    assert_eq!(paths, ["d", "d/sparse.img"], "{args:?}");
    let file = inode(&a, "d/sparse.img").as_file().unwrap();
    assert_eq!(file.size, size, "{args:?}");
    assert_eq!(extents(&a, "d/sparse.img"), runs, "{args:?}");
    let stored: u64 = runs.iter().map(|r| r.1).sum();
    assert_eq!(file.stored_bytes(), stored);
    assert_eq!(a.stored, stored, "only the data runs are stored");
    if size <= 64 << 20 {
        let mut expected = vec![0u8; size as usize];
        for &(offset, len) in runs {
            expected[offset as usize..(offset + len) as usize]
                .copy_from_slice(&pattern(offset, len));
        }
        assert!(content(&a, "d/sparse.img") == expected, "{args:?}: content");
    } else {
        for &(offset, len) in runs {
            let extent = file
                .extents
                .iter()
                .find(|e| e.file_offset == offset)
                .unwrap();
            let mut buf = vec![0u8; len as usize];
            a.data.read_exact_at(&mut buf, extent.store_offset).unwrap();
            assert!(buf == pattern(offset, len), "{args:?}: run at {offset}");
        }
    }
}

const GNU: &[&str] = &["--format=gnu", "--sparse"];
const PAX_0_0: &[&str] = &["--format=pax", "--sparse", "--sparse-version=0.0"];
const PAX_0_1: &[&str] = &["--format=pax", "--sparse", "--sparse-version=0.1"];
const PAX_1_0: &[&str] = &["--format=pax", "--sparse", "--sparse-version=1.0"];

/// Holes at the start, between runs and at the end.
const FEW_RUNS: &[(u64, u64)] = &[(65_536, 4096), (409_600, 8192)];

/// Data at the start and at the very end.
const EDGE_RUNS: &[(u64, u64)] = &[(0, 4096), (1 << 20, 4096), ((2 << 20) - 4096, 4096)];

/// Forty runs: GNU tar needs two extension blocks; the PAX 1.0 map spans two blocks.
fn many_runs() -> Vec<(u64, u64)> {
    (0..40).map(|i| (i * 65_536 + 8192, 4096)).collect()
}

#[test]
fn sparse_gnu_format_is_expanded() {
    check_sparse(GNU, 1 << 20, FEW_RUNS);
    check_sparse(GNU, 2 << 20, EDGE_RUNS);
    check_sparse(GNU, 40 << 16, &many_runs());
    check_sparse(GNU, 1 << 20, &[]);
}

#[test]
fn sparse_pax_0_0_is_expanded() {
    check_sparse(PAX_0_0, 1 << 20, FEW_RUNS);
    check_sparse(PAX_0_0, 2 << 20, EDGE_RUNS);
    check_sparse(PAX_0_0, 40 << 16, &many_runs());
}

#[test]
fn sparse_pax_0_1_is_expanded() {
    check_sparse(PAX_0_1, 1 << 20, FEW_RUNS);
    check_sparse(PAX_0_1, 2 << 20, EDGE_RUNS);
    check_sparse(PAX_0_1, 40 << 16, &many_runs());
    check_sparse(PAX_0_1, 1 << 20, &[]);
}

#[test]
fn sparse_pax_1_0_is_expanded() {
    check_sparse(PAX_1_0, 1 << 20, FEW_RUNS);
    check_sparse(PAX_1_0, 2 << 20, EDGE_RUNS);
    check_sparse(PAX_1_0, 40 << 16, &many_runs());
    check_sparse(PAX_1_0, 1 << 20, &[]);
}

/// Runs past 8 GiB: GNU tar writes their offsets in base-256, in the header's four slots and
/// in the extension blocks alike.
fn runs_past_8_gib() -> Vec<(u64, u64)> {
    (9..15).map(|gib| (gib << 30, 4096)).collect()
}

#[test]
fn sparse_gnu_format_with_offsets_over_8_gib() {
    // Three runs and GNU tar's zero-length end marker fit in the header's four slots...
    check_sparse(GNU, 20 << 30, &runs_past_8_gib()[..3]);
    // ...six need an extension block, whose base-256 numbers must be read too.
    check_sparse(GNU, 20 << 30, &runs_past_8_gib());
}

#[test]
fn sparse_pax_with_offsets_over_8_gib() {
    check_sparse(PAX_0_1, 20 << 30, &runs_past_8_gib());
    check_sparse(PAX_1_0, 20 << 30, &runs_past_8_gib());
}

// ---------------------------------------------------------------------------------------------
// Xattrs
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Existing paths
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Hard links
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Deleted data
// ---------------------------------------------------------------------------------------------

#[test]
fn deleted_data_is_released() {
    let mut l1 = LayerTar::new();
    l1.file("a", b"aaaa")
        .file("b", b"bbbbbbbb")
        .dir("d")
        .file("d/c", b"cc")
        .dir("e")
        .file("e/x", b"xxx")
        .file("f", b"f")
        .file("g", b"g");
    let mut l2 = LayerTar::new();
    l2.file("a", b"A")
        .whiteout("b")
        .whiteout("d")
        .opaque("e")
        .file("g", b"G1")
        .file("g", b"G2");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 1 \"A\"",
            "e dir 0755 0:0 1",
            "f file 0644 0:0 1 \"f\"",
            "g file 0644 0:0 1 \"G2\"",
        ])
    );
    assert_eq!(a.stored, 4 + 8 + 2 + 3 + 1 + 1 + 1 + 2 + 2);
    // a, b, d/c, e/x, g and the first G1.
    assert_eq!(a.released, 4 + 8 + 2 + 3 + 1 + 2);
    // What is left is exactly the live files' data.
    let live: u64 = a
        .tree
        .inodes()
        .filter_map(|(_, i)| i.as_file())
        .map(|f| f.stored_bytes())
        .sum();
    assert_eq!(a.stored - a.released, live);
}
