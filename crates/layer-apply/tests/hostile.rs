//! Hostile layers and trees (issue 13): deep directories, paths and link targets at and past
//! their limits, metadata that piles up over extension headers, extreme times, errors that
//! must name the entry, and sparse files on export. Each limit is tested at its value and one
//! past it.

use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;

use d2l_layer_apply::{
    write_tar, write_tar_to_file, Applier, ApplyOptions, EntryError, EntryFailure, MAX_DEPTH,
    MAX_ENTRY_METADATA, MAX_EXPORT_RUNS, MAX_INODES, MAX_PATH_LEN, MAX_XATTR_BYTES,
};
use d2l_rootfs::{
    ContentStore, DataExtent, Directory, FileData, InodeId, InodeKind, Metadata, Rootfs, SpillFile,
    SpillReader, Timestamp, Tree, ROOT,
};
use d2l_testkit::layer::{pattern, LayerTar};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Applies `layers` as layers 1, 2... on `rootfs`; the failure of the first bad entry.
fn apply_on(
    rootfs: Rootfs<SpillFile>,
    layers: &[Vec<u8>],
) -> Result<Rootfs<SpillFile>, EntryFailure> {
    let mut applier = Applier::on(rootfs, ApplyOptions::default());
    for (i, layer) in layers.iter().enumerate() {
        let number = u32::try_from(i).unwrap() + 1;
        applier.apply_layer(number, &layer[..])?;
    }
    Ok(applier.finish().expect("finish"))
}

fn empty() -> Rootfs<SpillFile> {
    Rootfs::new(SpillFile::new().unwrap(), Timestamp::default())
}

fn apply(layers: &[Vec<u8>]) -> Result<Rootfs<SpillFile>, EntryFailure> {
    apply_on(empty(), layers)
}

/// The failure of applying `layers`, which must fail.
fn failure(layers: &[Vec<u8>]) -> EntryFailure {
    match apply(layers) {
        Ok(_) => panic!("expected a failure"),
        Err(f) => f,
    }
}

fn finished(rootfs: Rootfs<SpillFile>) -> (Tree, SpillReader) {
    let (tree, store) = rootfs.into_parts();
    (tree, store.into_reader().unwrap())
}

/// A writer that counts bytes and keeps none.
#[derive(Default)]
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer that keeps what it is given, up to 4 MiB, and fails past that.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > 4 << 20 {
            return Err(io::Error::other("more than 4 MiB written"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `f` on a thread with a small stack (256 KiB): anything that recursed once per level
/// of a 10,000-level tree would overflow it.
fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn_scoped(scope, f)
            .unwrap()
            .join()
            .expect("no stack overflow")
    })
}

/// `n` components of `name`, joined by "/".
fn nested(name: &str, n: usize) -> String {
    vec![name; n].join("/")
}

/// A PAX payload of exactly `n` bytes (n >= 20): one `comment` record, which readers ignore.
fn pax_payload(n: usize) -> Vec<u8> {
    let digits = n.to_string().len();
    let value = n - digits - " comment=\n".len();
    let mut p = format!("{n} comment=").into_bytes();
    p.resize(p.len() + value, b'c');
    p.push(b'\n');
    assert_eq!(p.len(), n);
    p
}

/// A PAX extended header whose payload is `payload`, appended to `layer`.
fn raw_pax(layer: &mut LayerTar, payload: &[u8]) {
    let h = layer.header_for(b"././@PaxHeader", b'x', 0o644, payload.len() as u64);
    layer.raw(h, payload);
}

// ---------------------------------------------------------------------------------------------
// Deep directories
// ---------------------------------------------------------------------------------------------

/// Levels of the deep lower tree: far past MAX_DEPTH, which layers cannot reach, so the tree
/// is made through the tree API (as any producer of a tree could) and layers go on top.
const DEEP: usize = 10_000;

fn deep_rootfs() -> Rootfs<SpillFile> {
    let mut rootfs = empty();
    let mut dir = ROOT;
    for level in 0..DEEP {
        let meta = Metadata {
            mode: 0o755,
            ..Metadata::default()
        };
        let id = rootfs
            .tree_mut()
            .alloc(InodeKind::Directory(Directory::default()), meta.clone());
        let name: &[u8] = if level == 0 { b"top" } else { b"d" };
        // Layer 0: below every layer applied on top.
        rootfs.link(dir, name, id, 0).unwrap();
        dir = id;
        if level == DEEP - 1 {
            let data = b"bottom";
            let offset = rootfs
                .store_mut()
                .store(0, data.len() as u64, &mut &data[..])
                .unwrap();
            let file = rootfs.tree_mut().alloc(
                InodeKind::File(FileData {
                    size: data.len() as u64,
                    extents: vec![DataExtent {
                        file_offset: 0,
                        len: data.len() as u64,
                        store_offset: offset,
                    }],
                }),
                meta,
            );
            rootfs.link(dir, b"f", file, 0).unwrap();
        }
    }
    rootfs
}

