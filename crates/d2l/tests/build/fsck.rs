//! e2fsck accepts every kind of image.

use crate::prelude::*;

#[test]
fn fsck_accepts_the_debian_fixture() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_ok(&debian.oci, &tmp.path().join("rootfs.ext4"), &[]);
    debugfs::assert_fsck_clean(&image);
}

#[test]
fn fsck_accepts_every_entry_type() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &every_type_layers(), Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    debugfs::assert_fsck_clean(&image);
}

#[test]
fn fsck_accepts_a_directory_of_100000_files() {
    const FILES: usize = 100_000;
    let name = |i: usize| format!("a-file-name-long-enough-for-two-levels-{i:06}");
    let mut layer = LayerTar::new();
    layer.dir("big");
    for i in 0..FILES {
        layer.file(&format!("big/{}", name(i)), b"");
    }
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &[layer.finish()], Compress::None);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    debugfs::assert_fsck_clean(&image);

    // An htree with an index level between the root and the leaves.
    let out = debugfs::batch(&image, &["stat /big".into(), "htree_dump /big".into()]);
    let stat = debugfs::parse_stat(&out[0]);
    assert!(
        stat.flags & INDEX_FL != 0,
        "big is not indexed: {:#x}",
        stat.flags
    );
    assert!(
        out[1].contains("Indirect levels: 1"),
        "expected a 2-level htree:\n{}",
        &out[1][..out[1].len().min(2000)]
    );

    // The kernel finds every name through the index and lists them all.
    require_root();
    let mount = Mount::new(&image, &tmp.path().join("mnt"), "ro");
    let big = mount.dir.join("big");
    let missing: Vec<String> = (0..FILES)
        .map(name)
        .filter(|n| std::fs::symlink_metadata(big.join(n)).is_err())
        .take(10)
        .collect();
    assert!(missing.is_empty(), "the kernel cannot find {missing:?}");
    assert_eq!(std::fs::read_dir(&big).unwrap().count(), FILES);
    mount.unmount();
}

#[test]
fn fsck_accepts_a_directory_with_more_subdirectories_than_links() {
    // More than 65000 subdirectories: the parent's link count overflows, ext4 (dir_nlink)
    // stores 1 instead.
    let mut layer = LayerTar::new();
    for i in 0..65_010 {
        layer.dir(&format!("top/d{i:05}"));
    }
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &[layer.finish()], Compress::None);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    debugfs::assert_fsck_clean(&image);
    let out = debugfs::batch(&image, &["stat /top".into(), "stat /top/d65009".into()]);
    assert_eq!(debugfs::parse_stat(&out[0]).links, 1);
    assert_eq!(debugfs::parse_stat(&out[1]).links, 2);
}

#[test]
fn fsck_accepts_a_5_gib_sparse_file() {
    const SIZE: u64 = 5 << 30;
    let runs = [
        (0, 4096),
        ((1 << 30) + 3 * 4096, 8192),
        ((4 << 30) - 4096, 8192), // across the 4 GiB mark
        (SIZE - 4096, 4096),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(
        tmp.path(),
        &[sparse_layer("sparse.img", SIZE, &runs)],
        Compress::Gzip,
    );
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    debugfs::assert_fsck_clean(&image);

    let stat = debugfs::parse_stat(&debugfs::batch(&image, &["stat /d/sparse.img".into()])[0]);
    assert_eq!(stat.size, SIZE);
    let extents = debugfs::parse_extents(&stat.extents);
    let logical: Vec<(u64, u64)> = extents.iter().map(|e| (e.0 * BLOCK, e.2 * BLOCK)).collect();
    assert_eq!(logical, runs, "extents are exactly the data runs");
    // The data is where the extents say.
    let file = File::open(&image).unwrap();
    for (&(offset, len), &(_, physical, _)) in runs.iter().zip(&extents) {
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, physical * BLOCK).unwrap();
        assert!(
            buf == pattern(offset, len),
            "data of the run at {offset:#x}"
        );
    }
    let allocated = std::fs::metadata(&image).unwrap().blocks() * 512;
    assert!(
        allocated < 64 << 20,
        "the image allocates {allocated} bytes"
    );
}

