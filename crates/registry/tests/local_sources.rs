//! End-to-end tests: crafted OCI layouts, OCI archives and `docker save` archives, built in a
//! temporary directory from small JSON and tar blobs, opened with `open_image`.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use d2l_registry::remote::RetryPolicy;
use d2l_registry::{
    media_type, open_image, open_image_with, Digest, Error, Image, Platform, RegistryOptions,
    SourceSpec, MAX_CONFIG_SIZE, MAX_DOCUMENTS, MAX_INDEX_DEPTH, MAX_LAYERS, MAX_MANIFEST_SIZE,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Fixture builders
// ---------------------------------------------------------------------------------------------

/// A layer tar holding `files` (name, content).
fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn sha(bytes: &[u8]) -> Digest {
    Digest::sha256_of(bytes)
}

fn platform(s: &str) -> Platform {
    s.parse().unwrap()
}

fn config_json(plat: &str, diff_ids: &[Digest]) -> Vec<u8> {
    let p = platform(plat);
    let mut v = json!({
        "architecture": p.architecture,
        "os": p.os,
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>()},
    });
    if let Some(variant) = p.variant {
        v["variant"] = json!(variant);
    }
    serde_json::to_vec_pretty(&v).unwrap()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha(bytes).to_string(), "size": bytes.len()})
}

/// An OCI image layout under construction.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_owned(),
        }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    fn blob(&self, bytes: &[u8]) -> Digest {
        let d = sha(bytes);
        std::fs::write(self.blob_path(&d), bytes).unwrap();
        d
    }

    fn json_blob(&self, v: &Value) -> Vec<u8> {
        let bytes = serde_json::to_vec(v).unwrap();
        self.blob(&bytes);
        bytes
    }

    /// Writes an image (layers, config, manifest) and returns the manifest's descriptor.
    fn image(&self, plat: &str, layers: &[Vec<u8>], manifest_type: &str) -> (Value, Built) {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| sha(l)).collect();
        let config = config_json(plat, &diff_ids);
        self.blob(&config);
        let layer_descs: Vec<Value> = layers
            .iter()
            .map(|l| {
                self.blob(l);
                descriptor(media_type::OCI_LAYER, l)
            })
            .collect();
        let config_type = if manifest_type == media_type::DOCKER_MANIFEST {
            media_type::DOCKER_CONFIG
        } else {
            media_type::OCI_CONFIG
        };
        let manifest = self.json_blob(&json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": descriptor(config_type, &config),
            "layers": layer_descs,
        }));
        (
            descriptor(manifest_type, &manifest),
            Built {
                manifest: sha(&manifest),
                config: sha(&config),
                diff_ids,
            },
        )
    }

    fn index(&self, manifests: Vec<Value>) {
        let v =
            json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": manifests});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    }

    fn source(&self, reference: Option<&str>) -> SourceSpec {
        SourceSpec::Oci {
            dir: self.dir.clone(),
            reference: reference.map(Into::into),
        }
    }
}

struct Built {
    manifest: Digest,
    config: Digest,
    diff_ids: Vec<Digest>,
}

fn with_ref(mut desc: Value, name: &str) -> Value {
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": name});
    desc
}

fn with_platform(mut desc: Value, plat: &str) -> Value {
    let p = platform(plat);
    desc["platform"] = json!({"os": p.os, "architecture": p.architecture});
    if let Some(variant) = p.variant {
        desc["platform"]["variant"] = json!(variant);
    }
    desc
}

/// Tars `dir` into `out`, naming entries `./PATH` as skopeo and buildah do.
fn tar_dir_with_dot_prefix(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files);
    files.sort();
    for rel in files {
        let data = std::fs::read(dir.join(&rel)).unwrap();
        let mut h = tar::Header::new_ustar();
        let name = format!("./{rel}");
        h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.finish().unwrap();
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(root, &path, out);
        } else {
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
}

fn read_layer(image: &Image, index: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    image.open_layer(index).unwrap().read_to_end(&mut out)?;
    Ok(out)
}

/// The verification error a layer reader failed with, as the registry reports it.
fn inner_error(e: &io::Error) -> Error {
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    let inner = e.get_ref().unwrap();
    match inner.downcast_ref::<d2l_blob::Error>() {
        Some(verification) => verification.clone().into(),
        None => panic!("not a verification error: {inner}"),
    }
}

fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------------
// oci: directories
// ---------------------------------------------------------------------------------------------

#[test]
fn oci_dir_single_image() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let l0 = layer_tar(&[("etc/hostname", b"box\n")]);
    let l1 = layer_tar(&[("usr/bin/tool", b"#!/bin/sh\n")]);
    let (desc, built) = layout.image(
        "linux/amd64",
        &[l0.clone(), l1.clone()],
        media_type::OCI_MANIFEST,
    );
    layout.index(vec![desc]);

    let source = layout.source(None);
    let image = open_image(&source, &Platform::default()).unwrap();
    assert_eq!(image.source, source.to_string());
    assert_eq!(image.manifest_digest.as_ref(), Some(&built.manifest));
    assert_eq!(image.manifest_media_type, media_type::OCI_MANIFEST);
    assert_eq!(image.config_digest, built.config);
    assert_eq!(sha(&image.config_bytes), built.config);
    assert_eq!(image.platform.to_string(), "linux/amd64");
    assert_eq!(image.diff_ids, built.diff_ids);
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.layers[1].digest, sha(&l1));
    assert_eq!(image.layers[1].size, l1.len() as u64);
    assert_eq!(image.layers[1].media_type, media_type::OCI_LAYER);
    assert_eq!(
        image
            .config
            .config()
            .as_ref()
            .unwrap()
            .cmd()
            .as_ref()
            .unwrap()[0],
        "/bin/sh"
    );
    assert_eq!(read_layer(&image, 0).unwrap(), l0);
    assert_eq!(read_layer(&image, 1).unwrap(), l1);
    assert!(matches!(
        image.open_layer(2),
        Err(Error::NoSuchLayer {
            index: 2,
            count: 2,
            ..
        })
    ));
}

