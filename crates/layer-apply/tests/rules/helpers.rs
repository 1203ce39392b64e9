//! What every rules test shares: applying crafted layers, listing trees, reading files.

pub(crate) use d2l_layer_apply::{Applier, ApplyOptions, EntryError, EntryFailure, XattrPolicy};
pub(crate) use d2l_rootfs::{Inode, InodeId, InodeKind, SpillFile, SpillReader, Timestamp, Tree};
pub(crate) use d2l_testkit::layer::{gnu_sparse_tar, pattern, LayerTar};
pub(crate) use std::collections::HashMap;
pub(crate) use tar::Header;

/// mtime the builder gives entries unless told otherwise.
pub(crate) const BUILDER_MTIME: i64 = 1_700_000_000;

/// A finished rootfs: the tree, the stored file data, and the store's counters.
pub(crate) struct Applied {
    pub(crate) tree: Tree,
    pub(crate) data: SpillReader,
    /// Bytes written to the store (released ones included).
    pub(crate) stored: u64,
    /// Bytes the store was told are dead.
    pub(crate) released: u64,
}

/// Applies `layers` as layers 1, 2, 3... with `options`; on failure, the failing layer's
/// number and the failure.
pub(crate) fn try_apply_with(
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
pub(crate) fn apply_with(options: ApplyOptions, layers: &[Vec<u8>]) -> Applied {
    try_apply_with(options, layers).unwrap_or_else(|(layer, f)| {
        panic!(
            "layer {layer}: entry {:?} at offset {}: {:?}",
            f.path, f.offset, f.error
        )
    })
}

/// Applies `layers` with default options, panicking on a failure.
pub(crate) fn apply(layers: &[Vec<u8>]) -> Applied {
    apply_with(ApplyOptions::default(), layers)
}

/// Applies `layers` expecting a failure in the last one; returns its error.
pub(crate) fn apply_err_with(options: ApplyOptions, layers: &[Vec<u8>]) -> EntryError {
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

pub(crate) fn apply_err(layers: &[Vec<u8>]) -> EntryError {
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
pub(crate) fn check_invariants(tree: &Tree) {
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
pub(crate) fn line(applied: &Applied, path: &str, inode: &Inode, nlink: bool) -> String {
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
pub(crate) fn listing(applied: &Applied) -> Vec<String> {
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
pub(crate) fn mtimes(applied: &Applied) -> Vec<(String, Timestamp)> {
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

pub(crate) fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|s| s.to_string()).collect()
}

/// A file inode's content: its extents read from the store, holes as zeros.
pub(crate) fn read_inode(applied: &Applied, inode: &Inode) -> Vec<u8> {
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
pub(crate) fn inode_at(applied: &Applied, path: &str) -> InodeId {
    applied
        .tree
        .lookup(path.as_bytes())
        .unwrap_or_else(|| panic!("{path} is missing"))
}

pub(crate) fn inode<'a>(applied: &'a Applied, path: &str) -> &'a Inode {
    applied.tree.inode(inode_at(applied, path))
}

/// The content of the regular file at `path`.
pub(crate) fn content(applied: &Applied, path: &str) -> Vec<u8> {
    read_inode(applied, inode(applied, path))
}

/// Extents of the file at `path` as (file offset, length) pairs.
pub(crate) fn extents(applied: &Applied, path: &str) -> Vec<(u64, u64)> {
    inode(applied, path)
        .as_file()
        .expect("a regular file")
        .extents
        .iter()
        .map(|e| (e.file_offset, e.len))
        .collect()
}

pub(crate) fn ts(seconds: i64, nanoseconds: u32) -> Timestamp {
    Timestamp {
        seconds,
        nanoseconds,
    }
}

/// Appends a header of type `kind` named `path` with `link` as link name.
pub(crate) fn link_entry(layer: &mut LayerTar, path: &str, kind: u8, link: &str) {
    let mut h = layer.header_for(path.as_bytes(), kind, 0o777, 0);
    h.set_link_name_literal(link.as_bytes()).unwrap();
    layer.raw(h, &[]);
}

/// Appends an entry with the given header tweak applied.
pub(crate) fn entry_with(
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

pub(crate) use assert_fails;
