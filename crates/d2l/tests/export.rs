//! `d2l export` of crafted images, read back with an independent tar reader.

mod common;

use std::collections::BTreeMap;

use common::{d2l, stderr};
use d2l_testkit::layer::LayerTar;
use d2l_testkit::oci::{simple_image, Compress};

/// A lower layer with every entry type and an upper layer that deletes, replaces and links.
fn layers() -> Vec<Vec<u8>> {
    let capability: &[u8] = &[
        0x01, 0x00, 0x00, 0x02, 0x0a, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut lower = LayerTar::new();
    lower
        .dir("bin")
        .pax(&[
            ("SCHILY.xattr.security.capability", capability),
            ("mtime", b"1700000000.123456789"),
        ])
        .file_mode("bin/ping", b"ELF ping", 0o4755)
        .file("bin/caps", b"with caps")
        .dir_mode("tmp", 0o1777)
        .symlink("lib", "usr/lib")
        .dir("usr")
        .dir("usr/lib")
        .file("usr/lib/libc.so", b"libc")
        .device("dev/null", false, 1, 3)
        .device("dev/sda", true, 8, 0)
        .fifo("run/initctl")
        .file("etc/secret", b"TOP-SECRET-LOWER")
        .dir("var/cache/apt")
        .file("var/cache/apt/pkgcache.bin", b"cache")
        .file_owned("home/user/file", b"mine", 1000, 1000);
    let mut upper = LayerTar::new();
    upper
        .whiteout("etc/secret")
        .opaque("var/cache")
        .file("var/cache/new", b"new")
        .file("lib/libm.so", b"libm") // through the symlink: lands in usr/lib
        .hardlink("bin/ping6", "bin/ping")
        .file(&format!("deep/{}", "d/".repeat(60)), b"");
    vec![lower.finish(), upper.finish()]
}

struct TarItem {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    link: Option<String>,
    content: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
    mtime_pax: Option<String>,
    device: (u32, u32),
}

/// Python's tarfile, an independent reader that parses PAX records by their length (the
/// `tar` crate 0.4.46 splits them at newlines and so mangles binary xattr values).
const PY_READER: &str = r#"
import json, sys, tarfile
out = []
with tarfile.open(sys.argv[1], format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape") as t:
    for m in t:
        enc = lambda s: s.encode("utf-8", "surrogateescape").hex()
        x = {k[len("SCHILY.xattr."):]: enc(v) for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
        data = t.extractfile(m).read().hex() if m.isreg() else ""
        out.append({"path": m.name, "type": m.type.decode(), "mode": m.mode, "uid": m.uid, "gid": m.gid,
                    "link": m.linkname, "dev": [m.devmajor, m.devminor], "data": data, "xattrs": x,
                    "mtime": m.pax_headers.get("mtime")})
json.dump(out, sys.stdout)
"#;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn read_tar(bytes: &[u8]) -> Vec<(String, TarItem)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tar");
    std::fs::write(&path, bytes).unwrap();
    let run = std::process::Command::new("python3")
        .arg("-c")
        .arg(PY_READER)
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        run.status.success(),
        "python tarfile: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&run.stdout).unwrap();
    list.into_iter()
        .map(|v| {
            let mut path = v["path"].as_str().unwrap().to_string();
            let kind = v["type"].as_str().unwrap().chars().next().unwrap();
            if kind == '5' {
                // tarfile strips the trailing slash of directory names.
                path.push('/');
            }
            let link = v["link"]
                .as_str()
                .filter(|l| !l.is_empty())
                .map(str::to_string);
            let xattrs = v["xattrs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, x)| (k.clone(), hex(x.as_str().unwrap())))
                .collect();
            let item = TarItem {
                kind,
                mode: v["mode"].as_u64().unwrap() as u32,
                uid: v["uid"].as_u64().unwrap(),
                gid: v["gid"].as_u64().unwrap(),
                link,
                content: hex(v["data"].as_str().unwrap()),
                xattrs,
                mtime_pax: v["mtime"].as_str().map(str::to_string),
                device: (
                    v["dev"][0].as_u64().unwrap() as u32,
                    v["dev"][1].as_u64().unwrap() as u32,
                ),
            };
            (path, item)
        })
        .collect()
}

fn export_bytes(source: &str, dir: &std::path::Path) -> Vec<u8> {
    let out = dir.join("rootfs.tar");
    let run = d2l(&["export", source, "-o", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    std::fs::read(out).unwrap()
}

#[test]
fn export_writes_every_entry_type_faithfully() {
    let tmp = tempfile::tempdir().unwrap();
    let img = simple_image(&tmp.path().join("img"), &layers(), Compress::Gzip);
    let bytes = export_bytes(&img.source, tmp.path());
    let items = read_tar(&bytes);
    let paths: Vec<&str> = items.iter().map(|(p, _)| p.as_str()).collect();
    let map: BTreeMap<&str, &TarItem> = items.iter().map(|(p, i)| (p.as_str(), i)).collect();

    // Depth first, names in byte order, parents before children, no root entry.
    let mut sorted = paths.clone();
    sorted.sort_by(|a, b| {
        a.trim_end_matches('/')
            .split('/')
            .cmp(b.trim_end_matches('/').split('/'))
    });
    assert_eq!(paths, sorted);
    assert!(!paths.contains(&"./") && !paths.contains(&""));

    let ping = map["bin/ping"];
    assert_eq!(ping.mode, 0o4755);
    assert_eq!(ping.content, b"ELF ping");
    assert_eq!(ping.mtime_pax.as_deref(), Some("1700000000.123456789"));
    assert_eq!(ping.xattrs["security.capability"][4], 0x0a);
    assert_eq!(ping.xattrs["security.capability"].len(), 20);
    let ping6 = map["bin/ping6"];
    assert_eq!(ping6.kind, '1');
    assert_eq!(ping6.link.as_deref(), Some("bin/ping"));

    assert_eq!(map["tmp/"].mode, 0o1777);
    assert_eq!(map["tmp/"].kind, '5');
    assert_eq!(map["lib"].kind, '2');
    assert_eq!(map["lib"].link.as_deref(), Some("usr/lib"));
    assert_eq!(map["usr/lib/libm.so"].content, b"libm");
    assert_eq!(map["dev/null"].kind, '3');
    assert_eq!(map["dev/null"].device, (1, 3));
    assert_eq!(map["dev/sda"].kind, '4');
    assert_eq!(map["dev/sda"].device, (8, 0));
    assert_eq!(map["run/initctl"].kind, '6');
    assert_eq!(
        (map["home/user/file"].uid, map["home/user/file"].gid),
        (1000, 1000)
    );
    // Implicit parents: 0755 root.
    assert_eq!(map["home/"].mode, 0o755);
    // Whiteout and opaque directory applied; the markers themselves never appear.
    assert!(!map.contains_key("etc/secret"));
    assert!(!map.contains_key("var/cache/apt/"));
    assert_eq!(map["var/cache/new"].content, b"new");
    assert!(paths.iter().all(|p| !p.contains(".wh.")));
    // Long paths survive through PAX.
    assert!(paths.iter().any(|p| p.len() > 100));
    // The deleted secret's bytes are nowhere in the output.
    assert!(!bytes.windows(16).any(|w| w == b"TOP-SECRET-LOWER"));
}

#[test]
fn export_is_deterministic_and_independent_of_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for (i, compress) in [
        Compress::None,
        Compress::Gzip,
        Compress::Zstd,
        Compress::Gzip,
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("run{i}"));
        std::fs::create_dir(&dir).unwrap();
        let img = simple_image(&dir.join("img"), &layers(), compress);
        outputs.push(export_bytes(&img.source, &dir));
    }
    for other in &outputs[1..] {
        assert!(other == &outputs[0], "export differs between runs");
    }
}

#[test]
fn export_to_stdout_gives_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let img = simple_image(&tmp.path().join("img"), &layers(), Compress::Zstd);
    let file_bytes = export_bytes(&img.source, tmp.path());
    let run = d2l(&["export", &img.source, "-o", "-"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(run.stdout == file_bytes);
}

#[test]
fn inspect_reports_digests_and_chain_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let img = simple_image(&tmp.path().join("img"), &layers(), Compress::Gzip);
    let run = d2l(&["inspect", "--json", &img.source]);
    assert!(run.status.success(), "{}", stderr(&run));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let layers = report["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0]["digest"], img.layer_digests[0].to_string());
    assert_eq!(layers[1]["diff_id"], img.diff_ids[1].to_string());
    assert_eq!(layers[0]["chain_id"], img.diff_ids[0].to_string());
    let chain1 = d2l_registry::Digest::sha256_of(
        format!("{} {}", img.diff_ids[0], img.diff_ids[1]).as_bytes(),
    );
    assert_eq!(layers[1]["chain_id"], chain1.to_string());
    assert_eq!(report["platform"], "linux/amd64");
    assert_eq!(
        layers[0]["size"],
        std::fs::metadata(&img.layer_paths[0]).unwrap().len()
    );

    let table = d2l(&["inspect", &img.source]);
    assert!(table.status.success());
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains(&img.layer_digests[1].to_string()));
    assert!(text.contains(&chain1.to_string()));
}

/// Peak resident memory so far of a running process, in KiB (`VmHWM` in /proc/PID/status).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn memory_stays_bounded_for_a_large_layer() {
    // A 1 GiB file in a zstd layer: tiny on disk, but every byte passes through the pipeline,
    // the spill file and the output.
    const SIZE: usize = 1 << 30;
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = LayerTar::new();
    let mut content = vec![0u8; SIZE];
    for (i, b) in content.iter_mut().enumerate().step_by(4096) {
        *b = (i / 4096) as u8 | 1; // no zero block, so nothing can skip it
    }
    layer.file("big", &content).file("small", b"x");
    drop(content);
    let img = simple_image(&tmp.path().join("img"), &[layer.finish()], Compress::Zstd);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_d2l"))
        .args(["export", &img.source, "-o", "-"])
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Count the output in this thread while another samples the child's memory.
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        peak
    });
    let mut stdout = child.stdout.take().unwrap();
    let bytes = std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let status = child.wait().unwrap();
    let peak_kib = sampler.join().unwrap();
    assert!(status.success());
    assert!(
        bytes > SIZE as u64,
        "the tar holds the whole file: {bytes} bytes"
    );
    assert!(peak_kib > 0, "memory was sampled");
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB for a 1 GiB file: data is held in memory"
    );
}