#[test]
fn fsck_accepts_a_depth_2_extent_tree() {
    // Every other 4 KiB block of 12 MiB holds data: 1536 extents, more than the 4 * 340 a
    // tree of depth 1 holds.
    const SIZE: u64 = 12 << 20;
    let runs: Vec<(u64, u64)> = (0..SIZE / BLOCK / 2)
        .map(|i| (i * 2 * BLOCK, BLOCK))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(
        tmp.path(),
        &[sparse_layer("fragmented", SIZE, &runs)],
        Compress::Gzip,
    );
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    debugfs::assert_fsck_clean(&image);

    let dump = tmp.path().join("fragmented.out");
    let out = debugfs::batch(
        &image,
        &[
            "ex /d/fragmented".into(),
            format!("dump /d/fragmented {}", dump.display()),
        ],
    );
    // `ex` prints "LEVEL/DEPTH ENTRY/ENTRIES ..." per node: "0/ 2" is the root of depth 2.
    let depth = out[0]
        .lines()
        .filter_map(|l| l.trim_start().split_once('/'))
        .filter_map(|(_, rest)| rest.split_whitespace().next()?.parse::<u32>().ok())
        .max();
    assert_eq!(
        depth,
        Some(2),
        "extent tree depth:\n{}",
        &out[0][..out[0].len().min(1000)]
    );
    let mut expected = vec![0u8; SIZE as usize];
    for &(offset, len) in &runs {
        expected[offset as usize..(offset + len) as usize].copy_from_slice(&pattern(offset, len));
    }
    assert!(
        std::fs::read(&dump).unwrap() == expected,
        "content of the fragmented file"
    );
}

#[test]
fn fsck_accepts_many_hard_links() {
    let mut layer = LayerTar::new();
    layer.file("many/target", b"one inode, 5000 names");
    for i in 1..5000 {
        layer.hardlink(&format!("many/name-{i:04}"), "many/target");
    }
    for i in 0..1000 {
        layer
            .file(&format!("pairs/f-{i:04}"), format!("pair {i}").as_bytes())
            .hardlink(&format!("pairs/g-{i:04}"), &format!("pairs/f-{i:04}"));
    }
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &[layer.finish()], Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    debugfs::assert_fsck_clean(&image);

    let entries = debugfs::walk(&image);
    let ino_of: BTreeMap<&str, u32> = entries.iter().map(|e| (e.path.as_str(), e.ino)).collect();
    let many: BTreeSet<u32> = entries
        .iter()
        .filter(|e| e.path.starts_with("many/"))
        .map(|e| e.ino)
        .collect();
    assert_eq!(many.len(), 1, "all 5000 names are one inode");
    let target = ino_of["many/target"];
    let mut cmds = vec![format!("stat <{target}>")];
    let pairs: Vec<u32> = (0..1000)
        .map(|i| {
            let f = ino_of[format!("pairs/f-{i:04}").as_str()];
            assert_eq!(f, ino_of[format!("pairs/g-{i:04}").as_str()], "pair {i}");
            f
        })
        .collect();
    assert_eq!(pairs.iter().collect::<BTreeSet<_>>().len(), 1000);
    cmds.extend(pairs.iter().map(|ino| format!("stat <{ino}>")));
    let stats: Vec<Stat> = debugfs::batch(&image, &cmds)
        .iter()
        .map(|o| debugfs::parse_stat(o))
        .collect();
    assert_eq!(stats[0].links, 5000);
    assert!(
        stats[1..].iter().all(|s| s.links == 2),
        "every pair has 2 links"
    );
}