#[test]
fn a_whiteout_over_a_10000_level_lower_tree_costs_no_stack() {
    on_small_stack(|| {
        let rootfs = deep_rootfs();
        // Walk and export the deep tree: iterative, path buffers on the heap.
        let (tree, data) = finished(rootfs);
        let mut walk = tree.walk();
        let mut names = 0;
        let mut deepest = 0;
        while let Some(entry) = walk.next_entry() {
            names += 1;
            deepest = deepest.max(entry.path.len());
        }
        assert_eq!(names, DEEP + 1);
        assert_eq!(deepest, "top".len() + 2 * (DEEP - 1) + 2);
        let mut count = Count::default();
        let stats = write_tar(&tree, &data, &mut count).unwrap();
        assert_eq!(stats.entries, DEEP as u64 + 1);
        drop((tree, data));

        // A whiteout of the top removes all of it; an opaque marker likewise.
        let mut whiteout = LayerTar::new();
        whiteout.whiteout("top").file("after", b"x");
        let (tree, _) = finished(apply_on(deep_rootfs(), &[whiteout.finish()]).unwrap());
        assert_eq!(tree.inode_count(), 2, "root and `after` only");
        let mut opaque = LayerTar::new();
        opaque.dir("top").opaque("top");
        let (tree, _) = finished(apply_on(deep_rootfs(), &[opaque.finish()]).unwrap());
        assert_eq!(tree.inode_count(), 2, "root and an empty `top`");

        // Replacing the top with a file frees the whole chain (drop_name), and so does
        // dropping the tree.
        let mut replace = LayerTar::new();
        replace.file("top", b"now a file");
        let (tree, _) = finished(apply_on(deep_rootfs(), &[replace.finish()]).unwrap());
        assert_eq!(tree.inode_count(), 2);
        drop(deep_rootfs());
    });
}

#[test]
fn a_whiteout_over_the_deepest_lower_tree_a_layer_can_make() {
    on_small_stack(|| {
        let mut lower = LayerTar::new();
        lower.file(&format!("{}/f", nested("a", MAX_DEPTH - 1)), b"deep");
        let mut upper = LayerTar::new();
        upper.whiteout("a");
        let (tree, _) = finished(apply(&[lower.finish(), upper.finish()]).unwrap());
        assert_eq!(tree.inode_count(), 1);
    });
}

#[test]
fn path_length_at_and_past_max_path_len() {
    // 16 components of 255 bytes and 15 slashes: 4095 bytes.
    let at = nested(&"x".repeat(255), 16);
    assert_eq!(at.len(), MAX_PATH_LEN);
    let mut layer = LayerTar::new();
    layer.file(&at, b"ok");
    let (tree, _) = finished(apply(&[layer.finish()]).unwrap());
    assert!(tree.lookup(at.as_bytes()).is_some());

    // Components within NAME_MAX, the whole one byte over.
    let past = format!(
        "{}/{}/{}",
        nested(&"x".repeat(255), 15),
        "y".repeat(200),
        "z".repeat(55)
    );
    assert_eq!(past.len(), MAX_PATH_LEN + 1);
    let mut layer = LayerTar::new();
    layer.file(&past, b"no");
    let f = failure(&[layer.finish()]);
    assert_eq!(f.path, past, "the error names the entry");
    assert!(
        matches!(f.error, EntryError::Tree(d2l_rootfs::Error::PathTooLong(n)) if n == MAX_PATH_LEN + 1),
        "{:?}",
        f.error
    );
    let message = f.error.to_string();
    assert!(
        message.contains("4096 bytes") && message.contains("4095"),
        "{message}"
    );
}

#[test]
fn path_length_counts_where_symlinks_lead() {
    // `s` leads to a directory whose path is 3839 bytes long: `s/NAME` lands at 3840 + NAME.
    let deep = nested(&"x".repeat(255), 15);
    assert_eq!(deep.len(), 3839);
    let room = MAX_PATH_LEN - deep.len() - 1;
    assert_eq!(room, 255);
    let mut layer = LayerTar::new();
    layer.dir(&deep).symlink("s", &format!("/{deep}"));
    layer.file(&format!("s/{}", "n".repeat(room)), b"at the limit");
    let (tree, _) = finished(apply(&[layer.finish()]).unwrap());
    assert!(tree
        .lookup(format!("{deep}/{}", "n".repeat(room)).as_bytes())
        .is_some());

    // One more level of a one-byte name, through the symlink: 4097 bytes where it lands.
    let mut layer = LayerTar::new();
    layer.dir(&deep).symlink("s", &format!("/{deep}"));
    let entry = format!("s/{}/m", "n".repeat(room - 1));
    layer.file(&entry, b"past");
    let f = failure(&[layer.finish()]);
    assert_eq!(f.path, entry);
    assert!(
        matches!(
            f.error,
            EntryError::Tree(d2l_rootfs::Error::PathTooLong(4096))
        ),
        "{:?}",
        f.error
    );
}

