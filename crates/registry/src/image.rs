//! An opened image: verified manifest and config, layer descriptors, and access to the layers.

use std::fmt;
use std::io::Read;
use std::sync::Arc;

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use crate::digest::{Digest, VerifiedReader};
use crate::error::{Error, Result};
use crate::limits::MAX_LAYERS;
use crate::platform::Platform;
use crate::remote::{self, RegistryOptions};
use crate::source::SourceSpec;
use crate::store::{Blob, BlobRange, Store};
use crate::{docker_archive, layout};

/// The only `rootfs.type` the OCI image-spec defines (config.md).
const ROOTFS_TYPE_LAYERS: &str = "layers";

/// One layer of an image, as its manifest (or `docker save` archive) describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LayerDescriptor {
    /// Digest of the blob's raw (possibly compressed) bytes.
    pub digest: Digest,
    /// Size of the raw blob in bytes.
    pub size: u64,
    /// Media type, e.g. `application/vnd.oci.image.layer.v1.tar+gzip`; see [`crate::media_type`].
    pub media_type: String,
}

/// An image read from a local source, with every JSON blob verified.
///
/// Layers are not read until [`Image::open_layer`] is called, and are verified as they stream.
#[derive(Clone)]
pub struct Image {
    /// The source as the user wrote it.
    pub source: String,
    /// Digest of the manifest blob; `None` for a classic `docker save` archive, which has none.
    pub manifest_digest: Option<Digest>,
    /// The manifest's media type (for a `docker save` archive, Docker's schema 2 manifest type,
    /// which is what its `manifest.json` entry amounts to).
    pub manifest_media_type: String,
    /// sha256 of the config bytes as stored: the image ID.
    pub config_digest: Digest,
    /// The config blob exactly as stored.
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfiguration,
    /// The config's os/architecture/variant, as written there.
    pub platform: Platform,
    /// The layers, base first.
    pub layers: Vec<LayerDescriptor>,
    /// The config's `rootfs.diff_ids`, one per layer: sha256 of each layer's uncompressed tar.
    pub diff_ids: Vec<Digest>,
    store: Arc<dyn Store>,
    layer_paths: Vec<String>,
}

impl Image {
    /// Opens layer `index` (0 is the base layer): a reader over the raw, still compressed blob
    /// bytes, which fails with `InvalidData` on a size or digest mismatch (see
    /// [`VerifiedReader`]).
    pub fn open_layer(&self, index: usize) -> Result<Box<dyn Read + Send>> {
        let raw = self.open_unverified_layer(index)?;
        let layer = &self.layers[index];
        Ok(Box::new(VerifiedReader::new(
            raw,
            layer.digest.clone(),
            layer.size,
        )))
    }

    /// Opens layer `index` as stored, for a reader that verifies its size and digest itself
    /// (layer application does, as it hashes every byte anyway); the stored size is checked.
    pub fn open_unverified_layer(&self, index: usize) -> Result<Box<dyn Read + Send>> {
        Ok(self.open_stored_layer(index)?.reader)
    }

    /// Where layer `index` lies in a host file, for positional reads (unverified: the reader
    /// of [`Image::open_unverified_layer`] is what checks its size and digest).
    pub fn layer_range(&self, index: usize) -> Result<BlobRange> {
        Ok(self.open_stored_layer(index)?.range)
    }

