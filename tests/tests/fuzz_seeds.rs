//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/TARGET/`) from the tests' crafted
//! inputs. Not run by `cargo test`: run it when the crafted inputs change, and commit the
//! result (`fuzz/seeds.sh` also writes the disk images, with qemu-img; the VHDX ones are
//! written here, packed as the disk_readers target's mode 5 reads them).
//!
//! ```sh
//! cargo test -p d2l-testkit --test fuzz_seeds -- --ignored
//! ```

use std::path::{Path, PathBuf};

use d2l_registry::Digest;
use d2l_testkit::layer::{gnu_sparse_tar, LayerTar};

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn put(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(corpus(target).join(name), bytes).unwrap();
}

/// Layer tars: every entry type, whiteouts, PAX and GNU extensions, sparse files, and two
/// layers back to back (the target applies what follows the first archive as a second).
fn tar_layer() {
    let mut l = LayerTar::new();
    l.dir("etc")
        .file("etc/hostname", b"d2l\n")
        .file_mode("usr/bin/tool", b"#!/bin/sh\n", 0o4755)
        .file_owned("home/u/f", b"x", 1000, 1000)
        .symlink("bin", "usr/bin")
        .hardlink("etc/hn", "etc/hostname")
        .device("dev/null", false, 1, 3)
        .device("dev/sda", true, 8, 0)
        .fifo("run/fifo");
    put("tar_layer", "entry_types.tar", &l.finish());

    let mut lower = LayerTar::new();
    lower
        .dir("a")
        .file("a/x", b"1")
        .file("a/y", b"2")
        .dir("b")
        .file("b/z", b"3");
    let mut upper = LayerTar::new();
    upper.whiteout("a/x").opaque("b").file("b/new", b"4");
    let mut both = lower.finish();
    both.extend(upper.finish());
    put("tar_layer", "whiteouts_two_layers.tar", &both);

    let mut l = LayerTar::new();
    l.pax(&[
        ("path", "a/".repeat(70).as_bytes()),
        ("SCHILY.xattr.user.k", b"v"),
        (
            "SCHILY.xattr.security.capability",
            &[1, 0, 0, 2, 0, 0, 0, 0],
        ),
        ("mtime", b"1700000000.123456789"),
        ("uid", b"4294967295"),
    ])
    .file("placeholder", b"pax")
    .pax_global(&[("comment", b"global")])
    .gnu_long(b'L', "long/".repeat(40).as_bytes())
    .file("short", b"gnu long name")
    .symlink("l", &"t".repeat(150))
    .file_bytes(b"\xff\xfename", b"not utf-8");
    put("tar_layer", "pax_gnu_long.tar", &l.finish());

    let mut l = LayerTar::new();
    l.file(".wh..wh.plnk/1234", b"stashed")
        .hardlink("linked", ".wh..wh.plnk/1234")
        .file(".wh..wh.aufs", b"")
        .dir(".wh..wh.orph");
    put("tar_layer", "aufs.tar", &l.finish());

    let sparse = gnu_sparse_tar(
        &["--sparse", "--format=pax"],
        "sparse",
        1 << 20,
        &[(0, 4096), (512 << 10, 8192)],
    );
    put("tar_layer", "sparse_pax.tar", &sparse);
    let sparse = gnu_sparse_tar(
        &["--sparse", "--format=gnu"],
        "sparse",
        1 << 20,
        &[(4096, 4096)],
    );
    put("tar_layer", "sparse_gnu.tar", &sparse);

    let mut l = LayerTar::new();
    l.file("truncated", &[7; 3000]);
    put("tar_layer", "unterminated.tar", &l.unterminated());
}

const SEPARATOR: &[u8] = b"\n%%\n";

fn documents(mode: u8, docs: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![mode];
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(SEPARATOR);
        }
        out.extend_from_slice(doc);
    }
    out
}