#[test]
fn depth_at_and_past_max_depth() {
    let at = nested("a", MAX_DEPTH);
    let mut layer = LayerTar::new();
    layer.file(&at, b"deepest");
    let (tree, _) = finished(apply(&[layer.finish()]).unwrap());
    assert!(tree.lookup(at.as_bytes()).is_some());

    let past = nested("a", MAX_DEPTH + 1);
    let mut layer = LayerTar::new();
    layer.file(&past, b"too deep");
    let f = failure(&[layer.finish()]);
    assert_eq!(f.path, past);
    assert!(
        matches!(f.error, EntryError::Tree(d2l_rootfs::Error::TooDeep(n)) if n == MAX_DEPTH + 1),
        "{:?}",
        f.error
    );
    assert!(f.error.to_string().contains("1025"), "{}", f.error);
}

#[test]
fn depth_counts_where_symlinks_lead() {
    // `s` leads 500 levels down: an entry 525 components deep lands 1024 deep.
    let step = nested("b", 500);
    let mut layer = LayerTar::new();
    layer.dir(&step).symlink("s", &format!("/{step}"));
    let at = format!("s/{}", nested("c", MAX_DEPTH - 500));
    layer.file(&at, b"at");
    let (tree, _) = finished(apply(&[layer.finish()]).unwrap());
    let landed = format!("{step}/{}", nested("c", MAX_DEPTH - 500));
    assert!(tree.lookup(landed.as_bytes()).is_some());

    let mut layer = LayerTar::new();
    layer.dir(&step).symlink("s", &format!("/{step}"));
    let past = format!("s/{}", nested("c", MAX_DEPTH - 500 + 1));
    layer.file(&past, b"past");
    let f = failure(&[layer.finish()]);
    assert_eq!(f.path, past);
    assert!(
        matches!(f.error, EntryError::Tree(d2l_rootfs::Error::TooDeep(n)) if n == MAX_DEPTH + 1),
        "{:?}",
        f.error
    );
}

#[test]
fn a_megabyte_path_is_cut_in_the_error() {
    let long = "p/".repeat(1 << 19);
    let mut layer = LayerTar::new();
    layer.file(&long, b"");
    let f = failure(&[layer.finish()]);
    assert!(
        f.path.len() < 2 * MAX_PATH_LEN + 100,
        "{} bytes",
        f.path.len()
    );
    assert!(f.path.starts_with("p/p/") && f.path.ends_with("... (1048576 bytes)"));
    assert!(matches!(
        f.error,
        EntryError::Tree(d2l_rootfs::Error::TooDeep(1025))
    ));
}

#[test]
fn link_targets_at_and_past_max_path_len() {
    let at = "t".repeat(MAX_PATH_LEN);
    let mut layer = LayerTar::new();
    layer.symlink("ok", &at);
    let (tree, _) = finished(apply(&[layer.finish()]).unwrap());
    let ok = tree.inode(tree.lookup(b"ok").unwrap());
    assert!(matches!(&ok.kind, InodeKind::Symlink(t) if t.len() == MAX_PATH_LEN));

    let past = "t".repeat(MAX_PATH_LEN + 1);
    let mut layer = LayerTar::new();
    layer.symlink("bad", &past);
    let f = failure(&[layer.finish()]);
    assert_eq!(f.path, "bad");
    assert!(
        matches!(f.error, EntryError::LinkTargetTooLong(n) if n == MAX_PATH_LEN + 1),
        "{:?}",
        f.error
    );

    // A hard link's target is a path like any other.
    let mut layer = LayerTar::new();
    layer.pax(&[("linkpath", past.as_bytes())]);
    let h = layer.header_for(b"hard", b'1', 0o644, 0);
    layer.raw(h, b"");
    let f = failure(&[layer.finish()]);
    assert_eq!(f.path, "hard");
    assert!(
        matches!(f.error, EntryError::Tree(d2l_rootfs::Error::NameTooLong)),
        "{:?}",
        f.error
    );
}

// ---------------------------------------------------------------------------------------------
// Metadata of one entry
// ---------------------------------------------------------------------------------------------