#[test]
fn oci_dir_several_refs() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let (d1, _) = layout.image(
        "linux/amd64",
        &[layer_tar(&[("one", b"1")])],
        media_type::OCI_MANIFEST,
    );
    let (d2, b2) = layout.image(
        "linux/amd64",
        &[layer_tar(&[("two", b"2")])],
        media_type::OCI_MANIFEST,
    );
    layout.index(vec![with_ref(d1, "v1"), with_ref(d2, "v2")]);
    let any = Platform::default();

    let image = open_image(&layout.source(Some("v2")), &any).unwrap();
    assert_eq!(image.config_digest, b2.config);
    let image = open_image(&layout.source(Some("@1")), &any).unwrap();
    assert_eq!(image.config_digest, b2.config);

    let err = open_image(&layout.source(None), &any).unwrap_err();
    assert!(matches!(err, Error::AmbiguousRef { .. }), "{err}");
    assert!(err.to_string().contains("v1, v2"), "{err}");

    let err = open_image(&layout.source(Some("v3")), &any).unwrap_err();
    assert!(matches!(err, Error::RefNotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("\"v3\"") && err.to_string().contains("v1, v2"),
        "{err}"
    );
}

/// index.json -> OCI index -> { amd64 manifest, attestation, Docker manifest list ->
/// { arm64/v8, arm/v7 } }.
fn multi_platform_layout(layout: &Layout) -> (Built, Built, Built) {
    let (amd, amd_built) = layout.image(
        "linux/amd64",
        &[layer_tar(&[("a", b"amd")])],
        media_type::OCI_MANIFEST,
    );
    let (arm64, arm64_built) = layout.image(
        "linux/arm64/v8",
        &[layer_tar(&[("a", b"arm64")])],
        media_type::DOCKER_MANIFEST,
    );
    let (arm, arm_built) = layout.image(
        "linux/arm/v7",
        &[layer_tar(&[("a", b"arm")])],
        media_type::DOCKER_MANIFEST,
    );
    let (attestation, _) = layout.image("linux/amd64", &[], media_type::OCI_MANIFEST);
    let mut attestation = with_platform(attestation, "unknown/unknown");
    attestation["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest"});

    let list = layout.json_blob(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::DOCKER_MANIFEST_LIST,
        "manifests": [with_platform(arm64, "linux/arm64/v8"), with_platform(arm, "linux/arm/v7")],
    }));
    // The nested list's descriptor has no mediaType: its own mediaType field says what it is.
    let mut list_desc = descriptor(media_type::DOCKER_MANIFEST_LIST, &list);
    list_desc.as_object_mut().unwrap().remove("mediaType");

    let top = layout.json_blob(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [attestation, with_platform(amd, "linux/amd64"), list_desc],
    }));
    layout.index(vec![with_ref(
        descriptor(media_type::OCI_INDEX, &top),
        "latest",
    )]);
    (amd_built, arm64_built, arm_built)
}

#[test]
fn nested_index_platform_choice() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let (amd, arm64, arm) = multi_platform_layout(&layout);

    let image = open_image(&layout.source(None), &platform("linux/arm64")).unwrap();
    assert_eq!(image.manifest_digest, Some(arm64.manifest));
    assert_eq!(image.manifest_media_type, media_type::DOCKER_MANIFEST);
    assert_eq!(image.platform.to_string(), "linux/arm64/v8");
    assert_eq!(
        read_layer(&image, 0).unwrap(),
        layer_tar(&[("a", b"arm64")])
    );

    let image = open_image(&layout.source(Some("latest")), &platform("linux/aarch64")).unwrap();
    assert_eq!(image.config_digest, arm64.config);
    let image = open_image(&layout.source(None), &platform("linux/x86_64")).unwrap();
    assert_eq!(image.config_digest, amd.config);
    let image = open_image(&layout.source(None), &platform("linux/armhf")).unwrap();
    assert_eq!(image.config_digest, arm.config);
}

#[test]
fn missing_platform_lists_available() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    multi_platform_layout(&layout);
    let err = open_image(&layout.source(None), &platform("linux/s390x")).unwrap_err();
    match &err {
        Error::NoMatchingPlatform {
            wanted, available, ..
        } => {
            assert_eq!(wanted.to_string(), "linux/s390x");
            let names: Vec<String> = available.iter().map(ToString::to_string).collect();
            assert_eq!(names, ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]);
        }
        other => panic!("{other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("linux/amd64, linux/arm64/v8, linux/arm/v7"),
        "{msg}"
    );
    assert!(!msg.contains("unknown"), "{msg}");
}

