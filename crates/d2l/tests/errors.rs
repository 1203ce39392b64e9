//! Bad input: each case gives one clear error line naming what is at fault, exit code 1, and
//! leaves no file at `-o`.

mod common;

use common::{assert_clean_failure, d2l, list_dir};
use d2l_testkit::layer::LayerTar;
use d2l_testkit::oci::{simple_image, write_oci_layout, Compress, CraftedLayer};

fn two_layers() -> Vec<Vec<u8>> {
    let mut a = LayerTar::new();
    a.dir("etc")
        .file("etc/hostname", b"box\n")
        .file("etc/big", &vec![b'x'; 100_000]);
    let mut b = LayerTar::new();
    b.file("etc/motd", b"hi\n");
    vec![a.finish(), b.finish()]
}

struct Case {
    _tmp: tempfile::TempDir,
    out_dir: std::path::PathBuf,
    before: Vec<String>,
}

fn case() -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join("keep.txt"), b"unrelated").unwrap();
    let before = list_dir(&out_dir);
    Case {
        _tmp: tmp,
        out_dir,
        before,
    }
}

fn export(source: &str, case: &Case) -> std::process::Output {
    let out = case.out_dir.join("rootfs.tar");
    d2l(&["export", source, "-o", out.to_str().unwrap()])
}

#[test]
fn corrupt_blob_names_the_blob_digest() {
    let c = case();
    let img = simple_image(&c._tmp.path().join("img"), &two_layers(), Compress::Gzip);
    let mut blob = std::fs::read(&img.layer_paths[0]).unwrap();
    let mid = blob.len() / 2;
    blob[mid] ^= 0x55;
    std::fs::write(&img.layer_paths[0], &blob).unwrap();
    let out = export(&img.source, &c);
    let digest = img.layer_digests[0].to_string();
    assert_clean_failure(&out, &c.out_dir, &c.before, &[&digest, "layer 0"]);
}

#[test]
fn wrong_diff_id_names_both_digests() {
    let c = case();
    let layers: Vec<CraftedLayer> = two_layers()
        .into_iter()
        .map(|tar| CraftedLayer {
            tar,
            compress: Compress::Zstd,
        })
        .collect();
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let img = write_oci_layout(&c._tmp.path().join("img"), "latest", &layers, |config| {
        config["rootfs"]["diff_ids"][1] = serde_json::Value::String(wrong.clone());
    });
    let out = export(&img.source, &c);
    let actual = img.diff_ids[1].to_string();
    assert_clean_failure(
        &out,
        &c.out_dir,
        &c.before,
        &["layer 1", "diff_id", &wrong, &actual],
    );
}

#[test]
fn truncated_layer_is_reported() {
    let c = case();
    let mut layer = LayerTar::new();
    layer.file("a", &vec![7u8; 50_000]);
    let mut tar = layer.unterminated();
    tar.truncate(20_000);
    // Uncompressed, so the blob digest is right and the tar itself is short.
    let img = simple_image(&c._tmp.path().join("img"), &[tar], Compress::None);
    let out = export(&img.source, &c);
    assert_clean_failure(
        &out,
        &c.out_dir,
        &c.before,
        &["layer 0", "\"a\"", "truncated"],
    );
}

#[test]
fn truncated_blob_is_a_size_mismatch() {
    let c = case();
    let img = simple_image(&c._tmp.path().join("img"), &two_layers(), Compress::Gzip);
    let blob = std::fs::read(&img.layer_paths[1]).unwrap();
    std::fs::write(&img.layer_paths[1], &blob[..blob.len() - 10]).unwrap();
    let out = export(&img.source, &c);
    let digest = img.layer_digests[1].to_string();
    assert_clean_failure(&out, &c.out_dir, &c.before, &[&digest]);
}

#[test]
fn missing_blob_names_the_digest() {
    let c = case();
    let img = simple_image(&c._tmp.path().join("img"), &two_layers(), Compress::Gzip);
    std::fs::remove_file(&img.layer_paths[1]).unwrap();
    let out = export(&img.source, &c);
    let digest = img.layer_digests[1].to_string();
    assert_clean_failure(&out, &c.out_dir, &c.before, &[&digest]);
}

