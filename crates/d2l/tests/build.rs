//! `d2l build --table none`: the bare ext4 filesystem d2l writes in userspace, proved by
//! readers that share no code with it. `e2fsck -fn` checks every image; debugfs (batch mode)
//! walks a crafted image with every entry type and the Debian fixture and must agree with
//! `d2l export` of the same source; the kernel mounts and modifies a build of the fixture and
//! `resize2fs` grows one. The regression tests at the end are named after what broke.
//!
//! debugfs prints some values in surprising ways (signed uids, packed times, ACLs with id 0,
//! fast symlinks that `dump` cannot read, placeholder entries in `ls -p`); the parsers in
//! `d2l_testkit::debugfs` handle them, and its module documentation lists them.
//!
//! Needs e2fsprogs, GNU tar and python3 on `PATH`, and root with loop devices for the tests
//! that mount (CI has them all); a missing tool fails the test that needs it, never skips it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_clean_failure, d2l, list_dir, stderr};
use d2l_testkit::debugfs::{self, Stat};
use d2l_testkit::layer::{gnu_sparse_tar, pattern, LayerTar};
use d2l_testkit::oci::{simple_image, Compress};

/// ext4 block size d2l writes.
const BLOCK: u64 = 4096;

// ---------------------------------------------------------------------------------------------
// Running d2l and the tools
// ---------------------------------------------------------------------------------------------

/// `d2l build SOURCE -o OUT --table none EXTRA...`.
fn build(source: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "build",
        source,
        "-o",
        out.to_str().unwrap(),
        "--table",
        "none",
    ];
    args.extend_from_slice(extra);
    d2l(&args)
}

/// [`build`] that must succeed; returns the image path.
fn build_ok(source: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let run = build(source, out, extra);
    assert!(
        run.status.success(),
        "d2l build {source} {extra:?} failed: {}",
        stderr(&run)
    );
    out.to_path_buf()
}

/// Writes a crafted OCI layout of `layers` under `dir` and returns its source string.
fn crafted(dir: &Path, layers: &[Vec<u8>], compress: Compress) -> String {
    simple_image(&dir.join("img"), layers, compress).source
}

fn sha256(bytes: &[u8]) -> String {
    d2l_registry::Digest::sha256_of(bytes).to_string()
}

/// Panics unless running as root: mounting a loop device needs it (CI runs as root).
fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts the image with `mount -o loop`, which needs root (CI runs as root)"
    );
    debugfs::require("mount", "mount");
    debugfs::require("umount", "mount");
}

/// A loop mount, unmounted when dropped (also when the test panics).
struct Mount {
    dir: PathBuf,
    mounted: bool,
}

impl Mount {
    /// `mount -o loop,OPTIONS IMAGE DIR`.
    fn new(image: &Path, dir: &Path, options: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "ext4", "-o", &format!("loop,{options}")])
            .arg(image)
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -o loop {}: {}{}",
            image.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Mount {
            dir: dir.to_path_buf(),
            mounted: true,
        }
    }

    /// Unmounts, asserting success.
    fn unmount(mut self) {
        self.mounted = false;
        let out = Command::new("umount")
            .arg(&self.dir)
            .output()
            .expect("run umount");
        assert!(
            out.status.success(),
            "umount {}: {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
    }
}

/// A layer made by the system's GNU tar: a file `d/NAME` of `size` bytes with data at `runs`
/// (offset, length; 4 KiB aligned) and holes elsewhere, archived with `--sparse`.
fn sparse_layer(name: &str, size: u64, runs: &[(u64, u64)]) -> Vec<u8> {
    debugfs::require("tar", "tar");
    gnu_sparse_tar(
        &["--format=gnu", "--sparse", "--owner=0", "--group=0"],
        name,
        size,
        runs,
    )
}

/// Every (offset, needle) where one of `needles` occurs in the file, reading all of it
/// (holes included) in chunks that overlap by the longest needle.
fn find_in_file(path: &Path, needles: &[&[u8]]) -> Vec<(String, u64)> {
    let longest = needles.iter().map(|n| n.len()).max().unwrap();
    let mut file = File::open(path).unwrap();
    let mut found = Vec::new();
    let mut buf = vec![0u8; 8 << 20];
    let mut carried = 0usize; // bytes at the start of buf kept from the previous chunk
    let mut base = 0u64; // file offset of buf[0]
    loop {
        let n = file.read(&mut buf[carried..]).unwrap();
        if n == 0 {
            break;
        }
        let window = &buf[..carried + n];
        for needle in needles {
            let first = needle[0];
            for (i, _) in window.iter().enumerate().filter(|&(_, &b)| b == first) {
                if window[i..].starts_with(needle) {
                    found.push((
                        String::from_utf8_lossy(needle).into_owned(),
                        base + i as u64,
                    ));
                }
            }
        }
        let keep = (longest - 1).min(window.len());
        let len = window.len();
        buf.copy_within(len - keep..len, 0);
        base += (len - keep) as u64;
        carried = keep;
    }
    found.sort();
    found.dedup();
    found
}

/// The external xattr block `block` of an image: (h_magic, h_refcount).
fn xattr_block_header(image: &Path, block: u64) -> (u32, u32) {
    let mut header = [0u8; 8];
    File::open(image)
        .unwrap()
        .read_exact_at(&mut header, block * BLOCK)
        .unwrap();
    (
        u32::from_le_bytes(header[..4].try_into().unwrap()),
        u32::from_le_bytes(header[4..].try_into().unwrap()),
    )
}

/// `EXT4_XATTR_MAGIC`, first word of an external xattr block.
const XATTR_MAGIC: u32 = 0xEA02_0000;
/// `EXT4_INDEX_FL`: the directory is an htree.
const INDEX_FL: u32 = 0x1000;

// ---------------------------------------------------------------------------------------------
// The crafted image with every entry type
// ---------------------------------------------------------------------------------------------

