//! `docker save` archives (Docker image spec v1.2 "combined image JSON + filesystem
//! changeset format"), read in place.
//!
//! `manifest.json` lists the images: `[{"Config": PATH, "RepoTags": [...], "Layers": [PATH]}]`.
//! Classic archives store the config as `<hex>.json` and layers as `<id>/layer.tar`, which may
//! be symlinks to another layer's tar; Docker 25+ stores an OCI layout inside and points
//! `manifest.json` at `blobs/sha256/<hex>`.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::compression::{Compression, ZSTD_MAGIC};
use crate::digest::{Digest, Sha256, SHA256_HEX_LEN};
use crate::error::{Error, Result};
use crate::image::{check_layer_count, parse_config, Image, LayerDescriptor, Parts};
use crate::layout::read_file;
use crate::limits::{DocumentKind, MAX_LAYERS};
use crate::media_type;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::source::parse_index;
use crate::store::{read_error, Store, TarStore};

/// The archive's table of contents.
const MANIFEST_FILE: &str = "manifest.json";
/// The file pre-1.10 `docker save` wrote instead of `manifest.json`.
const LEGACY_REPOSITORIES_FILE: &str = "repositories";
/// Read buffer for hashing a compressed layer.
const HASH_BUFFER_SIZE: usize = 128 << 10;

#[derive(Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

impl ManifestEntry {
    fn tags(&self) -> &[String] {
        self.repo_tags.as_deref().unwrap_or_default()
    }
}

/// The digest a path names, if it is `blobs/ALG/HEX` (Docker 25+ archives).
fn digest_from_blob_path(path: &str) -> Option<Digest> {
    let rest = path.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

/// The digest a classic config name `<hex>.json` (or a blob path) promises.
fn digest_from_config_path(path: &str) -> Option<Digest> {
    if let Some(d) = digest_from_blob_path(path) {
        return Some(d);
    }
    let file = path.rsplit('/').next()?;
    let hex = file.strip_suffix(".json")?;
    (hex.len() == SHA256_HEX_LEN)
        .then(|| format!("sha256:{hex}").parse().ok())
        .flatten()
}

struct Archive<'a> {
    file: &'a Path,
    store: Arc<TarStore>,
    source: String,
}

/// Opens `docker-archive:FILE[:NAME:TAG]`.
pub(crate) fn open(
    file: &Path,
    source: String,
    name_tag: Option<&str>,
    platform: &Platform,
) -> Result<Image> {
    let store = Arc::new(TarStore::open(file)?);
    Archive {
        file,
        store,
        source,
    }
    .open(name_tag, platform)
}