#[test]
fn unnamed_top_level_manifests_are_chosen_by_platform() {
    // go-containerregistry writes a multi-platform image's manifests straight into index.json,
    // without ref names and (here) without platforms: the configs say.
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let (amd, _) = layout.image("linux/amd64", &[], media_type::OCI_MANIFEST);
    let (arm, arm_built) = layout.image("linux/arm64", &[], media_type::OCI_MANIFEST);
    layout.index(vec![amd, arm]);
    let image = open_image(&layout.source(None), &platform("linux/arm64/v8")).unwrap();
    assert_eq!(image.config_digest, arm_built.config);
    assert!(image.layers.is_empty());

    // A single-platform image for another platform: the error says what it is.
    let err = open_image(&layout.source(None), &platform("linux/ppc64le")).unwrap_err();
    assert!(
        err.to_string()
            .contains("available: linux/amd64, linux/arm64"),
        "{err}"
    );
}

#[test]
fn schema1_manifest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let manifest = layout.json_blob(&json!({
        "schemaVersion": 1, "name": "library/debian", "tag": "latest", "architecture": "amd64",
        "fsLayers": [], "history": [],
    }));
    layout.index(vec![descriptor(
        media_type::DOCKER_MANIFEST_V1_SIGNED,
        &manifest,
    )]);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(matches!(err, Error::Schema1Unsupported { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("schema 1 manifests are not supported"),
        "{msg}"
    );
    assert!(msg.contains(&sha(&manifest).to_string()), "{msg}");
}

#[test]
fn encrypted_layer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let layer = b"ciphertext".to_vec();
    layout.blob(&layer);
    let config = config_json("linux/amd64", &[sha(b"plain")]);
    layout.blob(&config);
    let manifest = layout.json_blob(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": descriptor(media_type::OCI_CONFIG, &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", &layer)],
    }));
    layout.index(vec![descriptor(media_type::OCI_MANIFEST, &manifest)]);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(matches!(err, Error::EncryptedLayer { .. }), "{err}");
    assert!(err.to_string().contains(&sha(&layer).to_string()), "{err}");
}

#[test]
fn corrupt_layer_fails_when_read_to_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let layer = layer_tar(&[("file", b"good content")]);
    let (desc, _) = layout.image(
        "linux/amd64",
        std::slice::from_ref(&layer),
        media_type::OCI_MANIFEST,
    );
    layout.index(vec![desc]);
    // Same size, one byte flipped.
    let mut bad = layer.clone();
    bad[600] ^= 0xff;
    std::fs::write(layout.blob_path(&sha(&layer)), &bad).unwrap();

    let image = open_image(&layout.source(None), &Platform::default()).unwrap();
    let err = read_layer(&image, 0).unwrap_err();
    match inner_error(&err) {
        Error::BlobDigestMismatch { expected, actual } => {
            assert_eq!(expected, sha(&layer));
            assert_eq!(actual, sha(&bad));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains(&sha(&layer).to_string()), "{err}");
}

#[test]
fn corrupt_manifest_or_config_fails_before_parsing() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let (desc, built) = layout.image("linux/amd64", &[], media_type::OCI_MANIFEST);
    layout.index(vec![desc]);
    let config_path = layout.blob_path(&built.config);
    let mut config = std::fs::read(&config_path).unwrap();
    let good = config.clone();
    // Still valid JSON, same size: only the digest can tell.
    let pos = config.iter().position(|&b| b == b'/').unwrap();
    config[pos] = b'_';
    std::fs::write(&config_path, &config).unwrap();
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(
        matches!(&err, Error::BlobDigestMismatch { expected, .. } if *expected == built.config),
        "{err}"
    );
    std::fs::write(&config_path, &good).unwrap();

    let manifest_path = layout.blob_path(&built.manifest);
    let mut manifest = std::fs::read(&manifest_path).unwrap();
    manifest[0] = b' ';
    std::fs::write(&manifest_path, &manifest).unwrap();
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(
        matches!(&err, Error::BlobDigestMismatch { expected, .. } if *expected == built.manifest),
        "{err}"
    );
}

#[test]
fn blob_size_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let layer = layer_tar(&[("f", b"x")]);
    let config = config_json("linux/amd64", &[sha(&layer)]);
    layout.blob(&config);
    layout.blob(&layer);
    let mut layer_desc = descriptor(media_type::OCI_LAYER, &layer);
    layer_desc["size"] = json!(layer.len() + 1);
    let manifest = layout.json_blob(&json!({
        "schemaVersion": 2, "config": descriptor(media_type::OCI_CONFIG, &config), "layers": [layer_desc],
    }));
    layout.index(vec![descriptor(media_type::OCI_MANIFEST, &manifest)]);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    match &err {
        Error::BlobSizeMismatch {
            digest,
            expected,
            actual,
        } => {
            assert_eq!(digest, &sha(&layer));
            assert_eq!(*expected, layer.len() as u64 + 1);
            assert_eq!(*actual, layer.len() as u64);
        }
        other => panic!("{other}"),
    }

    // A manifest descriptor with the wrong size fails before the manifest is parsed.
    let mut desc = descriptor(media_type::OCI_MANIFEST, &manifest);
    desc["size"] = json!(manifest.len() - 1);
    layout.index(vec![desc]);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(
        matches!(&err, Error::BlobSizeMismatch { digest, .. } if *digest == sha(&manifest)),
        "{err}"
    );
}

#[test]
fn layer_growing_after_open_fails_as_soon_as_it_overruns() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let layer = layer_tar(&[("f", b"x")]);
    let (desc, _) = layout.image(
        "linux/amd64",
        std::slice::from_ref(&layer),
        media_type::OCI_MANIFEST,
    );
    layout.index(vec![desc]);
    let image = open_image(&layout.source(None), &Platform::default()).unwrap();
    let mut longer = layer.clone();
    longer.extend_from_slice(&[0u8; 4096]);
    std::fs::write(layout.blob_path(&sha(&layer)), &longer).unwrap();
    // open_layer sees the new size straight away.
    let err = image.open_layer(0).err().unwrap();
    assert!(matches!(err, Error::BlobSizeMismatch { .. }), "{err}");
}