/// PAX headers totalling `total` payload bytes (in pieces of at most 1 MiB) before `f`.
fn layer_with_metadata(total: u64) -> Vec<u8> {
    let mut layer = LayerTar::new();
    let mut left = usize::try_from(total).unwrap();
    while left > 0 {
        let piece = left.min(1 << 20);
        // A record is at least 20 bytes here: keep the last piece that long.
        let piece = if left - piece > 0 && left - piece < 20 {
            piece - 20
        } else {
            piece
        };
        raw_pax(&mut layer, &pax_payload(piece));
        left -= piece;
    }
    layer.file("f", b"data");
    layer.finish()
}

#[test]
fn metadata_of_one_entry_at_and_past_max_entry_metadata() {
    let (tree, _) = finished(apply(&[layer_with_metadata(MAX_ENTRY_METADATA)]).unwrap());
    assert!(tree.lookup(b"f").is_some());

    let f = failure(&[layer_with_metadata(MAX_ENTRY_METADATA + 1)]);
    assert!(
        matches!(f.error, EntryError::MetadataTooLarge(n) if n == MAX_ENTRY_METADATA + 1),
        "{:?}",
        f.error
    );
}

#[test]
fn one_header_claiming_a_terabyte_of_metadata_is_refused_before_it_is_read() {
    let mut layer = LayerTar::new();
    let h = layer.header_for(b"././@PaxHeader", b'x', 0o644, 1 << 40);
    layer.raw(h, b"");
    let f = failure(&[layer.finish()]);
    assert!(
        matches!(f.error, EntryError::MetadataTooLarge(n) if n == 1 << 40),
        "{:?}",
        f.error
    );
}

#[test]
fn metadata_past_the_limit_names_the_path_from_an_earlier_pax_header() {
    let mut layer = LayerTar::new();
    let first = b"21 path=named/by/pax\n";
    raw_pax(&mut layer, first);
    let mut rest = usize::try_from(MAX_ENTRY_METADATA).unwrap() - first.len() + 1;
    while rest > 0 {
        let piece = rest.min(1 << 20);
        raw_pax(&mut layer, &pax_payload(piece));
        rest -= piece;
    }
    layer.file("f", b"data");
    let f = failure(&[layer.finish()]);
    assert_eq!(f.path, "named/by/pax");
    assert!(
        matches!(f.error, EntryError::MetadataTooLarge(_)),
        "{:?}",
        f.error
    );
}

/// An old GNU sparse entry 'S' with `blocks` extension blocks of zero-length runs.
fn gnu_sparse_with_extension_blocks(blocks: u64, metadata_before: u64) -> Vec<u8> {
    let mut layer = LayerTar::new();
    if metadata_before > 0 {
        raw_pax(
            &mut layer,
            &pax_payload(usize::try_from(metadata_before).unwrap()),
        );
    }
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..6].copy_from_slice(b"sparse");
        gnu.set_real_size(4);
        gnu.isextended[0] = 1;
        gnu.sparse[0].set_offset(0);
        gnu.sparse[0].set_length(4);
    }
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(4);
    h.set_cksum();
    let mut data = h.as_bytes().to_vec();
    for i in 0..blocks {
        let mut block = [0u8; 512];
        // One run of length 0 at offset 4 per block.
        block[..12].copy_from_slice(b"00000000004\0");
        block[12..24].copy_from_slice(b"00000000000\0");
        block[504] = u8::from(i + 1 < blocks);
        data.extend_from_slice(&block);
    }
    data.extend_from_slice(b"data");
    data.resize(data.len().next_multiple_of(512), 0);
    let mut out = layer.unterminated();
    out.extend_from_slice(&data);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[test]
fn gnu_sparse_extension_blocks_count_against_max_entry_metadata() {
    let blocks = MAX_ENTRY_METADATA / 512;
    let at = gnu_sparse_with_extension_blocks(blocks, 0);
    let (tree, _) = finished(apply(&[at]).unwrap());
    assert_eq!(
        tree.inode(tree.lookup(b"sparse").unwrap())
            .as_file()
            .unwrap()
            .size,
        4
    );

    // With 1024 bytes of PAX payload before it, one block too many.
    let past = gnu_sparse_with_extension_blocks(blocks - 1, 513);
    let f = failure(&[past]);
    assert_eq!(f.path, "sparse", "the header's name field");
    assert!(
        matches!(f.error, EntryError::MetadataTooLarge(n) if n == MAX_ENTRY_METADATA + 1),
        "{:?}",
        f.error
    );
}

/// A file with xattrs of `total` bytes (names and values): `user.a` and a value.
fn layer_with_xattrs(total: usize) -> Vec<u8> {
    let name = "user.a";
    let value = vec![b'v'; total - name.len()];
    let mut layer = LayerTar::new();
    layer.pax(&[(&format!("SCHILY.xattr.{name}"), &value[..])]);
    layer.file("dir/with-xattrs", b"x");
    layer.finish()
}