/// A VFS capability (`security.capability`, revision 2, cap_net_raw): binary, with NULs.
const CAPABILITY: &[u8] = &[
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A POSIX ACL in the VFS xattr form tar carries (`u32` version 2, then `{u16 tag, u16
/// perm, u32 id}`): user::rw-, user:1000:r--, group::r--, group:2000:r-x, mask::rw-,
/// other::r--. Entries without a qualifier carry `ACL_UNDEFINED_ID`, as the kernel gives them.
fn acl(extra_user: u32) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, extra_user),
        (0x04, 4, u32::MAX),
        (0x08, 5, 2000),
        (0x10, 6, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// A 200-byte symlink target: too long for the inode, a "slow" symlink.
fn slow_target() -> String {
    let mut t = String::from("../");
    while t.len() < 200 {
        t.push_str("long-component/");
    }
    t.truncate(200);
    t
}

/// A file path of 4095 bytes, the longest PATH_MAX (4096 with its NUL) allows: 16
/// directories of 254 bytes, each followed by '/', and a 15-byte name.
fn long_path() -> String {
    let mut path = String::new();
    for i in 0..16 {
        path.push_str(&format!("d{i:02}{}/", "x".repeat(251)));
    }
    path.push_str("file-at-4095-b.");
    assert_eq!(path.len(), 4095);
    path
}

/// A lower layer with every entry type and an upper layer that deletes, replaces and links.
fn every_type_layers() -> Vec<Vec<u8>> {
    let acl_access = acl(1000);
    let acl_default = acl(1001);
    let mut lower = LayerTar::new();
    lower
        .dir("bin")
        .pax(&[
            ("SCHILY.xattr.security.capability", CAPABILITY),
            ("mtime", b"1700000000.123456789"),
        ])
        .file_mode("bin/ping", b"ELF ping", 0o4755)
        .file_mode("bin/sgid", b"sgid", 0o2755)
        .file_mode("bin/all-bits", b"all", 0o7777)
        .file_mode("bin/none", b"none", 0o000)
        .dir_mode("tmp", 0o1777)
        .symlink("lib", "usr/lib")
        .symlink("slow", &slow_target())
        .symlink("edge-59", &"f".repeat(59))
        .symlink("edge-60", &"s".repeat(60))
        .symlink("dangling", "/nowhere/at/all")
        .dir("usr")
        .dir("usr/lib")
        .file("usr/lib/libc.so", b"libc v1")
        .device("dev/null", false, 1, 3)
        .device("dev/sda", true, 8, 0)
        .device("dev/big-major", false, 300, 5)
        .device("dev/big-minor", true, 8, 70000)
        .device("dev/both-big", false, 4095, 1_048_575)
        .fifo("run/initctl")
        .pax(&[("uid", b"4000000000"), ("gid", b"3000000000")])
        .file("home/huge-ids", b"ids over 2^31")
        .file_owned("home/user/file", b"mine", 100_000, 200_000)
        .pax(&[("mtime", b"-315619200")])
        .file("times/1960", b"before the epoch")
        .pax(&[("mtime", b"4102444800.5")])
        .file("times/2100", b"after 2038")
        .pax(&[("mtime", b"1700000000.000000001")])
        .file("times/one-ns", b"1 ns")
        .pax(&[("mtime", b"1600000000.999999999")])
        .dir("times/dir-ns")
        .pax(&[
            ("SCHILY.xattr.system.posix_acl_access", &acl_access),
            ("SCHILY.xattr.user.comment", b"quote \" backslash \\ done"),
            ("SCHILY.xattr.user.bin", &[0, 1, 2, 0xff, 0, b'\n']),
            ("SCHILY.xattr.trusted.dropped", b"d2l drops trusted.*"),
        ])
        .file_mode("acl/file", b"acl", 0o664)
        .pax(&[
            ("SCHILY.xattr.system.posix_acl_access", &acl_access),
            ("SCHILY.xattr.system.posix_acl_default", &acl_default),
        ])
        .dir_mode("acl/dir", 0o775)
        .file("files/empty", b"")
        .file("files/one-block", &pattern(0, 4096))
        .file("files/multi-block", &pattern(0, 100_001))
        .dir("files/empty-dir")
        .file("files/group-a", b"three names")
        .hardlink("files/group-b", "files/group-a")
        .hardlink("files/group-c", "files/group-a")
        .file("etc/secret", b"TOP-SECRET-LOWER")
        .dir("var/cache/apt")
        .file("var/cache/apt/pkgcache.bin", b"cache");
    let mut upper = LayerTar::new();
    upper
        .whiteout("etc/secret")
        .opaque("var/cache")
        .file("var/cache/new", b"new")
        .file("lib/libm.so", b"libm") // through the symlink: lands in usr/lib
        .file("usr/lib/libc.so", b"libc v2")
        .hardlink("bin/ping6", "bin/ping")
        .file(&format!("deep/{}", "d/".repeat(60)), b"deep");
    vec![lower.finish(), upper.finish()]
}

/// A small image for tests about the filesystem as a whole: a few files, a directory, a
/// symlink, all dated in the past.
fn small_layers() -> Vec<Vec<u8>> {
    let mut layer = LayerTar::new();
    layer
        .dir("etc")
        .file("etc/hostname", b"small\n")
        .file("usr/bin/tool", &pattern(0, 50_000))
        .symlink("bin", "usr/bin");
    vec![layer.finish()]
}

// ---------------------------------------------------------------------------------------------
// The tree two ways: d2l export read by Python's tarfile, the image read by debugfs
// ---------------------------------------------------------------------------------------------

/// What both readers say about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    /// file, dir, symlink, char, block, fifo.
    kind: &'static str,
    /// Permission bits with setuid, setgid and sticky.
    mode: u32,
    uid: u32,
    gid: u32,
    /// Seconds and nanoseconds.
    mtime: (i64, u32),
    /// Content length of a file, target length of a symlink, else 0.
    size: u64,
    /// sha256 of a file's content, a symlink's target, a device's `major:minor`.
    content: String,
    /// Names of a file (hard links), 2 + subdirectories of a directory, else 1.
    links: u32,
    /// For a file with several names, the smallest of them; else empty.
    link_group: String,
    xattrs: BTreeMap<String, Vec<u8>>,
}

