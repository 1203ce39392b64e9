//! OCI image layouts (OCI image-spec image-layout.md), in a directory or a tar file.
//!
//! `oci-layout` says it is a layout, `index.json` lists the images (named by the
//! `org.opencontainers.image.ref.name` annotation), and every blob lives at `blobs/ALG/HEX`.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::digest::{Digest, VerifiedReader};
use crate::error::{Error, Result};
use crate::image::{config_platform, parse_config, Image, LayerDescriptor, Parts};
use crate::manifest::{
    parse_document, parse_index_entries, Descriptor, Document, Manifest, CONTAINERD_NAME_ANNOTATION,
};
use crate::media_type;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::source::parse_index;
use crate::store::{read_error, DirStore, Store, TarStore};

/// Largest manifest, index or config read into memory (Docker and containerd cap manifests
/// at 4 MiB; configs with long histories can be larger).
pub(crate) const MAX_JSON_SIZE: u64 = 64 << 20;
/// The file that marks an OCI image layout (image-layout.md "oci-layout file").
const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The layout's top-level index (image-layout.md "index.json file").
pub(crate) const INDEX_FILE: &str = "index.json";
/// The layout version major this reader understands (image-layout.md: "1.0.0").
const LAYOUT_VERSION_PREFIX: &str = "1.";
/// How deep nested indexes are followed.
const MAX_INDEX_DEPTH: usize = 8;

/// Opens `oci:DIR[:REF]`.
pub(crate) fn open_dir(
    dir: &Path,
    source: String,
    reference: Option<&str>,
    platform: &Platform,
) -> Result<Image> {
    let store = Arc::new(DirStore::new(dir)?);
    Layout::new(store, source, platform).open(reference)
}

/// Opens `oci-archive:FILE[:REF]`, reading the tar in place.
pub(crate) fn open_archive(
    file: &Path,
    source: String,
    reference: Option<&str>,
    platform: &Platform,
) -> Result<Image> {
    let store = Arc::new(TarStore::open(file)?);
    Layout::new(store, source, platform).open(reference)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciLayoutFile {
    image_layout_version: String,
}

/// Reads a small non-content-addressed file of the store (`oci-layout`, `index.json`,
/// `manifest.json`); `Ok(None)` when absent.
pub(crate) fn read_file(store: &dyn Store, path: &str) -> Result<Option<Vec<u8>>> {
    let Some(blob) = store.open(path)? else {
        return Ok(None);
    };
    if blob.size > MAX_JSON_SIZE {
        return Err(Error::io(
            store.describe(path),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} bytes, more than the {MAX_JSON_SIZE} allowed", blob.size),
            ),
        ));
    }
    let mut bytes = Vec::new();
    blob.reader
        .take(blob.size)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(&store.describe(path), e))?;
    Ok(Some(bytes))
}

/// Reads blob `digest` of a layout into memory, checking its size (when known), the JSON size
/// limit and its digest.
pub(crate) fn read_blob(store: &dyn Store, digest: &Digest, size: Option<u64>) -> Result<Vec<u8>> {
    let path = digest.layout_path();
    let Some(blob) = store.open(&path)? else {
        return Err(Error::BlobMissing {
            digest: digest.clone(),
            path: store.describe(&path),
        });
    };
    if let Some(size) = size {
        if blob.size != size {
            return Err(Error::BlobSizeMismatch {
                digest: digest.clone(),
                expected: size,
                actual: blob.size,
            });
        }
    }
    if blob.size > MAX_JSON_SIZE {
        return Err(Error::BlobTooLarge {
            digest: digest.clone(),
            path: store.describe(&path),
            size: blob.size,
            limit: MAX_JSON_SIZE,
        });
    }
    let mut bytes = Vec::new();
    VerifiedReader::new(blob.reader, digest.clone(), blob.size)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(&store.describe(&path), e))?;
    Ok(bytes)
}