#[test]
fn xattrs_of_one_inode_at_and_past_max_xattr_bytes() {
    let (tree, _) = finished(apply(&[layer_with_xattrs(MAX_XATTR_BYTES)]).unwrap());
    let inode = tree.inode(tree.lookup(b"dir/with-xattrs").unwrap());
    assert_eq!(inode.xattrs[0].1.len(), MAX_XATTR_BYTES - 6);

    let f = failure(&[layer_with_xattrs(MAX_XATTR_BYTES + 1)]);
    assert_eq!(f.path, "dir/with-xattrs");
    assert!(
        matches!(f.error, EntryError::XattrsTooLarge(n) if n == MAX_XATTR_BYTES + 1),
        "{:?}",
        f.error
    );
}

#[test]
fn export_refuses_xattrs_past_max_xattr_bytes_naming_the_path() {
    let export = |total: usize| {
        let mut rootfs = empty();
        let meta = Metadata {
            mode: 0o644,
            xattrs: vec![(
                b"user.a".to_vec().into_boxed_slice(),
                vec![b'v'; total - 6].into_boxed_slice(),
            )],
            ..Metadata::default()
        };
        rootfs.write_file(b"etc/big-xattrs", meta, b"x").unwrap();
        let (tree, data) = finished(rootfs);
        write_tar(&tree, &data, &mut Count::default())
    };
    export(MAX_XATTR_BYTES).unwrap();
    let error = export(MAX_XATTR_BYTES + 1).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("etc/big-xattrs"), "{message}");
    assert!(message.contains("65537"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Times, names in errors
// ---------------------------------------------------------------------------------------------

#[test]
fn extreme_pax_mtimes_clamp_and_malformed_ones_name_the_path() {
    let mut layer = LayerTar::new();
    layer.pax(&[
        ("path", b"dir/bad-time"),
        ("mtime", b"--9223372036854775808"),
    ]);
    layer.file("stand-in", b"");
    let f = failure(&[layer.finish()]);
    assert_eq!(f.path, "dir/bad-time");
    assert!(matches!(f.error, EntryError::BadPax(_)), "{:?}", f.error);

    let mut layer = LayerTar::new();
    layer.pax(&[("mtime", b"-9223372036854775808.5")]);
    layer.file("min", b"");
    layer.pax(&[("mtime", b"99999999999999999999")]);
    layer.file("max", b"");
    let (tree, data) = finished(apply(&[layer.finish()]).unwrap());
    let mtime = |p: &[u8]| tree.inode(tree.lookup(p).unwrap()).mtime;
    assert_eq!(
        mtime(b"min"),
        Timestamp {
            seconds: i64::MIN,
            nanoseconds: 0
        }
    );
    assert_eq!(
        mtime(b"max"),
        Timestamp {
            seconds: i64::MAX,
            nanoseconds: 999_999_999
        }
    );
    // Exported and read back: the same times.
    let mut tar = Vec::new();
    write_tar(&tree, &data, &mut tar).unwrap();
    let (again, _) = finished(apply(&[tar]).unwrap());
    for p in [&b"min"[..], b"max"] {
        assert_eq!(again.inode(again.lookup(p).unwrap()).mtime, mtime(p));
    }
}

#[test]
fn a_size_of_u64_max_on_a_directory_is_truncation_naming_it() {
    // The data of a directory is skipped: data plus padding once overflowed.
    let mut layer = LayerTar::new();
    layer.pax(&[("size", u64::MAX.to_string().as_bytes())]);
    layer.dir("huge");
    let f = failure(&[layer.finish()]);
    assert_eq!(f.path, "huge");
    assert!(matches!(f.error, EntryError::Truncated), "{:?}", f.error);
}

#[test]
fn an_unsupported_entry_type_names_the_entry() {
    let mut layer = LayerTar::new();
    let h = layer.header_for(b"dir/volume-label", b'V', 0o644, 0);
    layer.raw(h, b"");
    let f = failure(&[layer.finish()]);
    assert_eq!(f.path, "dir/volume-label");
    assert!(
        matches!(f.error, EntryError::UnsupportedType(b'V')),
        "{:?}",
        f.error
    );

    // Named by a PAX path when there is one.
    let mut layer = LayerTar::new();
    layer.pax(&[("path", b"from/pax")]);
    let h = layer.header_for(b"stand-in", b'V', 0o644, 0);
    layer.raw(h, b"");
    assert_eq!(failure(&[layer.finish()]).path, "from/pax");

    // A header whose checksum is wrong: its name field, as stored.
    let mut layer = LayerTar::new();
    layer.file("before", b"");
    let mut bad = layer.finish();
    let mut h = LayerTar::new().header_for(b"dir/corrupt", b'0', 0o644, 0);
    h.set_cksum();
    let mut block = h.as_bytes().to_vec();
    block[148] ^= 1;
    bad.splice(512..512, block);
    let f = failure(&[bad]);
    assert_eq!(f.path, "dir/corrupt");
    assert!(matches!(f.error, EntryError::BadHeader(_)), "{:?}", f.error);
}

// ---------------------------------------------------------------------------------------------
// Sparse files on export
// ---------------------------------------------------------------------------------------------

const TIB: u64 = 1 << 40;

/// A rootfs with `big.img`, 1 TiB with three runs of data (the last not at the end: the file
/// ends in a hole), `zeros.bin` (an ordinary file with a run of zero blocks) and
/// `dir/holes-only` (1 GiB, no data at all).
fn sparse_rootfs() -> Rootfs<SpillFile> {
    let mut rootfs = empty();
    let mut extents = Vec::new();
    for (file_offset, len) in big_runs() {
        let bytes = pattern(file_offset, len);
        let store_offset = rootfs
            .store_mut()
            .store(file_offset, len, &mut &bytes[..])
            .unwrap();
        extents.push(DataExtent {
            file_offset,
            len,
            store_offset,
        });
    }
    let meta = Metadata {
        mode: 0o644,
        mtime: Timestamp {
            seconds: 1_700_000_000,
            nanoseconds: 0,
        },
        ..Metadata::default()
    };
    let big = rootfs.tree_mut().alloc(
        InodeKind::File(FileData { size: TIB, extents }),
        meta.clone(),
    );
    rootfs.link(ROOT, b"big.img", big, 1).unwrap();
    rootfs
        .write_file(b"zeros.bin", meta.clone(), &zeros_content())
        .unwrap();
    let dir = rootfs
        .create_dir_all(
            b"dir",
            Metadata {
                mode: 0o755,
                ..meta.clone()
            },
        )
        .unwrap();
    let holes = rootfs.tree_mut().alloc(
        InodeKind::File(FileData {
            size: 1 << 30,
            extents: Vec::new(),
        }),
        meta,
    );
    rootfs.link(dir, b"holes-only", holes, 1).unwrap();
    rootfs
}

fn big_runs() -> Vec<(u64, u64)> {
    vec![(0, 5000), (4096 * 3, 4096), (TIB / 2 + 7, 100_000)]
}

fn zeros_content() -> Vec<u8> {
    let mut v = pattern(0, 8192);
    v.extend(std::iter::repeat_n(0u8, 1 << 20));
    v.extend(pattern(8192, 1000));
    v
}

fn export_to_file(tree: &Tree, data: &SpillReader, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("export.tar");
    let file = std::fs::File::create(&path).unwrap();
    write_tar_to_file(tree, data, &file).unwrap();
    path
}

#[test]
fn export_writes_holes_as_sparse_members_that_gnu_tar_reads_back() {
    let (tree, data) = finished(sparse_rootfs());
    // First into a writer that refuses more than 4 MiB: an export that wrote the holes would
    // fail here rather than fill the disk with a terabyte.
    let mut capped = Capped(Vec::new());
    write_tar(&tree, &data, &mut capped).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let archive = export_to_file(&tree, &data, tmp.path());
    if std::env::var_os("KEEP_ARCHIVE").is_some() {
        std::fs::copy(&archive, "/tmp/sparse-export.tar").unwrap();
    }
    let archive_len = std::fs::metadata(&archive).unwrap().len();
    assert!(
        archive_len < 4 << 20,
        "the archive holds no holes: {archive_len} bytes"
    );

    // The stream export gives the same bytes, and so does a second export.
    let stream = capped.0;
    assert_eq!(stream, std::fs::read(&archive).unwrap());
    let mut again = Vec::new();
    write_tar(&tree, &data, &mut again).unwrap();
    assert_eq!(stream, again);

    // GNU tar lists the real names and sizes.
    let list = std::process::Command::new("tar")
        .env("TZ", "UTC")
        .args(["-tvf"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(!list.contains("GNUSparseFile"), "{list}");
    assert!(list.contains(&format!("{TIB} 2023-11-14")), "{list}");

    // GNU tar extracts them with holes.
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(&out)
        .arg("-xf")
        .arg(&archive)
        .status()
        .unwrap();
    assert!(status.success());
    let big = std::fs::File::open(out.join("big.img")).unwrap();
    let meta = big.metadata().unwrap();
    assert_eq!(meta.len(), TIB);
    assert!(
        meta.blocks() * 512 < 8 << 20,
        "1 TiB extracted into {} bytes of disk",
        meta.blocks() * 512
    );
    use std::os::unix::fs::FileExt;
    let read = |offset: u64, len: u64| {
        let mut buf = vec![0u8; usize::try_from(len).unwrap()];
        big.read_exact_at(&mut buf, offset).unwrap();
        buf
    };
    for (offset, len) in big_runs() {
        assert!(
            read(offset, len) == pattern(offset, len),
            "data at {offset}"
        );
        // The bytes around each run are holes: zero.
        if offset > 0 {
            assert_eq!(read(offset - 1, 1), [0]);
        }
        assert_eq!(read(offset + len, 1), [0]);
    }
    assert!(read(TIB - 4096, 4096).iter().all(|&b| b == 0));
    let zeros = std::fs::read(out.join("zeros.bin")).unwrap();
    assert!(zeros == zeros_content());
    let holes = std::fs::metadata(out.join("dir/holes-only")).unwrap();
    assert_eq!(holes.len(), 1 << 30);
    assert!(holes.blocks() * 512 < 1 << 20);

    // And d2l reads its own export back to the same tree.
    let mut tar = Vec::new();
    std::fs::File::open(&archive)
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    let (back, _) = finished(apply(&[tar]).unwrap());
    let file = |t: &Tree, p: &[u8]| t.inode(t.lookup(p).unwrap()).as_file().unwrap().clone();
    let runs = |f: &FileData| {
        f.extents
            .iter()
            .map(|e| (e.file_offset, e.len))
            .collect::<Vec<_>>()
    };
    for p in [&b"big.img"[..], b"zeros.bin", b"dir/holes-only"] {
        let (a, b) = (file(&tree, p), file(&back, p));
        assert_eq!(a.size, b.size);
    }
    assert_eq!(runs(&file(&back, b"dir/holes-only")), []);
    // The ordinary file's 256 zero blocks came out as a hole: the data around them is kept,
    // the last (partial) block as data.
    assert_eq!(
        runs(&file(&tree, b"zeros.bin")),
        [(0, 8192 + (1 << 20) + 1000)]
    );
    assert_eq!(
        runs(&file(&back, b"zeros.bin")),
        [(0, 8192), (8192 + (1 << 20), 1000)]
    );
    // Runs come back widened to 512-byte blocks, the widening zeros (see the export).
    assert_eq!(
        runs(&file(&back, b"big.img")),
        [(0, 5120), (12288, 4096), (TIB / 2, 100_352)]
    );
}

/// `blocks` 4 KiB blocks, every other one zeros (the first holds data): `blocks / 2` runs of
/// data once the zero blocks are cut out. Generated as read, never held whole.
struct AlternatingBlocks {
    position: u64,
    len: u64,
}

impl Read for AlternatingBlocks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.len - self.position).unwrap());
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = self.position + i as u64;
            *b = if (at / 4096).is_multiple_of(2) {
                (at % 251) as u8 + 1
            } else {
                0
            };
        }
        self.position += n as u64;
        Ok(n)
    }
}

