//! The OCI image layouts xtask writes (the arm64 fixture, the synthetic benchmark images):
//! blobs under `blobs/sha256`, then the config, manifest, index and `oci-layout` file of one
//! image. The test kit has its own writer (`d2l_testkit::oci`) for crafted images; xtask does
//! not depend on the test kit, which brings the registry crate and its async TLS stack.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// Media types (OCI image spec, media-types.md).
pub const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// See [`GZIP_LAYER`].
pub const ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// See [`GZIP_LAYER`].
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// See [`GZIP_LAYER`].
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// See [`GZIP_LAYER`].
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Where a layout keeps its sha256 blobs.
pub fn blobs_dir(layout: &Path) -> std::path::PathBuf {
    layout.join("blobs/sha256")
}

/// `sha256:HEX` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    d2l_blob::Digest::sha256_of(bytes).to_string()
}

/// Stores `bytes` as a blob of the layout at `layout`; its digest and size.
pub fn put_blob(layout: &Path, bytes: &[u8]) -> Result<(String, u64)> {
    let digest = d2l_blob::Digest::sha256_of(bytes);
    let blobs = blobs_dir(layout);
    fs::create_dir_all(&blobs).with_context(|| blobs.display().to_string())?;
    let path = blobs.join(digest.hex());
    fs::write(&path, bytes).with_context(|| path.display().to_string())?;
    Ok((digest.to_string(), bytes.len() as u64))
}

/// A layer already stored in the layout.
pub struct Layer {
    /// `sha256:...` of the compressed blob.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// [`GZIP_LAYER`] or [`ZSTD_LAYER`].
    pub media_type: &'static str,
}

/// Writes the config (which must name the layers' diff_ids), the manifest of `layers` and an
/// index with one entry, referenced as `reference` (with `platform` if given), then the
/// `oci-layout` file.
pub fn write_image(
    layout: &Path,
    config: &Value,
    layers: &[Layer],
    platform: Option<Value>,
    reference: &str,
) -> Result<()> {
    let (config_digest, config_size) = put_blob(layout, &serde_json::to_vec(config)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": { "mediaType": CONFIG, "digest": config_digest, "size": config_size },
        "layers": layers.iter().map(|l| json!({
            "mediaType": l.media_type, "digest": l.digest, "size": l.size,
        })).collect::<Vec<_>>(),
    });
    let (manifest_digest, manifest_size) = put_blob(layout, &serde_json::to_vec(&manifest)?)?;
    // Built in this order so the bytes are the same whether serde_json keeps insertion
    // order or sorts keys.
    let mut entry = serde_json::Map::new();
    entry.insert("mediaType".into(), MANIFEST.into());
    entry.insert("digest".into(), manifest_digest.into());
    entry.insert("size".into(), manifest_size.into());
    if let Some(platform) = platform {
        entry.insert("platform".into(), platform);
    }
    entry.insert(
        "annotations".into(),
        json!({ "org.opencontainers.image.ref.name": reference }),
    );
    let index = json!({ "schemaVersion": 2, "mediaType": INDEX, "manifests": [entry] });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(())
}