#[test]
fn missing_blob_names_digest_and_path() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let layer = layer_tar(&[("f", b"x")]);
    let (desc, built) = layout.image(
        "linux/amd64",
        std::slice::from_ref(&layer),
        media_type::OCI_MANIFEST,
    );
    layout.index(vec![desc]);
    let path = layout.blob_path(&sha(&layer));
    std::fs::remove_file(&path).unwrap();
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(matches!(err, Error::BlobMissing { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&sha(&layer).to_string()), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");

    std::fs::remove_file(layout.blob_path(&built.config)).unwrap();
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(err.to_string().contains(&built.config.to_string()), "{err}");
}

#[test]
fn diff_id_count_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let layer = layer_tar(&[("f", b"x")]);
    layout.blob(&layer);
    let config = config_json("linux/amd64", &[sha(&layer), sha(b"other")]);
    layout.blob(&config);
    let manifest = layout.json_blob(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": descriptor(media_type::OCI_CONFIG, &config),
        "layers": [descriptor(media_type::OCI_LAYER, &layer)],
    }));
    layout.index(vec![descriptor(media_type::OCI_MANIFEST, &manifest)]);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LayerCountMismatch {
                layers: 1,
                diff_ids: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("1 layers") && err.to_string().contains("2 diff_ids"));
}

#[test]
fn artifact_is_not_an_image() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let config = layout.json_blob(&json!({}));
    let manifest = layout.json_blob(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": descriptor("application/vnd.cncf.helm.config.v1+json", &config),
        "layers": [],
    }));
    layout.index(vec![descriptor(media_type::OCI_MANIFEST, &manifest)]);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(matches!(err, Error::NotAContainerImage { .. }), "{err}");
}