/// Exports a rootfs holding only `f`, `blocks` blocks of [`AlternatingBlocks`], and reads
/// the export back: the runs of `f` in the archive.
fn exported_runs_of_alternating_blocks(blocks: u64) -> Vec<(u64, u64)> {
    let mut rootfs = empty();
    let len = blocks * 4096;
    let mut source = AlternatingBlocks { position: 0, len };
    let store_offset = rootfs.store_mut().store(0, len, &mut source).unwrap();
    let id = rootfs.tree_mut().alloc(
        InodeKind::File(FileData {
            size: len,
            extents: vec![DataExtent {
                file_offset: 0,
                len,
                store_offset,
            }],
        }),
        Metadata {
            mode: 0o644,
            ..Metadata::default()
        },
    );
    rootfs.link(ROOT, b"f", id, 1).unwrap();
    let (tree, data) = finished(rootfs);
    let tmp = tempfile::tempdir().unwrap();
    let archive = export_to_file(&tree, &data, tmp.path());
    let back = std::fs::read(&archive).unwrap();
    let (back, store) = finished(apply(&[back]).unwrap());
    let file = back
        .inode(back.lookup(b"f").unwrap())
        .as_file()
        .unwrap()
        .clone();
    assert_eq!(file.size, len);
    // The data read back is the data written, holes included.
    let mut expected = AlternatingBlocks { position: 0, len };
    let mut want = vec![0u8; 4096];
    let mut got = vec![0u8; 4096];
    for block in 0..blocks {
        expected.read_exact(&mut want).unwrap();
        let offset = block * 4096;
        got.fill(0);
        for e in &file.extents {
            let (from, to) = (
                e.file_offset.max(offset),
                (e.file_offset + e.len).min(offset + 4096),
            );
            if from < to {
                let at = usize::try_from(from - offset).unwrap();
                let n = usize::try_from(to - from).unwrap();
                store
                    .read_exact_at(
                        &mut got[at..at + n],
                        e.store_offset + (from - e.file_offset),
                    )
                    .unwrap();
            }
        }
        assert!(got == want, "block {block} differs after the round trip");
    }
    file.extents
        .iter()
        .map(|e| (e.file_offset, e.len))
        .collect()
}