/// Python's tarfile, an independent reader that parses PAX records by their length (the
/// `tar` crate splits them at newlines and mangles binary xattr values). Hashes contents.
const PY_READER: &str = r#"
import hashlib, json, sys, tarfile
out = []
with tarfile.open(sys.argv[1], format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape") as t:
    for m in t:
        enc = lambda s: s.encode("utf-8", "surrogateescape").hex()
        x = {k[len("SCHILY.xattr."):]: enc(v) for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
        digest = ""
        if m.isreg():
            h = hashlib.sha256()
            f = t.extractfile(m)
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
            digest = "sha256:" + h.hexdigest()
        out.append({"path": m.name, "type": m.type.decode(), "mode": m.mode, "uid": m.uid,
                    "gid": m.gid, "link": m.linkname, "dev": [m.devmajor, m.devminor],
                    "size": m.size, "sha256": digest, "xattrs": x,
                    "mtime": m.pax_headers.get("mtime", str(int(m.mtime)))})
json.dump(out, sys.stdout)
"#;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A PAX time (`-315619200`, `1700000000.123456789`) as seconds and nanoseconds, the
/// nanoseconds always positive (floor division, as the kernel stores times).
fn parse_pax_time(text: &str) -> (i64, u32) {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let mut total = int.parse::<i128>().unwrap() * 1_000_000_000 + frac.parse::<i128>().unwrap();
    if negative {
        total = -total;
    }
    (
        total.div_euclid(1_000_000_000) as i64,
        total.rem_euclid(1_000_000_000) as u32,
    )
}

/// `d2l export SOURCE`, read by Python's tarfile into path -> Node (directory paths without
/// their trailing slash).
fn nodes_from_export(source: &str, work: &Path) -> BTreeMap<String, Node> {
    debugfs::require("python3", "python3");
    let tar = work.join("export.tar");
    let run = d2l(&["export", source, "-o", tar.to_str().unwrap()]);
    assert!(run.status.success(), "export {source}: {}", stderr(&run));
    let py = Command::new("python3")
        .arg("-c")
        .arg(PY_READER)
        .arg(&tar)
        .output()
        .expect("run python3");
    assert!(
        py.status.success(),
        "python tarfile: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    std::fs::remove_file(&tar).unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_slice(&py.stdout).unwrap();
    let mut nodes = BTreeMap::new();
    let mut hardlinks = Vec::new();
    for v in list {
        let path = v["path"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        let kind = match v["type"].as_str().unwrap() {
            "0" | "\0" => "file",
            "1" => {
                hardlinks.push((path, v["link"].as_str().unwrap().to_string()));
                continue;
            }
            "2" => "symlink",
            "3" => "char",
            "4" => "block",
            "5" => "dir",
            "6" => "fifo",
            other => panic!("unexpected tar type {other:?} at {path}"),
        };
        let link = v["link"].as_str().unwrap().to_string();
        let dev = format!("{}:{}", v["dev"][0], v["dev"][1]);
        let (size, content) = match kind {
            "file" => (
                v["size"].as_u64().unwrap(),
                v["sha256"].as_str().unwrap().to_string(),
            ),
            "symlink" => (link.len() as u64, link),
            "char" | "block" => (0, dev),
            _ => (0, String::new()),
        };
        let xattrs = v["xattrs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, x)| (k.clone(), unhex(x.as_str().unwrap())))
            .collect();
        let node = Node {
            kind,
            mode: v["mode"].as_u64().unwrap() as u32 & 0o7777,
            uid: v["uid"].as_u64().unwrap() as u32,
            gid: v["gid"].as_u64().unwrap() as u32,
            mtime: parse_pax_time(v["mtime"].as_str().unwrap()),
            size,
            content,
            links: 1,
            link_group: String::new(),
            xattrs,
        };
        assert!(nodes.insert(path.clone(), node).is_none(), "{path} twice");
    }
    // A hard link entry names the first name, which carries the inode's metadata and data.
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, leader) in hardlinks {
        let node = nodes
            .get(&leader)
            .unwrap_or_else(|| panic!("{path} links to {leader}, which is not in the export"))
            .clone();
        nodes.insert(path.clone(), node);
        groups
            .entry(leader.clone())
            .or_insert_with(|| vec![leader])
            .push(path);
    }
    for members in groups.values() {
        let smallest = members.iter().min().unwrap().clone();
        for m in members {
            let node = nodes.get_mut(m).unwrap();
            node.links = members.len() as u32;
            node.link_group = smallest.clone();
        }
    }
    // A directory's link count: its own name, its ".", and each subdirectory's "..".
    let dirs: Vec<String> = nodes
        .iter()
        .filter(|(_, n)| n.kind == "dir")
        .map(|(p, _)| p.clone())
        .collect();
    for dir in &dirs {
        if let Some((parent, _)) = dir.rsplit_once('/') {
            if let Some(p) = nodes.get_mut(parent) {
                p.links += 1;
            }
        }
    }
    for dir in &dirs {
        nodes.get_mut(dir).unwrap().links += 1;
    }
    nodes
}

/// The image as debugfs reads it: path -> Node, and the `stat` of every inode by number.
/// Three kinds of debugfs runs, each one process for many commands: `ls -p` per depth level
/// ([`debugfs::walk`]), `stat` of every inode, then `ea_get -f` of every xattr and `dump` of
/// every file and slow symlink into `work`.
fn nodes_from_image(image: &Path, work: &Path) -> (BTreeMap<String, Node>, BTreeMap<u32, Stat>) {
    let entries = debugfs::walk(image);
    let inos: BTreeSet<u32> = entries.iter().map(|e| e.ino).collect();
    let stat_cmds: Vec<String> = inos.iter().map(|ino| format!("stat <{ino}>")).collect();
    let stats: BTreeMap<u32, Stat> = debugfs::batch(image, &stat_cmds)
        .iter()
        .map(|out| debugfs::parse_stat(out))
        .map(|s| (s.ino, s))
        .collect();
    assert_eq!(stats.len(), inos.len());

    let dumps = work.join("debugfs-dump");
    std::fs::create_dir_all(&dumps).unwrap();
    let mut cmds = Vec::new();
    for s in stats.values() {
        for (i, (name, _)) in s.xattrs.iter().enumerate() {
            let out = dumps.join(format!("x{}-{i}", s.ino));
            cmds.push(format!("ea_get -f {} <{}> {name}", out.display(), s.ino));
        }
        let slow_link = s.kind == "symlink" && s.fast_link.is_none();
        if s.kind == "regular" || slow_link {
            cmds.push(format!(
                "dump <{}> {}",
                s.ino,
                dumps.join(format!("f{}", s.ino)).display()
            ));
        }
    }
    debugfs::batch(image, &cmds);

    let mut paths_of: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for e in &entries {
        paths_of.entry(e.ino).or_default().push(&e.path);
    }
    let mut per_ino: BTreeMap<u32, Node> = BTreeMap::new();
    for s in stats.values() {
        let kind = match s.kind.as_str() {
            "regular" => "file",
            "directory" => "dir",
            "symlink" => "symlink",
            "character special" => "char",
            "block special" => "block",
            "FIFO" => "fifo",
            other => panic!("inode {}: unexpected type {other:?}", s.ino),
        };
        let read_dump = || {
            let path = dumps.join(format!("f{}", s.ino));
            let bytes = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(bytes.len() as u64, s.size, "inode {}: dumped size", s.ino);
            bytes
        };
        let (size, content) = match kind {
            "file" => (s.size, sha256(&read_dump())),
            "symlink" => {
                let target = match &s.fast_link {
                    Some(t) => t.clone(),
                    None => String::from_utf8(read_dump()).unwrap(),
                };
                (s.size, target)
            }
            "char" | "block" => {
                let (major, minor) = s.device.expect("device numbers");
                (0, format!("{major}:{minor}"))
            }
            _ => (0, String::new()),
        };
        let mut xattrs = BTreeMap::new();
        for (i, (name, len)) in s.xattrs.iter().enumerate() {
            let path = dumps.join(format!("x{}-{i}", s.ino));
            let mut value = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            if name.starts_with("system.posix_acl_") {
                value = debugfs::normalize_acl(&value);
            } else {
                assert_eq!(value.len(), *len, "inode {}: xattr {name} length", s.ino);
            }
            xattrs.insert(name.clone(), value);
        }
        let names = &paths_of[&s.ino];
        let link_group = if kind == "file" && names.len() > 1 {
            names.iter().min().unwrap().to_string()
        } else {
            String::new()
        };
        let node = Node {
            kind,
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            mtime: s.mtime,
            size,
            content,
            links: s.links,
            link_group,
            xattrs,
        };
        per_ino.insert(s.ino, node);
    }
    let mut nodes = BTreeMap::new();
    for e in &entries {
        let s = &stats[&e.ino];
        // ls -p (the directory entry's view) and stat (the inode's) agree.
        assert_eq!(
            (e.mode & 0o7777, e.uid, e.gid),
            (s.mode, s.uid, s.gid),
            "{}: ls -p and stat differ",
            e.path
        );
        nodes.insert(e.path.clone(), per_ino[&e.ino].clone());
    }
    (nodes, stats)
}

/// Asserts the image holds exactly the tree `d2l export` gives for the same source. The
/// image's `lost+found` (which d2l adds when the image has none) must be empty and 0700.
fn assert_same_tree(export: &BTreeMap<String, Node>, image: &mut BTreeMap<String, Node>) {
    if !export.contains_key("lost+found") {
        let lf = image
            .remove("lost+found")
            .expect("the image has lost+found");
        assert_eq!(
            (lf.kind, lf.mode, lf.links),
            ("dir", 0o700, 2),
            "lost+found"
        );
        assert!(
            !image.keys().any(|p| p.starts_with("lost+found/")),
            "lost+found is empty"
        );
    }
    let only_export: Vec<&String> = export.keys().filter(|k| !image.contains_key(*k)).collect();
    let only_image: Vec<&String> = image.keys().filter(|k| !export.contains_key(*k)).collect();
    assert!(
        only_export.is_empty() && only_image.is_empty(),
        "only in export: {only_export:?}\nonly in image: {only_image:?}"
    );
    let differences: Vec<String> = export
        .iter()
        .filter(|(path, node)| &image[*path] != *node)
        .map(|(path, node)| format!("{path}:\n  export {node:?}\n  image  {:?}", image[path]))
        .collect();
    assert!(
        differences.is_empty(),
        "{} of {} paths differ, first ones:\n{}",
        differences.len(),
        export.len(),
        differences[..differences.len().min(10)].join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 1. e2fsck accepts every kind of image
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// 2. debugfs and d2l export agree
// ---------------------------------------------------------------------------------------------

#[test]
fn debugfs_reads_every_entry_type_as_export_writes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &every_type_layers(), Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    let export = nodes_from_export(&source, tmp.path());
    let (mut nodes, stats) = nodes_from_image(&image, tmp.path());

    // What the crafted layers say, checked on the image directly: a bug shared by export
    // and build would pass the comparison below.
    let n = |p: &str| {
        nodes
            .get(p)
            .unwrap_or_else(|| panic!("{p} not in the image"))
    };
    let ping = n("bin/ping");
    assert_eq!((ping.mode, ping.links), (0o4755, 2));
    assert_eq!(ping.mtime, (1_700_000_000, 123_456_789));
    assert_eq!(ping.xattrs["security.capability"], CAPABILITY);
    assert_eq!(n("bin/ping6").link_group, "bin/ping");
    assert_eq!(n("files/group-c").links, 3);
    assert_eq!(n("bin/sgid").mode, 0o2755);
    assert_eq!(n("bin/all-bits").mode, 0o7777);
    assert_eq!(n("bin/none").mode, 0);
    assert_eq!((n("tmp").kind, n("tmp").mode), ("dir", 0o1777));
    assert_eq!(n("lib").content, "usr/lib");
    assert_eq!(n("slow").content, slow_target());
    let stat_of = |p: &str| {
        let ino = debugfs::batch(&image, &[format!("stat /{p}")]);
        debugfs::parse_stat(&ino[0])
    };
    assert_eq!(stat_of("lib").fast_link.as_deref(), Some("usr/lib"));
    assert_eq!(stat_of("slow").fast_link, None);
    assert_eq!(n("edge-59").content.len(), 59);
    assert_eq!(n("edge-60").content.len(), 60);
    assert_eq!(
        (n("dev/null").kind, n("dev/null").content.as_str()),
        ("char", "1:3")
    );
    assert_eq!(
        (n("dev/sda").kind, n("dev/sda").content.as_str()),
        ("block", "8:0")
    );
    assert_eq!(n("dev/big-major").content, "300:5");
    assert_eq!(n("dev/big-minor").content, "8:70000");
    assert_eq!(n("dev/both-big").content, "4095:1048575");
    assert!(!stat_of("dev/null").new_style_device);
    assert!(stat_of("dev/big-minor").new_style_device);
    assert_eq!(n("run/initctl").kind, "fifo");
    assert_eq!(
        (n("home/huge-ids").uid, n("home/huge-ids").gid),
        (4_000_000_000, 3_000_000_000)
    );
    assert_eq!(
        (n("home/user/file").uid, n("home/user/file").gid),
        (100_000, 200_000)
    );
    assert_eq!(n("times/1960").mtime, (-315_619_200, 0));
    assert_eq!(n("times/2100").mtime, (4_102_444_800, 500_000_000));
    assert_eq!(n("times/one-ns").mtime, (1_700_000_000, 1));
    assert_eq!(n("times/dir-ns").mtime, (1_600_000_000, 999_999_999));
    let acl_file = n("acl/file");
    assert_eq!(acl_file.xattrs["system.posix_acl_access"], acl(1000));
    assert_eq!(
        acl_file.xattrs["user.comment"],
        b"quote \" backslash \\ done"
    );
    assert_eq!(acl_file.xattrs["user.bin"], [0, 1, 2, 0xff, 0, b'\n']);
    assert_eq!(acl_file.xattrs.len(), 3, "trusted.* is dropped");
    assert_eq!(n("acl/dir").xattrs["system.posix_acl_default"], acl(1001));
    assert_eq!(n("files/empty").size, 0);
    assert_eq!(n("files/multi-block").content, sha256(&pattern(0, 100_001)));
    assert_eq!(n("usr/lib/libm.so").content, sha256(b"libm"));
    assert_eq!(n("usr/lib/libc.so").content, sha256(b"libc v2"));
    assert!(!nodes.contains_key("etc/secret"));
    assert!(!nodes.contains_key("var/cache/apt"));
    assert_eq!(n("var/cache/new").content, sha256(b"new"));
    assert!(stats.values().all(|s| s.kind != "socket"));

    assert_same_tree(&export, &mut nodes);
}

#[test]
fn debugfs_reads_the_debian_fixture_as_export_writes_it() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_ok(&debian.oci, &tmp.path().join("rootfs.ext4"), &[]);
    let export = nodes_from_export(&debian.oci, tmp.path());
    let (mut nodes, _) = nodes_from_image(&image, tmp.path());
    assert!(
        nodes.len() > 5000,
        "a Debian rootfs has thousands of entries, got {}",
        nodes.len()
    );
    for removed in &debian.layer2_removed {
        assert!(
            !nodes.contains_key(removed.trim_start_matches('/')),
            "{removed}"
        );
    }
    for added in &debian.layer2_added {
        assert!(nodes.contains_key(added.trim_start_matches('/')), "{added}");
    }
    assert_same_tree(&export, &mut nodes);
}

// ---------------------------------------------------------------------------------------------
// 3. The kernel uses it
// ---------------------------------------------------------------------------------------------

/// Files the kernel test writes: (path in the image, content).
fn kernel_writes() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    // A new directory the kernel must turn into an htree and grow.
    for i in 0..4000 {
        files.push((
            format!("new-dir/a-file-written-by-the-kernel-{i:05}"),
            format!("new {i}\n").into_bytes(),
        ));
    }
    // More names in /usr/bin, an htree d2l wrote: the kernel splits its leaves.
    for i in 0..3000 {
        files.push((
            format!("usr/bin/added-by-the-kernel-{i:05}"),
            format!("bin {i}\n").into_bytes(),
        ));
    }
    files.push(("new-dir/big".into(), pattern(0, 48 << 20)));
    files
}

/// Checks a mounted Debian build against what [`kernel_writes`] and the appends did.
fn check_kernel_changes(root: &Path, appended: &[u8], replaced: &[u8]) {
    for (path, content) in kernel_writes() {
        let got = std::fs::read(root.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(got == content, "{path}: content read back differs");
    }
    assert_eq!(
        std::fs::read_dir(root.join("new-dir")).unwrap().count(),
        4001
    );
    let gpl = std::fs::read(root.join("usr/share/common-licenses/GPL-3")).unwrap();
    assert!(gpl == appended, "appended file differs");
    assert_eq!(std::fs::read(root.join("etc/issue")).unwrap(), replaced);
    assert!(!root.join("usr/share/doc").exists(), "deleted tree is back");
    assert!(!root.join("usr/bin/bash").exists(), "deleted file is back");
    let mut value = [0u8; 64];
    let n = rustix::fs::getxattr(root.join("etc/hostname"), "user.added", &mut value).unwrap();
    assert_eq!(&value[..n], b"by the kernel");
}

#[test]
fn kernel_mounts_writes_and_fsck_accepts_the_result() {
    require_root();
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_ok(&debian.oci, &tmp.path().join("rootfs.ext4"), &[]);
    let usr_bin = debugfs::parse_stat(&debugfs::batch(&image, &["stat /usr/bin".into()])[0]);
    assert!(
        usr_bin.flags & INDEX_FL != 0,
        "d2l wrote /usr/bin as an htree"
    );

    let mnt = tmp.path().join("mnt");
    let mount = Mount::new(&image, &mnt, "rw");
    let root = mount.dir.clone();
    std::fs::create_dir(root.join("new-dir")).unwrap();
    for (path, content) in kernel_writes() {
        std::fs::write(root.join(&path), &content).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    // Append to a file d2l wrote, replace another, delete a tree and a file.
    let gpl_path = root.join("usr/share/common-licenses/GPL-3");
    let mut appended = std::fs::read(&gpl_path).unwrap();
    let extra = pattern(12_345, 300_000);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&gpl_path)
        .unwrap()
        .write_all(&extra)
        .unwrap();
    appended.extend_from_slice(&extra);
    let replaced = b"replaced by the kernel\n".to_vec();
    std::fs::write(root.join("etc/issue"), &replaced).unwrap();
    std::fs::remove_dir_all(root.join("usr/share/doc")).unwrap();
    std::fs::remove_file(root.join("usr/bin/bash")).unwrap();
    rustix::fs::setxattr(
        root.join("etc/hostname"),
        "user.added",
        b"by the kernel",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    check_kernel_changes(&root, &appended, &replaced);
    mount.unmount();

    debugfs::assert_fsck_clean(&image);
    let sb = debugfs::superblock(&image);
    assert_eq!(sb["Filesystem state"], "clean");
    let out = debugfs::batch(&image, &["stat /new-dir".into(), "stat /usr/bin".into()]);
    for (dir, out) in ["new-dir", "usr/bin"].iter().zip(out) {
        let flags = debugfs::parse_stat(&out).flags;
        assert!(
            flags & INDEX_FL != 0,
            "the kernel left /{dir} unindexed: {flags:#x}"
        );
    }
    // What the kernel wrote is on disk, not only in its cache.
    let mount = Mount::new(&image, &mnt, "ro");
    check_kernel_changes(&mount.dir, &appended, &replaced);
    mount.unmount();
}

#[test]
fn resize2fs_doubles_a_build() {
    debugfs::require("resize2fs", "e2fsprogs");
    debugfs::require("truncate", "coreutils");
    debugfs::require("cp", "coreutils");
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_ok(&debian.oci, &tmp.path().join("rootfs.ext4"), &[]);
    let copy = tmp.path().join("copy.ext4");
    let cp = Command::new("cp")
        .arg("--sparse=always")
        .arg(&image)
        .arg(&copy)
        .status()
        .expect("run cp");
    assert!(cp.success());
    let len = std::fs::metadata(&copy).unwrap().len();
    let truncate = Command::new("truncate")
        .arg("-s")
        .arg((2 * len).to_string())
        .arg(&copy)
        .status()
        .expect("run truncate");
    assert!(truncate.success());
    let resize = Command::new("resize2fs")
        .arg(&copy)
        .output()
        .expect("run resize2fs");
    assert!(
        resize.status.success(),
        "resize2fs: {}{}",
        String::from_utf8_lossy(&resize.stdout),
        String::from_utf8_lossy(&resize.stderr)
    );
    debugfs::assert_fsck_clean(&copy);
    let before = debugfs::superblock_number(&debugfs::superblock(&image), "Block count");
    let after = debugfs::superblock_number(&debugfs::superblock(&copy), "Block count");
    assert_eq!(before * BLOCK, len, "the file is the filesystem");
    assert_eq!(after, 2 * before, "resize2fs doubled the block count");
}

// ---------------------------------------------------------------------------------------------
// 4. Deleted and replaced data never reaches the image
// ---------------------------------------------------------------------------------------------

#[test]
fn deleted_and_replaced_content_is_nowhere_in_the_image() {
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let marker = |what: &str| format!("D2L-MARKER-{what}-{unique}");
    let deleted = marker("DELETED");
    let replaced = marker("REPLACED");
    let big_deleted = marker("BIG-DELETED");
    let in_deleted_dir = marker("IN-DELETED-DIR");
    let in_opaque_dir = marker("IN-OPAQUE-DIR");
    let deleted_xattr = marker("DELETED-XATTR");
    let deleted_name = marker("NAME");
    let kept = marker("KEPT");
    let mut lower = LayerTar::new();
    lower
        .file("etc/deleted", deleted.as_bytes())
        .file("etc/replaced", replaced.as_bytes())
        .file("etc/big-deleted", big_deleted.repeat(4000).as_bytes())
        .file("opt/gone/inside", in_deleted_dir.as_bytes())
        .file("var/opaque/inside", in_opaque_dir.as_bytes())
        .pax(&[("SCHILY.xattr.user.secret", deleted_xattr.as_bytes())])
        .file("etc/with-xattr", b"xattr carrier")
        .file(&format!("etc/{deleted_name}"), b"named")
        .file("etc/kept", kept.as_bytes());
    let mut upper = LayerTar::new();
    upper
        .whiteout("etc/deleted")
        .file("etc/replaced", b"new content")
        .whiteout("etc/big-deleted")
        .whiteout("opt/gone")
        .opaque("var/opaque")
        .file("var/opaque/other", b"other")
        .whiteout("etc/with-xattr")
        .whiteout(&format!("etc/{deleted_name}"));
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(
        tmp.path(),
        &[lower.finish(), upper.finish()],
        Compress::Gzip,
    );
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    let needles = [
        &deleted,
        &replaced,
        &big_deleted,
        &in_deleted_dir,
        &in_opaque_dir,
        &deleted_xattr,
        &deleted_name,
        &kept,
    ];
    let needles: Vec<&[u8]> = needles.iter().map(|s| s.as_bytes()).collect();
    let found = find_in_file(&image, &needles);
    let leaked: Vec<&(String, u64)> = found.iter().filter(|(n, _)| n != &kept).collect();
    assert!(leaked.is_empty(), "deleted data in the image: {leaked:?}");
    // The scan works: the kept file's marker is found.
    assert_eq!(found.iter().filter(|(n, _)| n == &kept).count(), 1);
}

// ---------------------------------------------------------------------------------------------
// 5. Size
// ---------------------------------------------------------------------------------------------

/// (block count, free blocks) from dumpe2fs.
fn blocks(image: &Path) -> (u64, u64) {
    let sb = debugfs::superblock(image);
    (
        debugfs::superblock_number(&sb, "Block count"),
        debugfs::superblock_number(&sb, "Free blocks"),
    )
}

#[test]
fn size_auto_leaves_a_quarter_or_512_mib_free() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_ok(
        &debian.oci,
        &tmp.path().join("rootfs.ext4"),
        &["--size", "auto"],
    );
    let (count, free) = blocks(&image);
    // Used blocks bound the content from above (they add metadata), so this asks for at
    // least as much free space as the rule does.
    let used = (count - free) * BLOCK;
    let want = (used / 4).max(512 << 20);
    assert!(
        free * BLOCK >= want,
        "{} MiB free of {} MiB, {} MiB used: want {} MiB",
        (free * BLOCK) >> 20,
        (count * BLOCK) >> 20,
        used >> 20,
        want >> 20
    );
    assert_eq!(std::fs::metadata(&image).unwrap().len(), count * BLOCK);
    // The default is auto.
    let default = build_ok(&debian.oci, &tmp.path().join("default.ext4"), &[]);
    assert_eq!(blocks(&default), (count, free));
}

#[test]
fn size_plus_1g_leaves_1_gib_free() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &small_layers(), Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &["--size", "+1G"]);
    let (count, free) = blocks(&image);
    assert!(
        free * BLOCK >= 1 << 30,
        "{free} free blocks of {count}: less than 1 GiB"
    );
    assert!(
        free * BLOCK < (1 << 30) + (64 << 20),
        "{free} free blocks of {count}: far more than 1 GiB"
    );
    debugfs::assert_fsck_clean(&image);
}

/// The size a "needs at least N bytes" error names.
fn needed_from_error(run: &Output) -> u64 {
    let err = stderr(run);
    err.split("needs at least ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {err:?}"))
}

#[test]
fn size_too_small_fails_cleanly() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rootfs.ext4");
    let run = build(&debian.oci, &out, &["--size", "64M"]);
    assert_clean_failure(&run, tmp.path(), &[], &["needs at least", "67108864"]);
    // The line names the size needed, in bytes, well over the 64 MiB given.
    let needed = needed_from_error(&run);
    assert!(
        needed > 500 << 20,
        "needs {needed} bytes for the Debian fixture?"
    );
}