#[test]
fn not_a_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let source = SourceSpec::Oci {
        dir: tmp.path().to_owned(),
        reference: None,
    };
    let err = open_image(&source, &Platform::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidLayout { .. }), "{err}");
    assert!(err.to_string().contains("oci-layout"), "{err}");

    let missing = SourceSpec::Oci {
        dir: tmp.path().join("nope"),
        reference: None,
    };
    let err = open_image(&missing, &Platform::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");

    std::fs::write(
        tmp.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let err = open_image(&source, &Platform::default()).unwrap_err();
    assert!(err.to_string().contains("2.0.0"), "{err}");
}

#[test]
fn unreachable_registry_is_a_clear_error() {
    // Nothing listens on port 1: the error names the registry and the cause, and no cache
    // directory is needed to say so.
    let source: SourceSpec = "docker://127.0.0.1:1/x/y:z".parse().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let options = RegistryOptions {
        retry: RetryPolicy { attempts: 1 },
        cache_dir: Some(cache.path().to_owned()),
        ..RegistryOptions::from_env()
    };
    let err = open_image_with(&source, &Platform::default(), &options).unwrap_err();
    assert!(matches!(err, Error::Registry { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("127.0.0.1:1: "), "{msg}");
    assert!(msg.to_lowercase().contains("connect"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// oci-archive: files
// ---------------------------------------------------------------------------------------------

#[test]
fn oci_archive_read_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("layout"));
    let (amd, _, arm) = multi_platform_layout(&layout);
    let archive_dir = tmp.path().join("archive");
    std::fs::create_dir(&archive_dir).unwrap();
    let file = archive_dir.join("image.tar");
    tar_dir_with_dot_prefix(&layout.dir, &file);
    std::fs::remove_dir_all(&layout.dir).unwrap();

    let source: SourceSpec = format!("oci-archive:{}:latest", file.display())
        .parse()
        .unwrap();
    let image = open_image(&source, &platform("linux/arm/v7")).unwrap();
    assert_eq!(image.config_digest, arm.config);
    assert_eq!(read_layer(&image, 0).unwrap(), layer_tar(&[("a", b"arm")]));
    let image = open_image(&source, &Platform::default()).unwrap();
    assert_eq!(image.config_digest, amd.config);
    assert_eq!(read_layer(&image, 0).unwrap(), layer_tar(&[("a", b"amd")]));

    // Nothing was unpacked next to the archive.
    assert_eq!(list_dir(&archive_dir), ["image.tar"]);
    assert_eq!(list_dir(tmp.path()), ["archive"]);
}

#[test]
fn oci_archive_corrupt_and_missing_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("layout"));
    let layer = layer_tar(&[("f", b"payload")]);
    let other = layer_tar(&[("g", b"more")]);
    let (desc, _) = layout.image(
        "linux/amd64",
        &[layer.clone(), other.clone()],
        media_type::OCI_MANIFEST,
    );
    layout.index(vec![desc]);
    let mut bad = layer.clone();
    bad[520] ^= 1;
    std::fs::write(layout.blob_path(&sha(&layer)), &bad).unwrap();
    let file = tmp.path().join("image.tar");
    tar_dir_with_dot_prefix(&layout.dir, &file);

    let source = SourceSpec::OciArchive {
        file: file.clone(),
        reference: None,
    };
    let image = open_image(&source, &Platform::default()).unwrap();
    let err = read_layer(&image, 0).unwrap_err();
    assert!(
        matches!(inner_error(&err), Error::BlobDigestMismatch { .. }),
        "{err}"
    );
    assert_eq!(read_layer(&image, 1).unwrap(), other);

    std::fs::remove_file(layout.blob_path(&sha(&other))).unwrap();
    tar_dir_with_dot_prefix(&layout.dir, &file);
    let err = open_image(&source, &Platform::default()).unwrap_err();
    assert!(matches!(err, Error::BlobMissing { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("image.tar!blobs/sha256/{}", sha(&other).hex())),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// docker-archive: files
// ---------------------------------------------------------------------------------------------

enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

fn write_tar(path: &Path, entries: &[Entry<'_>]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for entry in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match entry {
            Entry::File(name, data) => {
                h.set_size(data.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, name, *data).unwrap();
            }
            Entry::Symlink(name, target) | Entry::Hardlink(name, target) => {
                h.set_size(0);
                h.set_entry_type(if matches!(entry, Entry::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                b.append_link(&mut h, name, target).unwrap();
            }
        }
    }
    b.finish().unwrap();
}

fn docker_source(file: &Path, name_tag: Option<&str>) -> SourceSpec {
    SourceSpec::DockerArchive {
        file: file.to_owned(),
        name_tag: name_tag.map(Into::into),
    }
}

/// Two images sharing a base layer, which the second stores as a symlink (as `docker save`
/// does for a layer two images share), and a hardlink for good measure.
fn classic_archive(path: &Path) -> (Vec<u8>, Vec<u8>, Digest, Digest) {
    let base = layer_tar(&[("etc/os-release", b"ID=debian\n")]);
    let app = layer_tar(&[("app/run", b"#!/bin/sh\n")]);
    let (base_id, app_id, copy_id) = ("1".repeat(64), "2".repeat(64), "3".repeat(64));
    let c1 = config_json("linux/amd64", &[sha(&base)]);
    let c2 = config_json("linux/amd64", &[sha(&base), sha(&app)]);
    let (c1_name, c2_name) = (
        format!("{}.json", sha(&c1).hex()),
        format!("{}.json", sha(&c2).hex()),
    );
    let manifest = serde_json::to_vec(&json!([
        {"Config": c1_name, "RepoTags": ["debian:bookworm"], "Layers": [format!("{base_id}/layer.tar")]},
        {"Config": c2_name, "RepoTags": ["docker.io/me/app:1", "me/app:latest"],
         "Layers": [format!("{copy_id}/layer.tar"), format!("{app_id}/layer.tar")]},
    ]))
    .unwrap();
    let shared_link = format!("../{base_id}/layer.tar");
    let hard_target = format!("{app_id}/layer.tar");
    write_tar(
        path,
        &[
            Entry::File(&format!("{base_id}/layer.tar"), &base),
            Entry::File(&format!("{base_id}/VERSION"), b"1.0"),
            Entry::Symlink(&format!("{copy_id}/layer.tar"), &shared_link),
            Entry::File(&format!("{app_id}/real.tar"), &app),
            Entry::Hardlink(&hard_target, &format!("{app_id}/real.tar")),
            Entry::File(&c1_name, &c1),
            Entry::File(&c2_name, &c2),
            Entry::File("manifest.json", &manifest),
        ],
    );
    (base, app, sha(&c1), sha(&c2))
}

#[test]
fn docker_archive_classic_with_symlinked_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("save.tar");
    let (base, app, c1, c2) = classic_archive(&file);

    // Docker normalisation on both sides.
    for name in ["docker.io/library/debian:bookworm", "debian:bookworm"] {
        let image = open_image(&docker_source(&file, Some(name)), &Platform::default()).unwrap();
        assert_eq!(image.config_digest, c1);
        assert_eq!(image.manifest_digest, None);
        assert_eq!(image.manifest_media_type, media_type::DOCKER_MANIFEST);
        assert_eq!(image.layers[0].digest, sha(&base));
        assert_eq!(image.layers[0].media_type, media_type::DOCKER_LAYER);
        assert_eq!(read_layer(&image, 0).unwrap(), base);
    }

    let image = open_image(
        &docker_source(&file, Some("me/app")),
        &platform("linux/x86_64"),
    )
    .unwrap();
    assert_eq!(image.config_digest, c2);
    assert_eq!(image.diff_ids, [sha(&base), sha(&app)]);
    assert_eq!(image.layers[0].digest, sha(&base));
    assert_eq!(image.layers[0].size, base.len() as u64);
    assert_eq!(image.layers[1].digest, sha(&app));
    assert_eq!(read_layer(&image, 0).unwrap(), base);
    assert_eq!(read_layer(&image, 1).unwrap(), app);
    let image = open_image(&docker_source(&file, Some("@1")), &Platform::default()).unwrap();
    assert_eq!(image.config_digest, c2);

    let err = open_image(&docker_source(&file, None), &Platform::default()).unwrap_err();
    assert!(matches!(err, Error::AmbiguousRef { .. }), "{err}");
    assert!(err.to_string().contains("debian:bookworm"), "{err}");
    let err = open_image(
        &docker_source(&file, Some("debian:trixie")),
        &Platform::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::RefNotFound { .. }), "{err}");
    assert!(err.to_string().contains("me/app:latest"), "{err}");
}

#[test]
fn docker_archive_platform_mismatch_says_what_it_has() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("save.tar");
    classic_archive(&file);
    let err = open_image(
        &docker_source(&file, Some("debian:bookworm")),
        &platform("linux/arm64"),
    )
    .unwrap_err();
    match &err {
        Error::PlatformMismatch { wanted, found, .. } => {
            assert_eq!(wanted.to_string(), "linux/arm64");
            assert_eq!(found.to_string(), "linux/amd64");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn docker_archive_corrupt_uncompressed_layer() {
    // An uncompressed classic layer's digest is its diff_id: a corrupt one fails on reading.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("save.tar");
    let layer = layer_tar(&[("f", b"good")]);
    let mut bad = layer.clone();
    bad[515] ^= 1;
    let config = config_json("linux/amd64", &[sha(&layer)]);
    let config_name = format!("{}.json", sha(&config).hex());
    let manifest = serde_json::to_vec(&json!([
        {"Config": config_name, "RepoTags": null, "Layers": ["abc/layer.tar"]},
    ]))
    .unwrap();
    write_tar(
        &file,
        &[
            Entry::File("manifest.json", &manifest),
            Entry::File(&config_name, &config),
            Entry::File("abc/layer.tar", &bad),
        ],
    );
    let image = open_image(&docker_source(&file, None), &Platform::default()).unwrap();
    assert_eq!(image.layers[0].digest, sha(&layer));
    let err = read_layer(&image, 0).unwrap_err();
    assert!(
        matches!(inner_error(&err), Error::BlobDigestMismatch { .. }),
        "{err}"
    );
}

#[test]
fn docker_archive_config_name_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("save.tar");
    let config = config_json("linux/amd64", &[]);
    let wrong_name = format!("{}.json", "4".repeat(64));
    let manifest = serde_json::to_vec(&json!([{"Config": wrong_name, "Layers": []}])).unwrap();
    write_tar(
        &file,
        &[
            Entry::File("manifest.json", &manifest),
            Entry::File(&wrong_name, &config),
        ],
    );
    let err = open_image(&docker_source(&file, None), &Platform::default()).unwrap_err();
    assert!(matches!(err, Error::BlobDigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&"4".repeat(64)), "{err}");
}

#[test]
fn docker_archive_with_oci_layout_and_gzip_layer() {
    // Docker 25+: blobs/sha256/..., manifest.json pointing at them, and (here) a gzip layer
    // plus an uncompressed one.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("save.tar");
    let tar0 = layer_tar(&[("bin/busybox", b"ELF")]);
    let gz0 = gzip(&tar0);
    let tar1 = layer_tar(&[("etc/motd", b"hi")]);
    let config = config_json("linux/arm64", &[sha(&tar0), sha(&tar1)]);
    let blob = |b: &[u8]| format!("blobs/sha256/{}", sha(b).hex());
    let oci_manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": descriptor(media_type::OCI_CONFIG, &config),
        "layers": [descriptor(media_type::OCI_LAYER_GZIP, &gz0), descriptor(media_type::OCI_LAYER, &tar1)],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_INDEX,
        "manifests": [with_ref(descriptor(media_type::OCI_MANIFEST, &oci_manifest), "latest")],
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!([
        {"Config": blob(&config), "RepoTags": ["busybox:latest"], "Layers": [blob(&gz0), blob(&tar1)]},
    ]))
    .unwrap();
    write_tar(
        &file,
        &[
            Entry::File(&blob(&config), &config),
            Entry::File(&blob(&gz0), &gz0),
            Entry::File(&blob(&tar1), &tar1),
            Entry::File(&blob(&oci_manifest), &oci_manifest),
            Entry::File("index.json", &index),
            Entry::File("manifest.json", &manifest),
            Entry::File("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ],
    );
    let image = open_image(
        &docker_source(&file, Some("busybox")),
        &platform("linux/arm64"),
    )
    .unwrap();
    assert_eq!(image.config_digest, sha(&config));
    assert_eq!(image.platform.to_string(), "linux/arm64");
    assert_eq!(image.layers[0].digest, sha(&gz0));
    assert_eq!(image.layers[0].size, gz0.len() as u64);
    assert_eq!(image.layers[0].media_type, media_type::DOCKER_LAYER_GZIP);
    assert_eq!(image.layers[1].digest, sha(&tar1));
    assert_eq!(image.layers[1].media_type, media_type::DOCKER_LAYER);
    assert_eq!(read_layer(&image, 0).unwrap(), gz0);
    assert_eq!(read_layer(&image, 1).unwrap(), tar1);
    assert_eq!(list_dir(tmp.path()), ["save.tar"]);

    // The same archive also reads as an OCI archive.
    let oci = SourceSpec::OciArchive {
        file: file.clone(),
        reference: Some("latest".into()),
    };
    let image = open_image(&oci, &platform("linux/arm64")).unwrap();
    assert_eq!(image.manifest_digest, Some(sha(&oci_manifest)));
    assert_eq!(image.layers[0].media_type, media_type::OCI_LAYER_GZIP);
}

#[test]
fn docker_archive_classic_gzip_layer_is_hashed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("save.tar");
    let layer = layer_tar(&[("f", b"zipped")]);
    let gz = gzip(&layer);
    let config = config_json("linux/amd64", &[sha(&layer)]);
    let manifest = serde_json::to_vec(&json!([
        {"Config": "config.json", "RepoTags": ["x:y"], "Layers": ["l/layer.tar"]},
    ]))
    .unwrap();
    write_tar(
        &file,
        &[
            Entry::File("manifest.json", &manifest),
            Entry::File("config.json", &config),
            Entry::File("l/layer.tar", &gz),
        ],
    );
    let image = open_image(&docker_source(&file, None), &Platform::default()).unwrap();
    assert_eq!(image.config_digest, sha(&config));
    assert_eq!(image.layers[0].digest, sha(&gz));
    assert_eq!(image.layers[0].media_type, media_type::DOCKER_LAYER_GZIP);
    assert_eq!(read_layer(&image, 0).unwrap(), gz);
}

#[test]
fn docker_archive_diff_id_count_mismatch_and_missing_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("save.tar");
    let config = config_json("linux/amd64", &[sha(b"a")]);
    let manifest = serde_json::to_vec(&json!([
        {"Config": "c.json", "Layers": ["a/layer.tar", "b/layer.tar"]},
    ]))
    .unwrap();
    write_tar(
        &file,
        &[
            Entry::File("manifest.json", &manifest),
            Entry::File("c.json", &config),
        ],
    );
    let err = open_image(&docker_source(&file, None), &Platform::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LayerCountMismatch {
                layers: 2,
                diff_ids: 1,
                ..
            }
        ),
        "{err}"
    );

    let manifest =
        serde_json::to_vec(&json!([{"Config": "c.json", "Layers": ["a/layer.tar"]}])).unwrap();
    write_tar(
        &file,
        &[
            Entry::File("manifest.json", &manifest),
            Entry::File("c.json", &config),
        ],
    );
    let err = open_image(&docker_source(&file, None), &Platform::default()).unwrap_err();
    assert!(err.to_string().contains("a/layer.tar"), "{err}");

    write_tar(&file, &[Entry::File("c.json", &config)]);
    let err = open_image(&docker_source(&file, None), &Platform::default()).unwrap_err();
    assert!(err.to_string().contains("no manifest.json"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Limits: each at its value (read) and one past it (refused, naming the document)
// ---------------------------------------------------------------------------------------------

/// `value` as JSON, padded with spaces to exactly `size` bytes.
fn padded(value: &Value, size: u64) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).unwrap();
    assert!(bytes.len() as u64 <= size);
    bytes.resize(usize::try_from(size).unwrap(), b' ');
    bytes
}

/// A layout with one amd64 image without layers whose manifest is `manifest_size` bytes and
/// config `config_size` bytes (padded); returns their digests.
fn padded_image(layout: &Layout, manifest_size: u64, config_size: u64) -> (Digest, Digest) {
    let config = padded(
        &serde_json::from_slice(&config_json("linux/amd64", &[])).unwrap(),
        config_size,
    );
    layout.blob(&config);
    let manifest = padded(
        &json!({
            "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
            "config": descriptor(media_type::OCI_CONFIG, &config), "layers": [],
        }),
        manifest_size,
    );
    layout.blob(&manifest);
    layout.index(vec![descriptor(media_type::OCI_MANIFEST, &manifest)]);
    (sha(&manifest), sha(&config))
}

#[test]
fn a_manifest_of_max_manifest_size_is_read_and_one_byte_more_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let (manifest, _) = padded_image(&layout, MAX_MANIFEST_SIZE, 1000);
    let image = open_image(&layout.source(None), &Platform::default()).unwrap();
    assert_eq!(image.manifest_digest, Some(manifest));

    let (manifest, _) = padded_image(&layout, MAX_MANIFEST_SIZE + 1, 1000);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(
        matches!(err, Error::DocumentTooLarge { size: Some(s), limit, .. }
            if s == MAX_MANIFEST_SIZE + 1 && limit == MAX_MANIFEST_SIZE),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "manifest {manifest} ({}) is 4194305 bytes; d2l reads manifests and indexes of at \
             most 4194304 bytes",
            layout.blob_path(&manifest).display()
        )
    );
}

#[test]
fn a_config_of_max_config_size_is_read_and_one_byte_more_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let (_, config) = padded_image(&layout, 1000, MAX_CONFIG_SIZE);
    let image = open_image(&layout.source(None), &Platform::default()).unwrap();
    assert_eq!(image.config_digest, config);
    assert_eq!(image.config_bytes.len() as u64, MAX_CONFIG_SIZE);

    let (_, config) = padded_image(&layout, 1000, MAX_CONFIG_SIZE + 1);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "config {config} ({}) is 4194305 bytes; d2l reads configs of at most 4194304 bytes",
            layout.blob_path(&config).display()
        )
    );
}