#[test]
fn zero_blocks_export_as_holes_up_to_max_export_runs() {
    // At the limit: every zero block is a hole, one run per data block.
    let at = u64::try_from(MAX_EXPORT_RUNS).unwrap() * 2;
    let runs = exported_runs_of_alternating_blocks(at);
    assert_eq!(runs.len(), MAX_EXPORT_RUNS);
    let odd: Vec<_> = runs
        .iter()
        .filter(|&&(offset, len)| offset % 8192 != 0 || len != 4096)
        .collect();
    assert!(odd.is_empty(), "{:?}", &odd[..odd.len().min(5)]);
    // Past it: the last run grows over the zero block to the data that would have made one
    // run more; the file still ends in a hole.
    let runs = exported_runs_of_alternating_blocks(at + 2);
    assert_eq!(runs.len(), MAX_EXPORT_RUNS);
    assert_eq!(*runs.last().unwrap(), ((at - 2) * 4096, 3 * 4096));
}

#[test]
fn files_without_holes_export_as_before() {
    // The export of a tree without holes, pinned: sparse members change nothing else.
    let mut layer = LayerTar::new();
    layer
        .dir("etc")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .file("empty", b"")
        .symlink("link", "etc/passwd")
        .hardlink("hard", "etc/passwd")
        .device("dev/null", false, 1, 3)
        .fifo("fifo")
        .file(&format!("{}/long", "l".repeat(120)), &pattern(0, 70_000));
    layer.pax(&[("mtime", b"1700000000.5"), ("SCHILY.xattr.user.k", b"v")]);
    layer.file("attrs", b"a");
    let (tree, data) = finished(apply(&[layer.finish()]).unwrap());
    let mut tar = Vec::new();
    write_tar(&tree, &data, &mut tar).unwrap();
    assert_eq!(
        d2l_blob::Digest::sha256_of(&tar).to_string(),
        GOLDEN_NO_HOLES,
        "export bytes of a tree without holes"
    );
}