/// The mtime of each directory entry of the tar d2l exports, by path without `./` or `/`.
fn dir_mtimes(tar_path: &std::path::Path) -> BTreeMap<String, u64> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar_path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .filter(|e| e.header().entry_type().is_dir())
        .map(|e| {
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let path = path
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_owned();
            (path, e.header().mtime().unwrap())
        })
        .collect()
}

/// Directories no layer declares (`implicit/` and `implicit/deeper/` of a layer holding only
/// `implicit/deeper/file`) get `$SOURCE_DATE_EPOCH` as mtime, 0 without it; declared ones
/// keep theirs whatever it is.
#[test]
fn source_date_epoch_dates_the_implicit_directories() {
    const EPOCH: u64 = 12345;
    const DECLARED: u64 = 1_600_000_000;
    let mut layer = LayerTar::new();
    layer
        .mtime(DECLARED)
        .dir("declared")
        .file("implicit/deeper/file", b"no parent entries");
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("img"), &[layer.finish()], Compress::Gzip);
    let export = |epoch: Option<u64>| {
        let out = tmp.path().join(format!("{epoch:?}.tar"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_d2l"));
        cmd.args(["export", &image.source, "-o", out.to_str().unwrap()])
            .env_remove("D2L_LOG")
            .env_remove("SOURCE_DATE_EPOCH");
        if let Some(epoch) = epoch {
            cmd.env("SOURCE_DATE_EPOCH", epoch.to_string());
        }
        let run = cmd.output().unwrap();
        assert!(run.status.success(), "{}", stderr(&run));
        dir_mtimes(&out)
    };
    let dated = export(Some(EPOCH));
    assert_eq!(dated.get("implicit"), Some(&EPOCH), "{dated:?}");
    assert_eq!(dated.get("implicit/deeper"), Some(&EPOCH), "{dated:?}");
    assert_eq!(dated.get("declared"), Some(&DECLARED), "{dated:?}");
    let undated = export(None);
    assert_eq!(undated.get("implicit"), Some(&0), "{undated:?}");
    assert_eq!(undated.get("implicit/deeper"), Some(&0), "{undated:?}");
    assert_eq!(undated.get("declared"), Some(&DECLARED), "{undated:?}");
}
