//! Writes crafted OCI image layouts (and archives of them) from layer tarballs.

use std::io::Write;
use std::path::{Path, PathBuf};

use d2l_registry::Digest;
use serde_json::json;

/// How a crafted layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compress {
    fn media_type(self) -> &'static str {
        match self {
            Compress::None => "application/vnd.oci.image.layer.v1.tar",
            Compress::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compress::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Compresses a tar stream.
    pub fn apply(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Compress::None => tar.to_vec(),
            Compress::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(tar).unwrap();
                enc.finish().unwrap()
            }
            Compress::Zstd => zstd::encode_all(tar, 3).unwrap(),
        }
    }
}

/// One layer of a crafted image.
pub struct CraftedLayer {
    /// The uncompressed tar stream.
    pub tar: Vec<u8>,
    /// Compression of the blob.
    pub compress: Compress,
}

/// What [`write_oci_layout`] wrote.
#[derive(Debug)]
pub struct CraftedImage {
    /// The layout directory.
    pub dir: PathBuf,
    /// `oci:DIR:REF` for it.
    pub source: String,
    /// Blob paths of the layers, bottom first.
    pub layer_paths: Vec<PathBuf>,
    /// Layer blob digests.
    pub layer_digests: Vec<Digest>,
    /// diff_ids as written in the config.
    pub diff_ids: Vec<Digest>,
    /// Path of the config blob.
    pub config_path: PathBuf,
    /// Path of the manifest blob.
    pub manifest_path: PathBuf,
}

fn put_blob(dir: &Path, bytes: &[u8]) -> (Digest, PathBuf) {
    let digest = Digest::sha256_of(bytes);
    let path = dir.join("blobs/sha256").join(digest.hex());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    (digest, path)
}

/// Writes an OCI layout with one linux/amd64 image tagged `reference` made of `layers`.
/// `edit_config` may change the config JSON before it is stored (to craft bad diff_ids).
pub fn write_oci_layout(
    dir: &Path,
    reference: &str,
    layers: &[CraftedLayer],
    edit_config: impl FnOnce(&mut serde_json::Value),
) -> CraftedImage {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descriptors = Vec::new();
    let mut layer_paths = Vec::new();
    let mut layer_digests = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let (descriptor, path, digest, diff_id) = store_layer(dir, layer);
        descriptors.push(descriptor);
        layer_paths.push(path);
        layer_digests.push(digest);
        diff_ids.push(diff_id);
    }
    let mut config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "history": [],
    });
    edit_config(&mut config);
    finish_layout(
        dir,
        reference,
        descriptors,
        &config,
        (layer_paths, layer_digests, diff_ids),
    )
}

/// Writes an image of `layers` (each compressed with `compress`) with no config edits.
pub fn simple_image(dir: &Path, layers: &[Vec<u8>], compress: Compress) -> CraftedImage {
    let layers: Vec<CraftedLayer> = layers
        .iter()
        .map(|tar| CraftedLayer {
            tar: tar.clone(),
            compress,
        })
        .collect();
    write_oci_layout(dir, "latest", &layers, |_| {})
}

/// Writes an OCI layout at `dir` with one image tagged `reference`: the image `base_ref` of
/// the layout `base_dir` (its layer blobs hard-linked or copied, its config kept) with
/// `layers` on top, the config changed by `edit_config`. How a test makes `FROM base` plus a
/// few files without an image builder.
pub fn extend_oci_layout(
    base_dir: &Path,
    base_ref: &str,
    dir: &Path,
    reference: &str,
    layers: &[CraftedLayer],
    edit_config: impl FnOnce(&mut serde_json::Value),
) -> CraftedImage {
    let read_json = |path: PathBuf| -> serde_json::Value {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&bytes).unwrap()
    };
    let blob_path = |root: &Path, digest: &str| {
        root.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index = read_json(base_dir.join("index.json"));
    let manifest_digest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == base_ref)
        .unwrap_or_else(|| panic!("no {base_ref} in {}", base_dir.display()))["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let manifest = read_json(blob_path(base_dir, &manifest_digest));
    let mut config = read_json(blob_path(
        base_dir,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let mut descriptors: Vec<serde_json::Value> = manifest["layers"].as_array().unwrap().clone();
    let mut layer_paths = Vec::new();
    let mut layer_digests = Vec::new();
    for descriptor in &descriptors {
        let digest = descriptor["digest"].as_str().unwrap();
        let (from, to) = (blob_path(base_dir, digest), blob_path(dir, digest));
        if !to.exists() && std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).unwrap();
        }
        layer_digests.push(digest.parse().unwrap());
        layer_paths.push(to);
    }
    let mut diff_ids: Vec<Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().parse().unwrap())
        .collect();
    for layer in layers {
        let (descriptor, path, digest, diff_id) = store_layer(dir, layer);
        descriptors.push(descriptor);
        layer_paths.push(path);
        layer_digests.push(digest);
        diff_ids.push(diff_id);
    }
    config["rootfs"]["diff_ids"] =
        json!(diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>());
    edit_config(&mut config);
    finish_layout(
        dir,
        reference,
        descriptors,
        &config,
        (layer_paths, layer_digests, diff_ids),
    )
}

/// Stores `layer`'s blob in the layout at `dir`: its descriptor, path, digest and diff_id.
fn store_layer(dir: &Path, layer: &CraftedLayer) -> (serde_json::Value, PathBuf, Digest, Digest) {
    let blob = layer.compress.apply(&layer.tar);
    let (digest, path) = put_blob(dir, &blob);
    let descriptor = json!({
        "mediaType": layer.compress.media_type(),
        "digest": digest.to_string(),
        "size": blob.len(),
    });
    (descriptor, path, digest, Digest::sha256_of(&layer.tar))
}

/// Stores `config` and a manifest of `descriptors` in the layout at `dir`, and an index
/// naming it `reference`: what every crafted layout ends with.
fn finish_layout(
    dir: &Path,
    reference: &str,
    descriptors: Vec<serde_json::Value>,
    config: &serde_json::Value,
    (layer_paths, layer_digests, diff_ids): (Vec<PathBuf>, Vec<Digest>, Vec<Digest>),
) -> CraftedImage {
    let config_bytes = serde_json::to_vec(config).unwrap();
    let (config_digest, config_path) = put_blob(dir, &config_bytes);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config_bytes.len(),
        },
        "layers": descriptors,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let (manifest_digest, manifest_path) = put_blob(dir, &manifest_bytes);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest.to_string(),
            "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": reference},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    CraftedImage {
        source: format!("oci:{}:{reference}", dir.display()),
        dir: dir.to_path_buf(),
        layer_paths,
        layer_digests,
        diff_ids,
        config_path,
        manifest_path,
    }
}