/// sha256 of [`files_without_holes_export_as_before`]'s export, as the export wrote it before
/// sparse members existed.
const GOLDEN_NO_HOLES: &str =
    "sha256:8f22b7e9260dc9860da906719f2025322a5cbc15181112739566d4470876bbaa";

#[test]
fn per_inode_memory_is_as_documented() {
    // MAX_INODES's documentation counts these sizes: keep it true.
    assert_eq!(std::mem::size_of::<Option<d2l_rootfs::Inode>>(), 88);
    assert_eq!(std::mem::size_of::<(Box<[u8]>, d2l_rootfs::DirEntry)>(), 24);
    assert_eq!(std::mem::size_of::<DataExtent>(), 24);
    let _ = InodeId::index;
}

/// A layer of `files` files in one directory: `files + 2` inodes with the root.
fn layer_of_files(files: usize) -> Vec<u8> {
    let mut layer = LayerTar::new();
    layer.dir("d");
    for i in 0..files {
        layer.file(&format!("d/{i}"), b"");
    }
    layer.finish()
}

#[test]
fn inodes_at_and_past_the_limit() {
    let options = |max_inodes| ApplyOptions {
        max_inodes,
        ..ApplyOptions::default()
    };
    assert_eq!(ApplyOptions::default().max_inodes, MAX_INODES);
    let apply_with = |max, layers: &[Vec<u8>]| {
        let mut applier = Applier::new(SpillFile::new().unwrap(), options(max));
        for (i, layer) in layers.iter().enumerate() {
            applier.apply_layer(u32::try_from(i).unwrap() + 1, &layer[..])?;
        }
        Ok::<_, EntryFailure>(applier.finish().unwrap())
    };
    let rootfs = apply_with(100, &[layer_of_files(98)]).unwrap();
    assert_eq!(rootfs.tree().inode_count(), 100);

    let f = apply_with(100, &[layer_of_files(99)])
        .err()
        .expect("past the limit");
    assert_eq!(f.path, "d/98");
    assert!(
        matches!(f.error, EntryError::TooManyInodes(100)),
        "{:?}",
        f.error
    );
    assert!(f.error.to_string().contains("100"), "{}", f.error);

    // Deleted inodes keep their slot: what a layer made counts, not what is left.
    let mut whiteout = LayerTar::new();
    whiteout.whiteout("d");
    let f = apply_with(
        100,
        &[layer_of_files(98), whiteout.finish(), layer_of_files(0)],
    )
    .err()
    .expect("past the limit");
    assert_eq!(f.path, "d");
    assert!(
        matches!(f.error, EntryError::TooManyInodes(100)),
        "{:?}",
        f.error
    );
}
