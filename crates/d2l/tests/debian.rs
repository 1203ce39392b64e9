//! `d2l export` and `d2l inspect` of the real Debian fixture (`cargo xtask fixtures`), checked
//! against an independent implementation: `umoci unpack`.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::{d2l, stderr};

/// What both sides say about one path.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u64,
    gid: u64,
    /// Symlink target, hard link group leader, or device numbers.
    detail: String,
    /// sha256 of a regular file's content.
    content: String,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn sha256(bytes: &[u8]) -> String {
    d2l_registry::Digest::sha256_of(bytes).to_string()
}

fn export(source: &str, out: &Path) -> Vec<u8> {
    let run = d2l(&["export", source, "-o", out.to_str().unwrap()]);
    assert!(run.status.success(), "export {source}: {}", stderr(&run));
    std::fs::read(out).unwrap()
}

/// Reads an exported tar into path -> Node. Hard links record the path of the first name.
/// The content of a PAX sparse 1.0 member from its data: decimal lines (the number of runs,
/// then each run's offset and length) padded to 512 bytes, then the runs' bytes, each run
/// but the last padded to 512; holes are zeros, and the last run ends at the file's size.
fn unsparse(data: &[u8]) -> Vec<u8> {
    let mut pos = 0;
    let mut number = || -> usize {
        let end = pos + data[pos..].iter().position(|&b| b == b'\n').unwrap();
        let n = std::str::from_utf8(&data[pos..end])
            .unwrap()
            .parse()
            .unwrap();
        pos = end + 1;
        n
    };
    let count = number();
    let runs: Vec<(usize, usize)> = (0..count).map(|_| (number(), number())).collect();
    let mut at = pos.next_multiple_of(512);
    let size = runs.last().map_or(0, |&(o, l)| o + l);
    let mut out = vec![0u8; size];
    for &(offset, len) in &runs {
        out[offset..offset + len].copy_from_slice(&data[at..at + len]);
        at += len.next_multiple_of(512);
    }
    out
}

fn nodes_from_tar(bytes: &[u8]) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut xattrs = BTreeMap::new();
        // A PAX sparse 1.0 member (export writes files with zero blocks so): the real
        // name, and its data is a map of runs then the runs; the tar crate knows neither.
        let mut sparse_name = None;
        if let Some(ext) = entry.pax_extensions().unwrap() {
            for e in ext {
                let e = e.unwrap();
                let key = e.key().unwrap();
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(name.to_string(), e.value_bytes().to_vec());
                } else if key == "GNU.sparse.name" {
                    sparse_name = Some(e.value().unwrap().to_string());
                }
            }
        }
        let h = entry.header().clone();
        let path = match &sparse_name {
            Some(name) => name.clone(),
            None => String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
        };
        let path = path.trim_end_matches('/').to_string();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        if sparse_name.is_some() {
            content = unsparse(&content);
        }
        let (kind, detail) = match h.entry_type() {
            tar::EntryType::Regular => ("file", String::new()),
            tar::EntryType::Link => ("file", link.clone()),
            tar::EntryType::Directory => ("dir", String::new()),
            tar::EntryType::Symlink => ("symlink", link.clone()),
            tar::EntryType::Char | tar::EntryType::Block => (
                if h.entry_type() == tar::EntryType::Char {
                    "char"
                } else {
                    "block"
                },
                format!(
                    "{}:{}",
                    h.device_major().unwrap().unwrap(),
                    h.device_minor().unwrap().unwrap()
                ),
            ),
            tar::EntryType::Fifo => ("fifo", String::new()),
            other => panic!("unexpected entry type {other:?} at {path}"),
        };
        let content = if h.entry_type() == tar::EntryType::Regular {
            sha256(&content)
        } else {
            String::new()
        };
        let node = Node {
            kind,
            mode: h.mode().unwrap() & 0o7777,
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            detail,
            content,
            xattrs,
        };
        out.insert(path, node);
    }
    // A hard link entry carries the first name's data: give it the same content and
    // metadata, and record its group by that first name on both names.
    let links: Vec<(String, String)> = out
        .iter()
        .filter(|(_, n)| n.kind == "file" && !n.detail.is_empty())
        .map(|(p, n)| (p.clone(), n.detail.clone()))
        .collect();
    for (path, leader) in links {
        let (content, mode, uid, gid, xattrs) = {
            let l = &out[&leader];
            (l.content.clone(), l.mode, l.uid, l.gid, l.xattrs.clone())
        };
        let n = out.get_mut(&path).unwrap();
        (n.content, n.mode, n.uid, n.gid, n.xattrs) = (content, mode, uid, gid, xattrs);
        out.get_mut(&leader).unwrap().detail = leader.clone();
    }
    out
}