/// Image documents with placeholders (see fuzz/fuzz_targets/image_documents.rs), and two
/// real archives.
fn image_documents() {
    let mut layer = LayerTar::new();
    layer.file("etc/hostname", b"d2l\n");
    let layer = layer.finish();
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["@D3@"]},"history":[]}"#;
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@D2@","size":@S2@},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"@D3@","size":@S3@}]}"#;
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@D1@","size":@S1@,"annotations":{"org.opencontainers.image.ref.name":"latest"},"platform":{"architecture":"amd64","os":"linux"}}]}"#;
    put(
        "image_documents",
        "oci_layout",
        &documents(0, &[index, manifest, config, &layer]),
    );
    put(
        "image_documents",
        "oci_layout_ref",
        &documents(1, &[index, manifest, config, &layer]),
    );

    // An index of indexes (a manifest list, Docker's types), several platforms, an
    // attestation, and the same manifest referred to twice.
    let top = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"@D1@","size":@S1@}]}"#;
    let list = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"@D2@","size":@S2@,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"@D2@","size":@S2@,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@D2@","size":@S2@,"platform":{"architecture":"unknown","os":"unknown"},"annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}"#;
    let docker_manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"@D3@","size":@S3@},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"@D4@","size":@S4@}]}"#;
    let config4 =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["@D4@"]}}"#;
    put(
        "image_documents",
        "nested_index",
        &documents(0, &[top, list, docker_manifest, config4, &layer]),
    );

    let docker = br#"[{"Config":"blobs/sha256/@H1@","RepoTags":["d2l:latest"],"Layers":["blobs/sha256/@H2@"]}]"#;
    let config2 =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["@D2@"]}}"#;
    put(
        "image_documents",
        "docker_archive",
        &documents(2, &[docker, config2, &layer]),
    );

    // Real archives, as the tests craft them.
    let tmp = tempfile::tempdir().unwrap();
    let image = d2l_testkit::oci::simple_image(
        &tmp.path().join("layout"),
        std::slice::from_ref(&layer),
        d2l_testkit::oci::Compress::None,
    );
    let mut archive = tar::Builder::new(Vec::new());
    archive.append_dir_all(".", &image.dir).unwrap();
    let mut bytes = vec![3];
    bytes.extend(archive.into_inner().unwrap());
    put("image_documents", "oci_archive.tar", &bytes);

    let config2 = String::from_utf8(config2.to_vec())
        .unwrap()
        .replace("@D2@", &Digest::sha256_of(&layer).to_string());
    let config_digest = Digest::sha256_of(config2.as_bytes());
    let docker = format!(
        r#"[{{"Config":"{}.json","RepoTags":["d2l:latest"],"Layers":["l/layer.tar"]}}]"#,
        config_digest.hex()
    );
    let mut archive = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("manifest.json".to_owned(), docker.as_bytes()),
        (format!("{}.json", config_digest.hex()), config2.as_bytes()),
        ("l/layer.tar".to_owned(), &layer[..]),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, path, data).unwrap();
    }
    let mut bytes = vec![4];
    bytes.extend(archive.into_inner().unwrap());
    put("image_documents", "docker_archive.tar", &bytes);
}

fn references() {
    let d = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    for (i, text) in [
        "debian".to_owned(),
        "debian:bookworm".to_owned(),
        "docker.io/library/debian:bookworm".to_owned(),
        "user/app".to_owned(),
        "localhost:5000/a/b:t".to_owned(),
        format!("quay.io/x/y:tag@{d}"),
        format!("name@{d}"),
        "docker://registry.example:443/ns/img:v1.2".to_owned(),
        "oci:/tmp/layout:latest".to_owned(),
        "oci:/a:b/c".to_owned(),
        "oci:/a:b:".to_owned(),
        "oci-archive:image.tar:@0".to_owned(),
        "docker-archive:save.tar:name:tag".to_owned(),
        "docker-archive:save.tar:@1".to_owned(),
        "linux/amd64".to_owned(),
        "linux/arm64/v8".to_owned(),
        "windows/amd64".to_owned(),
        d.to_owned(),
        format!("sha512:{}", "ab".repeat(64)),
        "[::1]:5000/img".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        put("references", &format!("{i:02}"), text.as_bytes());
    }
}

/// The disk_readers target's mode 5: a VHDX as records of (4 KiB page number, length, bytes)
/// for its pages that hold anything, trailing zeros left out, then an empty record at its end.
fn vhdx_pages(image: &[u8]) -> Vec<u8> {
    const PAGE: usize = 4096;
    let mut packed = vec![5];
    let mut record = |page: usize, bytes: &[u8]| {
        packed.extend_from_slice(&u16::try_from(page).unwrap().to_le_bytes());
        packed.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_le_bytes());
        packed.extend_from_slice(bytes);
    };
    for (page, bytes) in image.chunks(PAGE).enumerate() {
        if let Some(last) = bytes.iter().rposition(|&b| b != 0) {
            record(page, &bytes[..=last]);
        }
    }
    record(image.len().div_ceil(PAGE), &[]);
    packed
}

/// VHDX seeds for disk_readers, from qemu-img (qemu-utils): a dynamic image with data in two
/// blocks, and a fixed one.
fn disk_readers_vhdx() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |program: &str, args: &[&str]| {
        let status = std::process::Command::new(program)
            .args(args)
            .current_dir(tmp.path())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{program} {args:?}");
    };
    run(
        "qemu-img",
        &["create", "-q", "-f", "vhdx", "dynamic.vhdx", "16M"],
    );
    run(
        "qemu-io",
        &[
            "-f",
            "vhdx",
            "-c",
            "write -P 0xab 0 4k",
            "-c",
            "write -P 0xcd 9m 4k",
            "dynamic.vhdx",
        ],
    );
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vhdx",
            "-o",
            "subformat=fixed,block_state_zero=off",
            "fixed.vhdx",
            "1M",
        ],
    );
    for name in ["dynamic.vhdx", "fixed.vhdx"] {
        let image = std::fs::read(tmp.path().join(name)).unwrap();
        put("disk_readers", name, &vhdx_pages(&image));
    }
}

#[test]
#[ignore = "writes fuzz/corpus: run by hand, see the module's comment"]
fn write_fuzz_seeds() {
    tar_layer();
    image_documents();
    references();
    disk_readers_vhdx();
}