#[test]
fn size_exact_gives_a_file_of_exactly_that_length() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_ok(
        &debian.oci,
        &tmp.path().join("rootfs.ext4"),
        &["--size", "1600M"],
    );
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 1600 << 20);
    assert_eq!(blocks(&image).0 * BLOCK, 1600 << 20);
    debugfs::assert_fsck_clean(&image);

    // A length that is no whole number of blocks: the file has it, the filesystem the
    // whole blocks within it.
    let source = crafted(tmp.path(), &small_layers(), Compress::Gzip);
    let odd = build_ok(
        &source,
        &tmp.path().join("odd.ext4"),
        &["--size", "100000001"],
    );
    assert_eq!(std::fs::metadata(&odd).unwrap().len(), 100_000_001);
    let count = blocks(&odd).0;
    assert!(
        count * BLOCK <= 100_000_001 && count * BLOCK > 90_000_000,
        "{count} blocks"
    );
    debugfs::assert_fsck_clean(&odd);
}

#[test]
fn output_is_sparse() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &small_layers(), Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &["--size", "4G"]);
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.len(), 4 << 30);
    let allocated = meta.blocks() * 512;
    assert!(
        allocated < meta.len() / 100,
        "{allocated} bytes allocated for a 4 GiB image holding a few KiB"
    );
    debugfs::assert_fsck_clean(&image);
}