/// Walks an unpacked rootfs into path -> Node, grouping hard links like `nodes_from_tar`
/// does: by the first path in export order (depth first, bytewise sorted names).
fn nodes_from_dir(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut first_by_inode: BTreeMap<u64, String> = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        // Depth-first in sorted order: process in order, recursing immediately.
        let mut subdirs = Vec::new();
        for name in names {
            let path = dir.join(&name);
            let rel = format!("{prefix}{}", name.to_string_lossy());
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let ft = meta.file_type();
            let mut detail = String::new();
            let mut content = String::new();
            let kind = if ft.is_dir() {
                subdirs.push((path.clone(), format!("{rel}/")));
                "dir"
            } else if ft.is_symlink() {
                detail = std::fs::read_link(&path)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                "symlink"
            } else if ft.is_file() {
                content = sha256(&std::fs::read(&path).unwrap());
                if meta.nlink() > 1 {
                    detail = first_by_inode
                        .entry(meta.ino())
                        .or_insert_with(|| rel.clone())
                        .clone();
                }
                "file"
            } else if ft.is_char_device() || ft.is_block_device() {
                let rdev = meta.rdev();
                detail = format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev));
                if ft.is_char_device() {
                    "char"
                } else {
                    "block"
                }
            } else if ft.is_fifo() {
                "fifo"
            } else {
                panic!("unexpected file type at {rel}");
            };
            let node = Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid().into(),
                gid: meta.gid().into(),
                detail,
                content,
                xattrs: xattrs_of(&path),
            };
            out.insert(rel, node);
        }
        // Reverse so the stack pops them in sorted order.
        stack.extend(subdirs.into_iter().rev());
    }
    // Which name of a hard link group counts as first can differ between this walk and the
    // tar's order; `normalise_links` names every group by its smallest path on both sides.
    out
}

fn xattrs_of(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 64 * 1024];
    let n = rustix::fs::llistxattr(path, &mut names).unwrap_or(0);
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name_str = String::from_utf8_lossy(name).into_owned();
        let mut value = vec![0u8; 64 * 1024];
        let len = rustix::fs::lgetxattr(path, name, &mut value).unwrap();
        out.insert(name_str, value[..len].to_vec());
    }
    out
}

/// Hard link groups named by their smallest member path, so both sides agree however each
/// chose its first name.
fn normalise_links(nodes: &mut BTreeMap<String, Node>) {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, n) in nodes.iter() {
        if n.kind == "file" && !n.detail.is_empty() {
            groups
                .entry(n.detail.clone())
                .or_default()
                .push(path.clone());
        }
    }
    for members in groups.values() {
        let smallest = members.iter().min().unwrap().clone();
        for m in members {
            nodes.get_mut(m).unwrap().detail = smallest.clone();
        }
    }
}

#[test]
fn export_is_the_same_from_all_three_source_forms() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let oci = export(&debian.oci, &tmp.path().join("oci.tar"));
    let archive = export(&debian.oci_archive, &tmp.path().join("oci-archive.tar"));
    let docker = export(&debian.docker_archive, &tmp.path().join("docker.tar"));
    assert!(
        oci.len() > 100_000_000,
        "the Debian rootfs is hundreds of MB, got {}",
        oci.len()
    );
    assert!(oci == archive, "oci and oci-archive exports differ");
    assert!(oci == docker, "oci and docker-archive exports differ");
    // Deterministic: a second run gives the same bytes.
    let again = export(&debian.oci, &tmp.path().join("again.tar"));
    assert!(oci == again, "two exports of the same source differ");
}