impl Archive<'_> {
    fn error(&self, reason: impl Into<String>) -> Error {
        Error::DockerArchive {
            file: self.file.to_owned(),
            reason: reason.into(),
        }
    }

    fn open(self, name_tag: Option<&str>, wanted: &Platform) -> Result<Image> {
        let store: &dyn Store = &*self.store;
        let Some(manifest) = read_file(store, DocumentKind::Manifest, MANIFEST_FILE)? else {
            let why = if store.open(LEGACY_REPOSITORIES_FILE)?.is_some() {
                "no manifest.json: archives from docker before 1.10 are not supported"
            } else {
                "no manifest.json: not a docker save archive"
            };
            return Err(self.error(why));
        };
        let entries: Vec<ManifestEntry> =
            serde_json::from_slice(&manifest).map_err(|source| Error::Json {
                what: store.describe(MANIFEST_FILE),
                error: source,
            })?;
        let entry = self.choose(&entries, name_tag)?;
        if entry.layers.len() > MAX_LAYERS {
            return Err(Error::TooManyLayers {
                what: format!("{} entry {:?}", store.describe(MANIFEST_FILE), entry.config),
                count: entry.layers.len(),
                limit: MAX_LAYERS,
            });
        }

        // Config: hash the bytes as stored; the name promises a digest in both layouts.
        let (config_bytes, config_digest) = self.read_config(&entry.config)?;
        let config = parse_config(&config_bytes, &config_digest)?;
        check_layer_count(
            &self.source,
            &config_digest,
            entry.layers.len(),
            config.diff_ids.len(),
        )?;
        if !config.platform.matches(wanted) {
            return Err(Error::PlatformMismatch {
                image: self.source.clone(),
                wanted: Box::new(wanted.clone()),
                found: Box::new(config.platform.clone()),
            });
        }

        let mut layers = Vec::with_capacity(entry.layers.len());
        let mut layer_paths = Vec::with_capacity(entry.layers.len());
        for (path, diff_id) in entry.layers.iter().zip(&config.diff_ids) {
            let (layer, resolved) = self.describe_layer(path, diff_id)?;
            layers.push(layer);
            layer_paths.push(resolved);
        }

        Parts {
            source: self.source,
            manifest_digest: None,
            manifest_media_type: media_type::DOCKER_MANIFEST.to_owned(),
            config_digest,
            config_bytes,
            config,
            layers,
            layer_paths,
            store: self.store,
        }
        .into_image()
    }

    /// Picks the `manifest.json` entry: by `@N`, by NAME:TAG against RepoTags (both
    /// normalised), or the only one.
    fn choose<'e>(
        &self,
        entries: &'e [ManifestEntry],
        name_tag: Option<&str>,
    ) -> Result<&'e ManifestEntry> {
        let names = || -> Vec<String> {
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| match e.tags() {
                    [] => format!("@{i}"),
                    tags => tags.join(" "),
                })
                .collect()
        };
        let Some(name_tag) = name_tag else {
            return match entries {
                [] => Err(Error::NoImage {
                    image: self.source.clone(),
                }),
                [one] => Ok(one),
                _ => Err(Error::AmbiguousRef {
                    image: self.source.clone(),
                    available: names(),
                }),
            };
        };
        let not_found = || Error::RefNotFound {
            image: self.source.clone(),
            reference: name_tag.to_owned(),
            available: names(),
        };
        if let Some(n) = parse_index(name_tag) {
            return entries.get(n).ok_or_else(not_found);
        }
        let wanted: Reference = name_tag.parse()?;
        entries
            .iter()
            .find(|e| {
                e.tags()
                    .iter()
                    .any(|t| t.parse::<Reference>().is_ok_and(|r| r == wanted))
            })
            .ok_or_else(not_found)
    }

    /// Reads the config at `path`, checking it against the digest its name promises.
    fn read_config(&self, path: &str) -> Result<(Vec<u8>, Digest)> {
        let store: &dyn Store = &*self.store;
        let bytes = read_file(store, DocumentKind::Config, path)?.ok_or_else(|| {
            self.error(format!("config {path} named in manifest.json is missing"))
        })?;
        if let Some(expected) = digest_from_config_path(path) {
            let actual = expected.same_algorithm_of(&bytes);
            if actual != expected {
                return Err(Error::BlobDigestMismatch { expected, actual });
            }
        }
        let image_id = Digest::sha256_of(&bytes);
        Ok((bytes, image_id))
    }

    /// Describes the layer at `path`: digest, size, media type by magic, and where its bytes
    /// really are (after links).
    fn describe_layer(&self, path: &str, diff_id: &Digest) -> Result<(LayerDescriptor, String)> {
        let Some((resolved, offset, size)) = self.store.resolve(path)? else {
            return Err(self.error(format!("layer {path} named in manifest.json is missing")));
        };
        let location = self.store.describe(&resolved);
        let mut reader = self.store.range(&resolved, offset, size);
        let mut magic = [0u8; ZSTD_MAGIC.len()];
        let got = read_up_to(&mut reader, &mut magic).map_err(|e| read_error(&location, e))?;
        let compression = Compression::from_magic(&magic[..got]);

        let digest = match digest_from_blob_path(path).or_else(|| digest_from_blob_path(&resolved))
        {
            Some(digest) => digest,
            None if compression == Compression::None => diff_id.clone(),
            None => {
                tracing::debug!(layer = %location, "hashing compressed docker-archive layer");
                let mut hasher = Sha256::new();
                hasher.update(&magic[..got]);
                let mut buf = vec![0u8; HASH_BUFFER_SIZE];
                loop {
                    let n = reader
                        .read(&mut buf)
                        .map_err(|e| read_error(&location, e))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                hasher.finish()
            }
        };
        Ok((
            LayerDescriptor {
                digest,
                size,
                media_type: compression.docker_layer_media_type().to_owned(),
            },
            resolved,
        ))
    }
}

/// Reads until `buf` is full or input ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_from_paths() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let want: Digest = format!("sha256:{hex}").parse().unwrap();
        assert_eq!(
            digest_from_blob_path(&format!("blobs/sha256/{hex}")),
            Some(want.clone())
        );
        assert_eq!(digest_from_blob_path(&format!("{hex}/layer.tar")), None);
        assert_eq!(
            digest_from_config_path(&format!("{hex}.json")),
            Some(want.clone())
        );
        assert_eq!(
            digest_from_config_path(&format!("blobs/sha256/{hex}")),
            Some(want)
        );
        assert_eq!(digest_from_config_path("config.json"), None);
    }
}
