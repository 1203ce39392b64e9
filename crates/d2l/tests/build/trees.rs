//! The tree two ways: d2l export read by Python's tarfile, the image read by debugfs.

use crate::prelude::*;

/// What both readers say about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// file, dir, symlink, char, block, fifo.
    pub(crate) kind: &'static str,
    /// Permission bits with setuid, setgid and sticky.
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Seconds and nanoseconds.
    pub(crate) mtime: (i64, u32),
    /// Content length of a file, target length of a symlink, else 0.
    pub(crate) size: u64,
    /// sha256 of a file's content, a symlink's target, a device's `major:minor`.
    pub(crate) content: String,
    /// Names of a file (hard links), 2 + subdirectories of a directory, else 1.
    pub(crate) links: u32,
    /// For a file with several names, the smallest of them; else empty.
    pub(crate) link_group: String,
    pub(crate) xattrs: BTreeMap<String, Vec<u8>>,
}

/// Python's tarfile, an independent reader that parses PAX records by their length (the
/// `tar` crate splits them at newlines and mangles binary xattr values). Hashes contents.
pub(crate) const PY_READER: &str = r#"
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

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A PAX time (`-315619200`, `1700000000.123456789`) as seconds and nanoseconds, the
/// nanoseconds always positive (floor division, as the kernel stores times).
pub(crate) fn parse_pax_time(text: &str) -> (i64, u32) {
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
pub(crate) fn nodes_from_export(source: &str, work: &Path) -> BTreeMap<String, Node> {
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
pub(crate) fn nodes_from_image(
    image: &Path,
    work: &Path,
) -> (BTreeMap<String, Node>, BTreeMap<u32, Stat>) {
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
pub(crate) fn assert_same_tree(
    export: &BTreeMap<String, Node>,
    image: &mut BTreeMap<String, Node>,
) {
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