#[test]
fn fsck_accepts_xattrs_outside_the_inode_and_shared_blocks() {
    // Ten 300-byte user xattrs: ~3.2 KiB, too much for the inode, one external block.
    let big: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| (format!("SCHILY.xattr.user.attr{i}"), pattern(i * 300, 300)))
        .collect();
    let mut other = big.clone();
    other[3].1[0] ^= 0xff; // one byte differs: its own block
    let pax = |layer: &mut LayerTar, set: &[(String, Vec<u8>)]| {
        let records: Vec<(&str, &[u8])> = set.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
        layer.pax(&records);
    };
    let mut layer = LayerTar::new();
    pax(&mut layer, &big);
    layer.file("x/a", b"a");
    pax(&mut layer, &big);
    layer.file("x/b", b"b");
    pax(&mut layer, &other);
    layer.file("x/c", b"c");
    // More inodes with one identical set than one block may serve (the kernel's
    // EXT4_XATTR_REFCOUNT_MAX is 1024).
    let shared = vec![("SCHILY.xattr.user.shared".to_string(), pattern(7, 200))];
    for i in 0..1030 {
        pax(&mut layer, &shared);
        layer.file(&format!("y/f-{i:04}"), b"y");
    }
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &[layer.finish()], Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    debugfs::assert_fsck_clean(&image);

    let mut cmds: Vec<String> = ["x/a", "x/b", "x/c"]
        .iter()
        .map(|p| format!("stat /{p}"))
        .collect();
    let values = tmp.path().join("values");
    std::fs::create_dir(&values).unwrap();
    for i in 0..10 {
        cmds.push(format!(
            "ea_get -f {} /x/b user.attr{i}",
            values.join(i.to_string()).display()
        ));
    }
    cmds.extend((0..1030).map(|i| format!("stat /y/f-{i:04}")));
    let out = debugfs::batch(&image, &cmds);
    let a = debugfs::parse_stat(&out[0]);
    let b = debugfs::parse_stat(&out[1]);
    let c = debugfs::parse_stat(&out[2]);
    assert_ne!(a.file_acl, 0, "a's xattrs are in an external block");
    assert_eq!(a.file_acl, b.file_acl, "identical sets share one block");
    assert_ne!(c.file_acl, 0);
    assert_ne!(c.file_acl, a.file_acl, "a different set has its own block");
    assert_eq!(xattr_block_header(&image, a.file_acl), (XATTR_MAGIC, 2));
    assert_eq!(xattr_block_header(&image, c.file_acl), (XATTR_MAGIC, 1));
    assert_eq!(b.xattrs.len(), 10);
    for (i, (_, value)) in big.iter().enumerate() {
        let got = std::fs::read(values.join(i.to_string())).unwrap();
        assert!(&got == value, "value of user.attr{i}");
    }
    let mut users: BTreeMap<u64, u32> = BTreeMap::new();
    for o in &out[13..] {
        let s = debugfs::parse_stat(o);
        assert_ne!(s.file_acl, 0);
        *users.entry(s.file_acl).or_default() += 1;
    }
    for (&block, &count) in &users {
        assert!(count <= 1024, "block {block} serves {count} inodes");
        assert_eq!(
            xattr_block_header(&image, block),
            (XATTR_MAGIC, count),
            "block {block}"
        );
    }
    assert_eq!(users.values().sum::<u32>(), 1030);
}

#[test]
fn fsck_accepts_a_path_of_4095_bytes() {
    let path = long_path();
    let mut layer = LayerTar::new();
    layer.file(&path, b"at the limit");
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &[layer.finish()], Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    debugfs::assert_fsck_clean(&image);

    let entries = debugfs::walk(&image);
    let entry = entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no 4095-byte path among {} entries", entries.len()));
    let dump = tmp.path().join("deep.out");
    debugfs::batch(
        &image,
        &[format!("dump <{}> {}", entry.ino, dump.display())],
    );
    assert_eq!(std::fs::read(&dump).unwrap(), b"at the limit");
}