#[test]
fn escaping_entry_names_the_path() {
    let c = case();
    let mut layer = LayerTar::new();
    layer.file("ok", b"fine").file("../etc/shadow", b"nope");
    let img = simple_image(
        &c._tmp.path().join("img"),
        &[layer.finish()],
        Compress::Gzip,
    );
    let out = export(&img.source, &c);
    assert_clean_failure(&out, &c.out_dir, &c.before, &["../etc/shadow", "escapes"]);
}

#[test]
fn schema1_manifest_is_unsupported() {
    let c = case();
    let img = simple_image(&c._tmp.path().join("img"), &two_layers(), Compress::Gzip);
    // Replace the manifest with a schema 1 one, keeping the index pointing at it.
    let schema1 = br#"{"schemaVersion":1,"name":"x","tag":"latest","architecture":"amd64","fsLayers":[],"history":[]}"#;
    let digest = d2l_registry::Digest::sha256_of(schema1);
    let path = img.dir.join("blobs/sha256").join(digest.hex());
    std::fs::write(&path, schema1).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "digest": digest.to_string(),
            "size": schema1.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(
        img.dir.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let out = export(&img.source, &c);
    assert_clean_failure(&out, &c.out_dir, &c.before, &["schema 1"]);
}

#[test]
fn unknown_source_directory_names_the_path() {
    let c = case();
    let out = export("oci:/nonexistent/d2l-layout:latest", &c);
    assert_clean_failure(&out, &c.out_dir, &c.before, &["/nonexistent/d2l-layout"]);
}

#[test]
fn registry_references_are_not_pulled_yet() {
    let c = case();
    let out = export("debian:bookworm", &c);
    assert_clean_failure(
        &out,
        &c.out_dir,
        &c.before,
        &["docker.io/library/debian:bookworm"],
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = d2l(&["export", "oci:/x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = d2l(&["inspect", "oci:/x", "--platform", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `d2l convert X X` renamed its output over its input: the disk was lost. An output that is
/// the input, by the same path, a hard link or a symlink, is refused with one error line,
/// and the input keeps its bytes.
#[test]
fn convert_refuses_to_write_over_its_input() {
    let c = case();
    let input = c.out_dir.join("disk.img");
    let bytes: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&input, &bytes).unwrap();
    let hard = c.out_dir.join("hard.img");
    std::fs::hard_link(&input, &hard).unwrap();
    let soft = c.out_dir.join("soft.qcow2");
    std::os::unix::fs::symlink("disk.img", &soft).unwrap();
    let before = list_dir(&c.out_dir);
    let same_path = c.out_dir.join(".").join("disk.img");
    for output in [&input, &same_path, &hard, &soft] {
        let run = d2l(&["convert", input.to_str().unwrap(), output.to_str().unwrap()]);
        assert_clean_failure(&run, &c.out_dir, &before, &["is the input"]);
        assert_eq!(
            std::fs::read(&input).unwrap(),
            bytes,
            "{}",
            output.display()
        );
    }
    assert!(std::fs::symlink_metadata(&soft)
        .unwrap()
        .file_type()
        .is_symlink());
    // A file of its own is written as before.
    let other = c.out_dir.join("other.img");
    let run = d2l(&["convert", input.to_str().unwrap(), other.to_str().unwrap()]);
    assert!(run.status.success(), "{}", common::stderr(&run));
}

/// Output that scripts and log files read: with standard error going to a file (not a
/// terminal), nothing is coloured, even with every log line on; and an error says each
/// thing once (the OS error of a failed rename used to appear twice).
#[test]
fn stderr_to_a_file_has_no_escape_codes_and_no_repeats() {
    let c = case();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    simple_image(&img, &two_layers(), Compress::Gzip);
    let source = format!("oci:{}:latest", img.display());
    let log = tmp.path().join("stderr.log");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_d2l"))
        .args(["export", &source, "-o"])
        .arg(tmp.path().join("rootfs.tar"))
        .env("D2L_LOG", "debug")
        .env_remove("NO_COLOR")
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("DEBUG"), "debug lines were asked for: {text}");
    assert!(!text.contains('\u{1b}'), "escape codes in a file: {text:?}");

    // -o naming a directory: refused before any work, once.
    let out = d2l(&["export", &source, "-o", c.out_dir.to_str().unwrap()]);
    assert_clean_failure(&out, &c.out_dir, &c.before, &["is a directory"]);
    let line = common::stderr(&out);
    assert_eq!(line.matches("is a directory").count(), 1, "{line}");
}