    /// Layer `index` as its store holds it, its size checked.
    fn open_stored_layer(&self, index: usize) -> Result<Blob> {
        let (Some(layer), Some(path)) = (self.layers.get(index), self.layer_paths.get(index))
        else {
            return Err(Error::NoSuchLayer {
                image: self.source.clone(),
                index,
                count: self.layers.len(),
            });
        };
        let Some(blob) = self.store.open(path)? else {
            return Err(Error::BlobMissing {
                digest: layer.digest.clone(),
                path: self.store.describe(path),
            });
        };
        if blob.size != layer.size {
            return Err(Error::BlobSizeMismatch {
                digest: layer.digest.clone(),
                expected: layer.size,
                actual: blob.size,
            });
        }
        Ok(blob)
    }
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("source", &self.source)
            .field("manifest_digest", &self.manifest_digest)
            .field("manifest_media_type", &self.manifest_media_type)
            .field("config_digest", &self.config_digest)
            .field("config_bytes", &self.config_bytes.len())
            .field("platform", &self.platform)
            .field("layers", &self.layers)
            .field("diff_ids", &self.diff_ids)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Opens the image `source` names, choosing `platform` from a multi-platform index, and
/// verifies its manifest and config. Layers are verified as they are read. A registry is
/// reached with [`RegistryOptions::from_env`]; see [`open_image_with`].
pub fn open_image(source: &SourceSpec, platform: &Platform) -> Result<Image> {
    open_image_with(source, platform, &RegistryOptions::from_env())
}

/// [`open_image`] with options for registries (credentials, CAs, cache, progress). A
/// registry image's layers are downloaded into the cache once the first is opened, several
/// at once, and [`Image::open_layer`] waits for the one asked for.
pub fn open_image_with(
    source: &SourceSpec,
    platform: &Platform,
    options: &RegistryOptions,
) -> Result<Image> {
    let name = source.to_string();
    tracing::debug!(source = %name, %platform, "opening image");
    let image = match source {
        SourceSpec::Oci { dir, reference } => {
            layout::open_dir(dir, name, reference.as_deref(), platform)?
        }
        SourceSpec::OciArchive { file, reference } => {
            layout::open_archive(file, name, reference.as_deref(), platform)?
        }
        SourceSpec::DockerArchive { file, name_tag } => {
            docker_archive::open(file, name, name_tag.as_deref(), platform)?
        }
        SourceSpec::Registry(reference) => remote::open(reference, platform, options)?,
    };
    tracing::debug!(
        source = %image.source,
        config = %image.config_digest,
        layers = image.layers.len(),
        "opened image"
    );
    Ok(image)
}

/// What the other modules hand over to make an [`Image`].
pub(crate) struct Parts {
    pub source: String,
    pub manifest_digest: Option<Digest>,
    pub manifest_media_type: String,
    pub config_digest: Digest,
    pub config_bytes: Vec<u8>,
    pub config: ParsedConfig,
    pub layers: Vec<LayerDescriptor>,
    pub layer_paths: Vec<String>,
    pub store: Arc<dyn Store>,
}

impl Parts {
    /// Checks that layers and diff_ids pair up, and builds the image.
    pub(crate) fn into_image(self) -> Result<Image> {
        check_layer_count(
            &self.source,
            &self.config_digest,
            self.layers.len(),
            self.config.diff_ids.len(),
        )?;
        Ok(Image {
            source: self.source,
            manifest_digest: self.manifest_digest,
            manifest_media_type: self.manifest_media_type,
            config_digest: self.config_digest,
            config_bytes: self.config_bytes,
            config: self.config.config,
            platform: self.config.platform,
            layers: self.layers,
            diff_ids: self.config.diff_ids,
            store: self.store,
            layer_paths: self.layer_paths,
        })
    }
}

/// The manifest must list exactly one layer per diff_id, and no more than [`MAX_LAYERS`].
pub(crate) fn check_layer_count(
    source: &str,
    config: &Digest,
    layers: usize,
    diff_ids: usize,
) -> Result<()> {
    if diff_ids > MAX_LAYERS {
        return Err(Error::TooManyLayers {
            what: format!("config {config}"),
            count: diff_ids,
            limit: MAX_LAYERS,
        });
    }
    if layers == diff_ids {
        Ok(())
    } else {
        Err(Error::LayerCountMismatch {
            image: source.to_owned(),
            config: config.clone(),
            layers,
            diff_ids,
        })
    }
}

/// An image config, parsed and checked.
pub(crate) struct ParsedConfig {
    pub config: ImageConfiguration,
    pub platform: Platform,
    pub diff_ids: Vec<Digest>,
}

#[derive(Deserialize)]
struct RawConfigPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// The platform a config names, read without oci-spec's enums (which alias some names).
pub(crate) fn config_platform(bytes: &[u8], digest: &Digest) -> Result<Platform> {
    let raw: RawConfigPlatform = serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: format!("config {digest}"),
        error: source,
    })?;
    if raw.os.is_empty() || raw.architecture.is_empty() {
        return Err(Error::InvalidDocument {
            what: format!("config {digest}"),
            reason: "no \"os\" or no \"architecture\"".to_owned(),
        });
    }
    Ok(Platform::new(
        &raw.os,
        &raw.architecture,
        raw.variant.as_deref(),
    ))
}