// ---------------------------------------------------------------------------------------------
// 6. Determinism and identity
// ---------------------------------------------------------------------------------------------

/// Whether two files have the same bytes.
fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 4 << 20], vec![0u8; 4 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

#[test]
fn two_builds_of_the_debian_fixture_are_identical() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let a = build_ok(&debian.oci, &tmp.path().join("a.ext4"), &[]);
    let b = build_ok(&debian.oci, &tmp.path().join("b.ext4"), &[]);
    assert!(same_bytes(&a, &b), "two builds of the same source differ");
}

#[test]
fn builds_do_not_depend_on_layer_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    for (i, compress) in [
        Compress::Gzip,
        Compress::Zstd,
        Compress::None,
        Compress::Gzip,
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("run{i}"));
        let source = crafted(&dir, &every_type_layers(), compress);
        images.push(build_ok(&source, &dir.join("rootfs.ext4"), &[]));
    }
    for other in &images[1..] {
        assert!(same_bytes(&images[0], other), "{} differs", other.display());
    }
}

#[test]
fn fs_uuid_sets_the_filesystem_uuid() {
    const UUID: &str = "01234567-89ab-cdef-0123-456789abcdef";
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &small_layers(), Compress::Gzip);
    let image = build_ok(
        &source,
        &tmp.path().join("rootfs.ext4"),
        &["--fs-uuid", UUID],
    );
    assert_eq!(debugfs::superblock(&image)["Filesystem UUID"], UUID);
    // Metadata checksums are seeded by the UUID: they must match the one given.
    debugfs::assert_fsck_clean(&image);
}