#[test]
fn an_index_json_past_max_manifest_size_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let (desc, built) = layout.image("linux/amd64", &[], media_type::OCI_MANIFEST);
    let index =
        json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [desc]});
    std::fs::write(
        tmp.path().join("index.json"),
        padded(&index, MAX_MANIFEST_SIZE),
    )
    .unwrap();
    let image = open_image(&layout.source(None), &Platform::default()).unwrap();
    assert_eq!(image.manifest_digest, Some(built.manifest));

    std::fs::write(
        tmp.path().join("index.json"),
        padded(&index, MAX_MANIFEST_SIZE + 1),
    )
    .unwrap();
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is 4194305 bytes; d2l reads manifests and indexes of at most 4194304 bytes",
            tmp.path().join("index.json").display()
        )
    );
}

#[test]
fn an_oversized_manifest_in_an_oci_archive_is_named_in_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("layout"));
    let (manifest, _) = padded_image(&layout, MAX_MANIFEST_SIZE + 1, 1000);
    let file = tmp.path().join("image.tar");
    tar_dir_with_dot_prefix(&layout.dir, &file);
    let source = SourceSpec::OciArchive {
        file: file.clone(),
        reference: None,
    };
    let err = open_image(&source, &Platform::default()).unwrap_err();
    assert!(matches!(err, Error::DocumentTooLarge { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "manifest {manifest} ({}!blobs/sha256/{})",
            file.display(),
            manifest.hex()
        )),
        "{err}"
    );
}

