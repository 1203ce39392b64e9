//! An opened image written back out as an OCI archive (`oci-archive:`): what d2l hands an
//! image builder as the `FROM` of a generated Containerfile, so the image reaches the builder
//! exactly as d2l verified it, from any source, without a registry.
//!
//! The manifest is written anew with OCI media types (a `docker save` archive has none, and
//! Docker's types in an OCI layout are not read by every builder); the config and the layer
//! blobs are copied byte for byte, so the config digest (the image ID) and the diff_ids stay
//! what they were. Layers are streamed through [`Image::open_layer`], which fails at the end
//! of a blob whose size or digest is wrong: a damaged source gives an error, never an archive.

use std::io::{self, Read, Write};
use std::path::Path;

use serde_json::json;

use crate::media_type;
use crate::{Compression, Digest, Error, Image, Result};

/// The `org.opencontainers.image.ref.name` of the one image in the archive.
pub const ARCHIVE_REFERENCE: &str = "base";

/// Writes `image` to `out` as an OCI archive (an OCI image layout in a tar file) holding that
/// one image under [`ARCHIVE_REFERENCE`]. `path` names `out` in errors.
pub fn write_oci_archive(image: &Image, out: impl Write, path: &Path) -> Result<()> {
    let io_error = |e: io::Error| Error::io(path, e);
    let manifest = manifest_for(image)?;
    let manifest_digest = Digest::sha256_of(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type::OCI_MANIFEST,
            "digest": manifest_digest.to_string(),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": ARCHIVE_REFERENCE },
        }],
    }))
    .expect("an index serialises");

    let mut tar = tar::Builder::new(out);
    let mut add = |name: &str, size: u64, data: &mut dyn Read| {
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, data)
    };
    add(
        "oci-layout",
        OCI_LAYOUT.len() as u64,
        &mut OCI_LAYOUT.as_bytes(),
    )
    .map_err(io_error)?;
    add("index.json", index.len() as u64, &mut index.as_slice()).map_err(io_error)?;
    add(
        &manifest_digest.layout_path(),
        manifest.len() as u64,
        &mut manifest.as_slice(),
    )
    .map_err(io_error)?;
    add(
        &image.config_digest.layout_path(),
        image.config_bytes.len() as u64,
        &mut image.config_bytes.as_slice(),
    )
    .map_err(io_error)?;
    for (index, layer) in image.layers.iter().enumerate() {
        let mut reader = image.open_layer(index)?;
        add(&layer.digest.layout_path(), layer.size, &mut reader).map_err(|e| {
            // A wrong size or digest surfaces as InvalidData from the verifying reader.
            if e.kind() == io::ErrorKind::InvalidData {
                Error::InvalidDocument {
                    what: format!("layer {} of {}", layer.digest, image.source),
                    reason: e.to_string(),
                }
            } else {
                io_error(e)
            }
        })?;
    }
    tar.into_inner()
        .map_err(io_error)?
        .flush()
        .map_err(io_error)
}

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI manifest for `image`'s config and layers.
fn manifest_for(image: &Image) -> Result<Vec<u8>> {
    let layers = image
        .layers
        .iter()
        .map(|layer| {
            let compression = Compression::from_media_type(&layer.media_type).map_err(|()| {
                Error::UnsupportedLayer {
                    digest: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                }
            })?;
            let media_type = match compression {
                None | Some(Compression::None) => media_type::OCI_LAYER,
                Some(Compression::Gzip) => media_type::OCI_LAYER_GZIP,
                Some(Compression::Zstd) => media_type::OCI_LAYER_ZSTD,
            };
            Ok(json!({
                "mediaType": media_type,
                "digest": layer.digest.to_string(),
                "size": layer.size,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {
            "mediaType": media_type::OCI_CONFIG,
            "digest": image.config_digest.to_string(),
            "size": image.config_bytes.len(),
        },
        "layers": layers,
    }))
    .expect("a manifest serialises"))
}