#[test]
fn default_uuids_differ_between_images() {
    let tmp = tempfile::tempdir().unwrap();
    let one = crafted(
        &tmp.path().join("one"),
        &every_type_layers(),
        Compress::Gzip,
    );
    let mut layer = LayerTar::new();
    layer.file("only", b"another image");
    let two = crafted(&tmp.path().join("two"), &[layer.finish()], Compress::Gzip);
    let uuid = |source: &str, name: &str| {
        let image = build_ok(source, &tmp.path().join(name), &[]);
        debugfs::superblock(&image)["Filesystem UUID"].clone()
    };
    let (a, a_again, b) = (uuid(&one, "a"), uuid(&one, "a2"), uuid(&two, "b"));
    assert_eq!(a, a_again, "the default UUID is stable");
    assert_ne!(a, b, "two images got the same default UUID");
    // RFC 4122 version 4 form, as mke2fs makes.
    for u in [&a, &b] {
        assert_eq!(&u[14..15], "4", "{u}");
        assert!("89ab".contains(&u[19..20]), "{u}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. What build does not do yet
// ---------------------------------------------------------------------------------------------

#[test]
fn bootable_builds_fail_cleanly_without_a_kernel_or_syslinux() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(&tmp.path().join("src"), &small_layers(), Compress::Gzip);
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = work.join("disk.img");
    let o = out.to_str().unwrap();
    // The crafted image has no kernel: the error says what to add, or to use --boot none.
    for args in [
        vec!["build", &source, "-o", o],
        vec!["build", &source, "-o", o, "--table", "mbr"],
        vec!["build", &source, "-o", o, "--table", "gpt"],
    ] {
        let run = d2l(&args);
        assert_clean_failure(&run, &work, &[], &["linux-image-amd64", "--boot none"]);
    }
    // No syslinux (an empty --syslinux-dir): a clear error before any work.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = d2l(&[
        "build",
        &source,
        "-o",
        o,
        "--syslinux-dir",
        empty.to_str().unwrap(),
    ]);
    assert_clean_failure(&run, &work, &[], &["syslinux", empty.to_str().unwrap()]);
    // Nor to standard output.
    let run = build(&source, Path::new("-"), &[]);
    assert_clean_failure(&run, &work, &[], &["standard output"]);
    assert!(run.stdout.is_empty());
    assert_eq!(list_dir(&work), Vec::<String>::new());
}