/// An image of `count` layers (each a distinct tiny tar).
fn image_of_layers(layout: &Layout, count: usize) -> Built {
    let layers: Vec<Vec<u8>> = (0..count)
        .map(|i| layer_tar(&[(&format!("f{i}"), b"x")]))
        .collect();
    let (desc, built) = layout.image("linux/amd64", &layers, media_type::OCI_MANIFEST);
    layout.index(vec![desc]);
    built
}

#[test]
fn an_image_of_max_layers_is_read_and_one_more_layer_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    image_of_layers(&layout, MAX_LAYERS);
    let image = open_image(&layout.source(None), &Platform::default()).unwrap();
    assert_eq!(image.layers.len(), MAX_LAYERS);

    let built = image_of_layers(&layout, MAX_LAYERS + 1);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(
        matches!(err, Error::TooManyLayers { count, limit, .. }
            if count == MAX_LAYERS + 1 && limit == MAX_LAYERS),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "manifest {} lists 129 layers; d2l reads images of at most 128",
            built.manifest
        )
    );
}

#[test]
fn a_docker_archive_past_max_layers_is_refused_before_reading_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("save.tar");
    let write = |count: usize| {
        let layers: Vec<Vec<u8>> = (0..count)
            .map(|i| layer_tar(&[(&format!("f{i}"), b"x")]))
            .collect();
        let diff_ids: Vec<Digest> = layers.iter().map(|l| sha(l)).collect();
        let config = config_json("linux/amd64", &diff_ids);
        let names: Vec<String> = (0..count).map(|i| format!("{i}/layer.tar")).collect();
        let manifest = serde_json::to_vec(&json!([{"Config": "c.json", "Layers": names}])).unwrap();
        let mut entries = vec![
            Entry::File("manifest.json", &manifest),
            Entry::File("c.json", &config),
        ];
        for (name, layer) in names.iter().zip(&layers) {
            entries.push(Entry::File(name, layer));
        }
        write_tar(&file, &entries);
    };
    write(MAX_LAYERS);
    let image = open_image(&docker_source(&file, None), &Platform::default()).unwrap();
    assert_eq!(image.layers.len(), MAX_LAYERS);

    write(MAX_LAYERS + 1);
    let err = open_image(&docker_source(&file, None), &Platform::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}!manifest.json entry \"c.json\" lists 129 layers; d2l reads images of at most 128",
            file.display()
        )
    );
}