#[test]
fn export_applies_the_second_layer() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let nodes = nodes_from_tar(&export(&debian.oci, &tmp.path().join("oci.tar")));
    assert!(!debian.layer2_removed.is_empty() && !debian.layer2_replaced.is_empty());
    for removed in &debian.layer2_removed {
        let rel = removed.trim_start_matches('/');
        assert!(
            !nodes.contains_key(rel),
            "{removed} was deleted by layer 2 but is exported"
        );
        let prefix = format!("{rel}/");
        assert!(
            !nodes.keys().any(|p| p.starts_with(&prefix)),
            "children of {removed} survive"
        );
    }
    for added in &debian.layer2_added {
        assert!(
            nodes.contains_key(added.trim_start_matches('/')),
            "{added} missing"
        );
    }
    assert!(nodes
        .keys()
        .all(|p| !p.split('/').any(|c| c.starts_with(".wh."))));
    assert!(nodes["usr/bin/bash"].mode & 0o111 != 0);
    assert!(
        nodes.keys().any(|p| p.starts_with("boot/vmlinuz-")),
        "the kernel is in the image"
    );
}

#[test]
fn export_matches_umoci_unpack() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this cross-check runs umoci unpack as root (CI runs as root)"
    );
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let mut ours = nodes_from_tar(&export(&debian.oci, &tmp.path().join("oci.tar")));
    let bundle = tmp.path().join("bundle");
    let layout = format!("{}:bookworm", debian.oci_dir.display());
    let run = std::process::Command::new("umoci")
        .args(["unpack", "--image", &layout])
        .arg(&bundle)
        .output()
        .expect("run umoci (cargo xtask fixtures installs it)");
    assert!(
        run.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut theirs = nodes_from_dir(&bundle.join("rootfs"));
    normalise_links(&mut ours);
    normalise_links(&mut theirs);
    assert!(
        ours.len() > 5000,
        "a Debian rootfs has thousands of entries, got {}",
        ours.len()
    );
    let only_ours: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    let only_theirs: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only in d2l: {only_ours:?}\nonly in umoci: {only_theirs:?}"
    );
    let mut differences = Vec::new();
    for (path, node) in &ours {
        if &theirs[path] != node {
            differences.push(format!("{path}: d2l {node:?} umoci {:?}", theirs[path]));
        }
    }
    assert!(
        differences.is_empty(),
        "{} differences, first ones:\n{}",
        differences.len(),
        differences[..differences.len().min(10)].join("\n")
    );
}

#[test]
fn inspect_of_the_fixture_matches_its_manifest() {
    let debian = d2l_testkit::debian();
    for source in [&debian.oci, &debian.oci_archive] {
        let run = d2l(&["inspect", "--json", source]);
        assert!(run.status.success(), "{}", stderr(&run));
        let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(report["config_digest"], debian.config_digest.as_str());
        assert_eq!(report["platform"], "linux/amd64");
        let layers = report["layers"].as_array().unwrap();
        assert_eq!(layers.len(), debian.layers.len());
        for (got, want) in layers.iter().zip(&debian.layers) {
            assert_eq!(got["diff_id"], want.diff_id.as_str());
        }
    }
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(
            &d2l(&["inspect", "--json", &debian.oci]).stdout
        )
        .unwrap()["manifest_digest"],
        debian.manifest_digest.as_str()
    );
}

#[test]
fn interrupted_export_leaves_no_file() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rootfs.tar");
    for signal in [rustix::process::Signal::INT, rustix::process::Signal::TERM] {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_d2l"))
            .args(["export", &debian.oci, "-o", out.to_str().unwrap()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the partial output holds data: the tar is being written.
        let started = std::time::Instant::now();
        let partial_size = || {
            std::fs::read_dir(tmp.path())
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .max()
                .unwrap_or(0)
        };
        while partial_size() < 1 << 20 {
            assert!(
                started.elapsed().as_secs() < 60,
                "no partial output appeared"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, signal).unwrap();
        let result = child.wait_with_output().unwrap();
        assert_eq!(result.status.code(), Some(130), "{}", stderr(&result));
        assert_eq!(
            common::list_dir(tmp.path()),
            Vec::<String>::new(),
            "files left after {signal:?}"
        );
    }
}