/// The config descriptor must be an image config, when it says what it is.
pub(crate) fn check_config_type(manifest: &Manifest) -> Result<()> {
    let config = &manifest.config;
    match config.media_type.as_deref() {
        Some(mt) if !media_type::is_config(mt) => Err(Error::NotAContainerImage {
            manifest: manifest.digest.clone(),
            config: config.digest.clone(),
            media_type: mt.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Where a platform search reads manifests, indexes and configs: a layout's blobs, or a
/// registry (through the blob cache).
pub(crate) trait Documents {
    /// The verified and parsed manifest or index `desc` points at.
    fn document(&self, desc: &Descriptor) -> Result<Document>;
    /// The verified bytes of the config blob `desc` points at.
    fn config(&self, desc: &Descriptor) -> Result<Vec<u8>>;
}

/// What a platform search has come across.
#[derive(Default)]
struct Seen {
    /// Every image platform seen, in order.
    platforms: Vec<Platform>,
    /// The first manifest that was not an image, to report if nothing else turns up.
    artifact: Option<Error>,
}

/// Walks `candidates` (and nested indexes) for the first image manifest for `wanted`; an
/// error lists every platform seen when none matches. `source` names the image in messages.
pub(crate) fn select_manifest(
    docs: &dyn Documents,
    source: &str,
    wanted: &Platform,
    candidates: &[Descriptor],
) -> Result<Manifest> {
    let mut seen = Seen::default();
    if let Some(manifest) = select(docs, source, wanted, candidates, 0, &mut seen)? {
        return Ok(manifest);
    }
    if let (true, Some(artifact)) = (seen.platforms.is_empty(), seen.artifact) {
        return Err(artifact);
    }
    let mut unique: Vec<Platform> = Vec::new();
    for p in seen.platforms {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    Err(Error::NoMatchingPlatform {
        image: source.to_owned(),
        wanted: wanted.clone(),
        available: unique,
    })
}

/// One level of [`select_manifest`], noting every platform seen.
fn select(
    docs: &dyn Documents,
    source: &str,
    wanted: &Platform,
    entries: &[Descriptor],
    depth: usize,
    seen: &mut Seen,
) -> Result<Option<Manifest>> {
    for desc in entries {
        if desc.is_attestation() {
            continue;
        }
        let declared_index = desc.media_type.as_deref().is_some_and(media_type::is_index);
        if let Some(platform) = &desc.platform {
            if !declared_index && !platform.matches(wanted) {
                seen.platforms.push(platform.clone());
                continue;
            }
        }
        match docs.document(desc)? {
            Document::Index { digest, manifests } => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(Error::IndexTooDeep {
                        image: source.to_owned(),
                        digest,
                        limit: MAX_INDEX_DEPTH,
                    });
                }
                if let Some(selected) = select(docs, source, wanted, &manifests, depth + 1, seen)? {
                    return Ok(Some(selected));
                }
            }
            Document::Manifest(manifest) => {
                if let Err(not_image) = check_config_type(&manifest) {
                    // An artifact (signature, SBOM, chart) next to images: not a candidate.
                    seen.artifact.get_or_insert(not_image);
                    continue;
                }
                let platform = match &desc.platform {
                    Some(platform) => platform.clone(),
                    // No platform in the descriptor: the config says.
                    None => {
                        let config = &manifest.config;
                        config_platform(&docs.config(config)?, &config.digest)?
                    }
                };
                let matches = platform.matches(wanted);
                seen.platforms.push(platform);
                if matches {
                    return Ok(Some(manifest));
                }
            }
        }
    }
    Ok(None)
}

/// The manifest's layers as [`LayerDescriptor`]s, refusing encrypted and unknown media types.
pub(crate) fn layer_descriptors(manifest: &Manifest) -> Result<Vec<LayerDescriptor>> {
    manifest
        .layers
        .iter()
        .map(|desc| {
            let mt = desc.media_type.clone().unwrap_or_default();
            if media_type::is_encrypted(&mt) {
                return Err(Error::EncryptedLayer {
                    digest: desc.digest.clone(),
                    media_type: mt,
                });
            }
            if !media_type::is_layer(&mt) {
                return Err(Error::UnsupportedLayer {
                    digest: desc.digest.clone(),
                    media_type: mt,
                });
            }
            Ok(LayerDescriptor {
                digest: desc.digest.clone(),
                size: desc.size,
                media_type: mt,
            })
        })
        .collect()
}

impl Documents for Layout<'_> {
    fn document(&self, desc: &Descriptor) -> Result<Document> {
        let bytes = read_blob(&*self.store, &desc.digest, Some(desc.size))?;
        parse_document(&bytes, &desc.digest, desc.media_type.as_deref())
    }

    fn config(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        read_blob(&*self.store, &desc.digest, Some(desc.size))
    }
}

struct Layout<'a> {
    store: Arc<dyn Store>,
    source: String,
    wanted: &'a Platform,
}

impl<'a> Layout<'a> {
    fn new(store: Arc<dyn Store>, source: String, wanted: &'a Platform) -> Self {
        Layout {
            store,
            source,
            wanted,
        }
    }

    fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::InvalidLayout {
            path: self.store.root().to_owned(),
            reason: reason.into(),
        }
    }

    fn open(self, reference: Option<&str>) -> Result<Image> {
        let store = &*self.store;
        let marker = read_file(store, OCI_LAYOUT_FILE)?
            .ok_or_else(|| self.invalid(format!("no {OCI_LAYOUT_FILE} file")))?;
        let marker: OciLayoutFile = serde_json::from_slice(&marker)
            .map_err(|e| self.invalid(format!("{OCI_LAYOUT_FILE}: {e}")))?;
        if !marker
            .image_layout_version
            .starts_with(LAYOUT_VERSION_PREFIX)
        {
            return Err(self.invalid(format!(
                "imageLayoutVersion {:?} is not 1.x",
                marker.image_layout_version
            )));
        }
        let index = read_file(store, INDEX_FILE)?
            .ok_or_else(|| self.invalid(format!("no {INDEX_FILE}")))?;
        let entries = parse_index_entries(&index, &store.describe(INDEX_FILE))?;
        let candidates = self.choose_named(&entries, reference)?;

        let manifest = select_manifest(&self, &self.source, self.wanted, &candidates)?;
        self.build(manifest)
    }

    /// The names `index.json` entries go by, for messages: ref name, else containerd's image
    /// name, else `@N`.
    fn names(entries: &[Descriptor]) -> Vec<String> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.ref_name()
                    .or_else(|| {
                        e.annotations
                            .get(CONTAINERD_NAME_ANNOTATION)
                            .map(String::as_str)
                    })
                    .map_or_else(|| format!("@{i}"), str::to_owned)
            })
            .collect()
    }

    /// The top-level entries `reference` picks: by `@N`, by ref name, or by normalised image
    /// name. With no reference: the only entry; or all of them when none is named (a
    /// multi-platform layout written without an enclosing index).
    fn choose_named(
        &self,
        entries: &[Descriptor],
        reference: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let Some(reference) = reference else {
            return match entries {
                [] => Err(Error::NoImage {
                    image: self.source.clone(),
                }),
                [one] => Ok(vec![one.clone()]),
                several if several.iter().all(|e| e.ref_name().is_none()) => Ok(several.to_vec()),
                several => Err(Error::AmbiguousRef {
                    image: self.source.clone(),
                    available: Self::names(several),
                }),
            };
        };
        let not_found = || Error::RefNotFound {
            image: self.source.clone(),
            reference: reference.to_owned(),
            available: Self::names(entries),
        };
        if let Some(n) = parse_index(reference) {
            return entries
                .get(n)
                .map(|e| vec![e.clone()])
                .ok_or_else(not_found);
        }
        let mut found: Vec<Descriptor> = entries
            .iter()
            .filter(|e| e.ref_name() == Some(reference))
            .cloned()
            .collect();
        if found.is_empty() {
            if let Ok(wanted) = reference.parse::<Reference>() {
                let same = |name: Option<&String>| {
                    name.and_then(|n| n.parse::<Reference>().ok())
                        .is_some_and(|r| r == wanted)
                };
                found = entries
                    .iter()
                    .filter(|e| {
                        same(e.annotations.get(CONTAINERD_NAME_ANNOTATION))
                            || same(e.ref_name().map(str::to_owned).as_ref())
                    })
                    .cloned()
                    .collect();
            }
        }
        if found.is_empty() {
            Err(not_found())
        } else {
            Ok(found)
        }
    }

    /// Reads and checks the config, checks the layers' media types and presence, and builds
    /// the image.
    fn build(self, manifest: Manifest) -> Result<Image> {
        let store = &*self.store;
        let config_desc = &manifest.config;
        check_config_type(&manifest)?;
        let config_bytes = read_blob(store, &config_desc.digest, Some(config_desc.size))?;
        let config = parse_config(&config_bytes, &config_desc.digest)?;

        let layers = layer_descriptors(&manifest)?;
        let mut layer_paths = Vec::with_capacity(layers.len());
        for layer in &layers {
            let path = layer.digest.layout_path();
            let Some(blob) = store.open(&path)? else {
                return Err(Error::BlobMissing {
                    digest: layer.digest.clone(),
                    path: store.describe(&path),
                });
            };
            if blob.size != layer.size {
                return Err(Error::BlobSizeMismatch {
                    digest: layer.digest.clone(),
                    expected: layer.size,
                    actual: blob.size,
                });
            }
            layer_paths.push(path);
        }

        Parts {
            source: self.source,
            manifest_digest: Some(manifest.digest),
            manifest_media_type: manifest.media_type,
            config_digest: config_desc.digest.clone(),
            config_bytes,
            config,
            layers,
            layer_paths,
            store: self.store,
        }
        .into_image()
    }
}