/// index.json -> `depth` indexes, one inside the other -> an amd64 image.
fn nested_indexes(layout: &Layout, depth: usize) {
    let (mut desc, _) = layout.image("linux/amd64", &[], media_type::OCI_MANIFEST);
    for _ in 0..depth {
        let index = layout.json_blob(&json!({
            "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [desc],
        }));
        desc = descriptor(media_type::OCI_INDEX, &index);
    }
    layout.index(vec![desc]);
}

#[test]
fn indexes_nested_max_index_depth_deep_are_read_and_one_more_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    nested_indexes(&layout, MAX_INDEX_DEPTH);
    open_image(&layout.source(None), &Platform::default()).unwrap();

    nested_indexes(&layout, MAX_INDEX_DEPTH + 1);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert!(
        matches!(err, Error::IndexTooDeep { limit, .. } if limit == MAX_INDEX_DEPTH),
        "{err}"
    );
    assert!(err.to_string().contains("nested more than 8 deep"), "{err}");
}

/// index.json -> `empty` empty indexes and an amd64 image whose descriptor gives no
/// platform: finding it reads every index, the manifest and its config.
fn documents_to_read(layout: &Layout, empty: usize) -> Built {
    let mut entries: Vec<Value> = (0..empty)
        .map(|i| {
            let index = layout.json_blob(&json!({
                "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [],
                "annotations": {"n": i.to_string()},
            }));
            descriptor(media_type::OCI_INDEX, &index)
        })
        .collect();
    let (desc, built) = layout.image("linux/amd64", &[], media_type::OCI_MANIFEST);
    entries.push(desc);
    layout.index(entries);
    built
}

#[test]
fn max_documents_are_read_to_find_an_image_and_one_more_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let built = documents_to_read(&layout, MAX_DOCUMENTS - 2);
    let image = open_image(&layout.source(None), &Platform::default()).unwrap();
    assert_eq!(image.config_digest, built.config);

    let built = documents_to_read(&layout, MAX_DOCUMENTS - 1);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: finding the image reads more than 256 manifests, indexes and configs \
             (stopped before {})",
            layout.source(None),
            built.config
        )
    );
}

#[test]
fn a_manifest_without_schema_version_2_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let config = config_json("linux/amd64", &[]);
    layout.blob(&config);
    let manifest = layout.json_blob(&json!({
        "mediaType": media_type::OCI_MANIFEST,
        "config": descriptor(media_type::OCI_CONFIG, &config), "layers": [],
    }));
    layout.index(vec![descriptor(media_type::OCI_MANIFEST, &manifest)]);
    let err = open_image(&layout.source(None), &Platform::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "manifest {}: no schemaVersion (it must be 2)",
            sha(&manifest)
        )
    );
}