/// Parses config `digest` (already verified): platform, rootfs type, diff_ids.
pub(crate) fn parse_config(bytes: &[u8], digest: &Digest) -> Result<ParsedConfig> {
    let what = || format!("config {digest}");
    let platform = config_platform(bytes, digest)?;
    let config: ImageConfiguration =
        serde_json::from_slice(bytes).map_err(|source| Error::Json {
            what: what(),
            error: source,
        })?;
    let rootfs = config.rootfs();
    if rootfs.typ() != ROOTFS_TYPE_LAYERS {
        return Err(Error::RootfsType {
            config: digest.clone(),
            found: rootfs.typ().clone(),
        });
    }
    let diff_ids = rootfs
        .diff_ids()
        .iter()
        .map(|d| {
            d.parse::<Digest>().map_err(|e| Error::InvalidDocument {
                what: what(),
                reason: format!("rootfs.diff_ids: {e}"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ParsedConfig {
        config,
        platform,
        diff_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn config_with_docker_extras_parses() {
        // Fields Docker writes that the OCI spec does not know, and nulls where it has them.
        let json = format!(
            r#"{{"architecture":"arm","variant":"v7","os":"linux","container_config":{{"Env":null}},
            "docker_version":"24.0.0","config":{{"Env":["A=b"],"ExposedPorts":null,"Labels":null,
            "Cmd":["sh"],"Healthcheck":{{"Test":["NONE"]}}}},"rootfs":{{"type":"layers","diff_ids":["{DIFF}"]}},
            "history":[{{"created_by":"x","empty_layer":true}}]}}"#
        );
        let digest = Digest::sha256_of(json.as_bytes());
        let parsed = parse_config(json.as_bytes(), &digest).unwrap();
        assert_eq!(parsed.platform.to_string(), "linux/arm/v7");
        assert_eq!(parsed.diff_ids[0].to_string(), DIFF);
        assert_eq!(
            parsed.config.config().as_ref().unwrap().cmd().as_deref(),
            Some(&["sh".to_owned()][..])
        );
    }

    #[test]
    fn rootfs_type_must_be_layers() {
        let json =
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layered","diff_ids":[]}}"#;
        let digest = Digest::sha256_of(json.as_bytes());
        let err = parse_config(json.as_bytes(), &digest).err().unwrap();
        assert!(matches!(err, Error::RootfsType { .. }), "{err}");
        assert!(err.to_string().contains(&digest.to_string()));
    }

    #[test]
    fn bad_diff_id_is_an_error() {
        let json = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:XY"]}}"#;
        let digest = Digest::sha256_of(json.as_bytes());
        let err = parse_config(json.as_bytes(), &digest).err().unwrap();
        assert!(err.to_string().contains("diff_ids"), "{err}");
    }

    #[test]
    fn image_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Image>();
        send_sync::<Error>();
    }

    #[test]
    fn layer_count_check_names_both_counts() {
        let d: Digest = DIFF.parse().unwrap();
        let err = check_layer_count("oci:x", &d, 2, 3).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("2 layers") && msg.contains("3 diff_ids"),
            "{msg}"
        );
    }
}