#[test]
fn boot_none_still_writes_a_partitioned_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(&tmp.path().join("src"), &small_layers(), Compress::Gzip);
    let out = tmp.path().join("disk.img");
    let run = d2l(&[
        "build",
        &source,
        "-o",
        out.to_str().unwrap(),
        "--boot",
        "none",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let table = Command::new("sfdisk")
        .arg("--json")
        .arg(&out)
        .output()
        .expect("sfdisk (fdisk)");
    let json: serde_json::Value = serde_json::from_slice(&table.stdout).unwrap();
    let part = &json["partitiontable"]["partitions"][0];
    assert_eq!(part["start"], 2048);
    assert_eq!(json["partitiontable"]["label"], "dos");
    // The partition holds a clean ext4 filesystem, prepared as a machine's.
    let bytes = std::fs::read(&out).unwrap();
    let fs = tmp.path().join("part.ext4");
    std::fs::write(&fs, &bytes[1 << 20..]).unwrap();
    let fsck = Command::new("e2fsck").arg("-fn").arg(&fs).output().unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let cat = Command::new("debugfs")
        .args(["-R", "cat /etc/fstab"])
        .arg(&fs)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&cat.stdout).contains(" / ext4 "));
}

// ---------------------------------------------------------------------------------------------
// Regressions
// ---------------------------------------------------------------------------------------------

/// The superblock's times come from the newest mtime in the tree (for reproducibility); a
/// file dated in the future must not date the filesystem in the future, or e2fsck reports
/// "Superblock last write time is in the future" (and `e2fsck -f` rewrites it).
#[test]
fn a_future_mtime_does_not_date_the_superblock_in_the_future() {
    let mut layer = LayerTar::new();
    layer
        .pax(&[("mtime", b"4102444800")])
        .file("from-2100", b"future");
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &[layer.finish()], Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // ext4 superblock (at byte 1024) fields: (name, offset of the low 32 bits, of the high 8).
    let mut sb = [0u8; 1024];
    File::open(&image)
        .unwrap()
        .read_exact_at(&mut sb, 1024)
        .unwrap();
    for (name, lo, hi) in [
        ("s_wtime", 0x30, 0x274),
        ("s_lastcheck", 0x40, 0x277),
        ("s_mkfs_time", 0x108, 0x276),
    ] {
        let t = u64::from(u32::from_le_bytes(sb[lo..lo + 4].try_into().unwrap()))
            | u64::from(sb[hi]) << 32;
        assert!(t <= now, "{name} is {t}, in the future (now {now})");
    }
    debugfs::assert_fsck_clean(&image);
}

/// `--size 64M` of the Debian fixture said "needs at least 818327552 bytes (781 MiB)", but
/// `--size 781M` then failed with "needs at least 840151040 bytes (802 MiB)": the size was
/// computed with the metadata (inode tables, journal) of the too-small size given, not of
/// the size that would fit.
#[test]
fn the_size_a_too_small_error_names_is_enough() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rootfs.ext4");
    let needed = needed_from_error(&build(&debian.oci, &out, &["--size", "64M"]));
    let fits = format!("{}M", needed.div_ceil(1 << 20));
    let run = build(&debian.oci, &out, &["--size", &fits]);
    assert!(
        run.status.success(),
        "the error said {needed} bytes are needed, but --size {fits} fails: {}",
        stderr(&run)
    );
    debugfs::assert_fsck_clean(&out);
}

/// For inputs ext4 cannot hold as they are: either the build fails cleanly (exit 1, one
/// error line, nothing left behind) or the image it writes passes e2fsck. Returns whether
/// the build succeeded.
fn fsck_clean_or_clean_failure(layers: &[Vec<u8>], tmp: &Path) -> (bool, PathBuf) {
    let source = crafted(&tmp.join("src"), layers, Compress::None);
    let work = tmp.join("work");
    std::fs::create_dir(&work).unwrap();
    let image = work.join("rootfs.ext4");
    let run = build(&source, &image, &[]);
    if run.status.success() {
        debugfs::assert_fsck_clean(&image);
        (true, image)
    } else {
        assert_clean_failure(&run, &work, &[], &[]);
        (false, image)
    }
}

/// ext4 holds at most 65000 links to a file (`EXT4_LINK_MAX`): 70001 names of one file were
/// written with `i_links_count` 65000, and e2fsck reported "Inode 12 ref count is 65000,
/// should be 65500" (exit 4).
#[test]
fn a_file_with_more_names_than_ext4_can_count_is_not_written_corrupt() {
    let mut layer = LayerTar::new();
    layer.file("target", b"70001 names");
    for i in 0..70_000 {
        layer.hardlink(&format!("links/n{i:05}"), "target");
    }
    let tmp = tempfile::tempdir().unwrap();
    fsck_clean_or_clean_failure(&[layer.finish()], tmp.path());
}

/// A layer with a 4095-byte symlink target (the longest ext4 holds: one block less its NUL)
/// and one of `len` bytes.
fn long_symlink_layer(len: usize) -> Vec<u8> {
    let mut layer = LayerTar::new();
    layer
        .symlink("ok", &"a".repeat(4095))
        .symlink("too-long", &"b".repeat(len));
    layer.finish()
}

/// A 4096-byte symlink target was written into one block with no room for its NUL, and
/// e2fsck called the symlink invalid ("Symlink /too-long (inode #13) is invalid").
#[test]
fn a_symlink_target_of_4096_bytes_is_not_written_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    fsck_clean_or_clean_failure(&[long_symlink_layer(4096)], tmp.path());
}

/// A 5000-byte symlink target made d2l panic (exit 101, "range end index 5000 out of range
/// for slice of length 4096" in fs-writer's writer.rs, copying the target into one block).
#[test]
fn a_symlink_target_longer_than_a_block_does_not_panic() {
    let tmp = tempfile::tempdir().unwrap();
    fsck_clean_or_clean_failure(&[long_symlink_layer(5000)], tmp.path());
}

/// An image whose `lost+found` is a regular file: d2l added its own `lost+found` directory
/// next to it, and e2fsck found a duplicate entry 'lost+found' in the root.
#[test]
fn an_image_lost_found_that_is_no_directory_is_not_duplicated() {
    let mut layer = LayerTar::new();
    layer
        .file("lost+found", b"not a directory")
        .file("other", b"x");
    let tmp = tempfile::tempdir().unwrap();
    let (built, image) = fsck_clean_or_clean_failure(&[layer.finish()], tmp.path());
    if built {
        let root = debugfs::batch(&image, &["ls -p <2>".into()]);
        let names: Vec<String> = debugfs::parse_ls(&root[0], "")
            .into_iter()
            .map(|e| e.path)
            .collect();
        let lf = names.iter().filter(|n| *n == "lost+found").count();
        assert_eq!(lf, 1, "root entries: {names:?}");
    }
}

/// ext4 times with the extra epoch bits span [-2^31, 2^34 - 2^31 - 1] seconds (1901 to
/// 2446); the kernel clamps times outside. d2l wrapped them modulo 2^34 instead: 1874
/// (-3000000000) was stored as 2419, 2603 (20000000000) as 2059, 2^34 - 1 as -1 (1969).
#[test]
fn mtimes_ext4_cannot_hold_are_clamped_not_wrapped() {
    const MIN: i64 = -(1 << 31);
    const MAX: i64 = (1 << 34) - (1 << 31) - 1;
    let times: [i64; 5] = [-3_000_000_000, MIN, MAX, (1 << 34) - 1, 20_000_000_000];
    let mut layer = LayerTar::new();
    for t in times {
        layer
            .pax(&[("mtime", t.to_string().as_bytes())])
            .file(&format!("t{t}"), b"x");
    }
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &[layer.finish()], Compress::None);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    let cmds: Vec<String> = times.iter().map(|t| format!("stat /t{t}")).collect();
    let got: Vec<i64> = debugfs::batch(&image, &cmds)
        .iter()
        .map(|o| debugfs::parse_stat(o).mtime.0)
        .collect();
    let want: Vec<i64> = times.iter().map(|t| (*t).clamp(MIN, MAX)).collect();
    assert_eq!(got, want, "mtimes of {times:?}");
}

/// Linux device numbers have 12-bit majors and 20-bit minors, and so does ext4's encoding;
/// tar headers hold more. 5000:2000000 was silently written as 904:951680.
#[test]
fn device_numbers_ext4_cannot_hold_are_not_silently_changed() {
    let mut layer = LayerTar::new();
    layer.device("dev/huge", false, 5000, 2_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let (built, image) = fsck_clean_or_clean_failure(&[layer.finish()], tmp.path());
    if built {
        let out = debugfs::batch(&image, &["stat /dev/huge".into()]);
        assert_eq!(
            debugfs::parse_stat(&out[0]).device,
            Some((5000, 2_000_000)),
            "the image holds other device numbers than the layer"
        );
    }
}

/// Xattrs that fit neither the inode nor one block fail the build with one clear line. It
/// used to say its reason twice ("inode 12: xattr user.big does not fit: ...: xattr
/// user.big does not fit: ...").
#[test]
fn xattrs_that_do_not_fit_fail_cleanly() {
    let mut layer = LayerTar::new();
    layer
        .pax(&[("SCHILY.xattr.user.big", &[b'z'; 5000])])
        .file("carrier", b"x");
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(&tmp.path().join("src"), &[layer.finish()], Compress::None);
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let run = build(&source, &work.join("rootfs.ext4"), &[]);
    assert_clean_failure(&run, &work, &[], &["user.big", "does not fit"]);
    let err = stderr(&run);
    assert_eq!(
        err.matches("does not fit").count(),
        1,
        "the reason is given once: {err}"
    );
}

#[test]
fn bootable_disk_too_small_fails_cleanly_naming_the_size_needed() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = work.join("linux.img");
    let run = d2l(&[
        "build",
        &debian.oci,
        "-o",
        out.to_str().unwrap(),
        "--size",
        "64M",
    ]);
    assert_clean_failure(&run, &work, &[], &["disk needs at least", "(64 MiB)"]);
    // The size it names works.
    let err = common::stderr(&run);
    let mib: u64 = err
        .split("at least ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ok = d2l(&[
        "build",
        &debian.oci,
        "-o",
        out.to_str().unwrap(),
        "--size",
        &format!("{mib}M"),
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), mib << 20);
}
