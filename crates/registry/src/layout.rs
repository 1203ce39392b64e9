//! OCI image layouts (OCI image-spec image-layout.md), in a directory or a tar file.
//!
//! `oci-layout` says it is a layout, `index.json` lists the images (named by the
//! `org.opencontainers.image.ref.name` annotation), and every blob lives at `blobs/ALG/HEX`.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::digest::{Digest, VerifiedReader};
use crate::error::{quote, Error, Result};
use crate::image::{config_platform, parse_config, Image, LayerDescriptor, Parts};
use crate::limits::{DocumentKind, MAX_DOCUMENTS, MAX_INDEX_DEPTH};
use crate::manifest::{
    parse_document, parse_index_entries, Descriptor, Document, Manifest, CONTAINERD_NAME_ANNOTATION,
};
use crate::media_type;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::source::parse_index;
use crate::store::{read_error, DirStore, Store, TarStore};

/// The file that marks an OCI image layout (image-layout.md "oci-layout file").
const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The layout's top-level index (image-layout.md "index.json file").
pub(crate) const INDEX_FILE: &str = "index.json";
/// The layout version major this reader understands (image-layout.md: "1.0.0").
const LAYOUT_VERSION_PREFIX: &str = "1.";

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

/// Reads a small non-content-addressed file of the store, a `kind` document (`oci-layout`,
/// `index.json`, `manifest.json`, a `docker save` config), checking the kind's size limit
/// first; `Ok(None)` when absent.
pub(crate) fn read_file(
    store: &dyn Store,
    kind: DocumentKind,
    path: &str,
) -> Result<Option<Vec<u8>>> {
    let Some(blob) = store.open(path)? else {
        return Ok(None);
    };
    kind.check(|| store.describe(path), blob.size)?;
    let mut bytes = Vec::new();
    blob.reader
        .take(blob.size)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(&store.describe(path), e))?;
    Ok(Some(bytes))
}

/// Reads blob `digest` of a layout, a `kind` document, into memory: checks its size (when
/// known) and the kind's size limit before reading, its digest after.
pub(crate) fn read_blob(
    store: &dyn Store,
    kind: DocumentKind,
    digest: &Digest,
    size: Option<u64>,
) -> Result<Vec<u8>> {
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
    kind.check(
        || format!("{} {digest} ({})", kind.name(), store.describe(&path)),
        blob.size,
    )?;
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

/// One platform search: what it has come across, and what it has read.
struct Walk<'a> {
    docs: &'a dyn Documents,
    /// The source as the user wrote it, for messages.
    source: &'a str,
    wanted: &'a Platform,
    /// Every image platform seen, in order.
    platforms: Vec<Platform>,
    /// The first manifest that was not an image, to report if nothing else turns up.
    artifact: Option<Error>,
    /// Manifests and indexes read, by digest: each is read once, however many times indexes
    /// refer to it.
    documents: HashMap<Digest, Document>,
    /// Config platforms read, by config digest.
    configs: HashMap<Digest, Platform>,
    /// Indexes walked (or being walked): walking one again finds nothing new, and an index
    /// that leads back to itself ends there.
    walked: HashSet<Digest>,
    /// Documents read so far: manifests, indexes and configs.
    reads: usize,
}

/// Walks `candidates` (and nested indexes) for the first image manifest for `wanted`; an
/// error lists every platform seen when none matches. `source` names the image in messages.
/// Each manifest, index and config is read at most once, and no more than [`MAX_DOCUMENTS`]
/// of them in all; indexes nest at most [`MAX_INDEX_DEPTH`] deep.
pub(crate) fn select_manifest(
    docs: &dyn Documents,
    source: &str,
    wanted: &Platform,
    candidates: &[Descriptor],
) -> Result<Manifest> {
    let mut walk = Walk {
        docs,
        source,
        wanted,
        platforms: Vec::new(),
        artifact: None,
        documents: HashMap::new(),
        configs: HashMap::new(),
        walked: HashSet::new(),
        reads: 0,
    };
    if let Some(manifest) = walk.select(candidates, 0)? {
        return Ok(manifest);
    }
    if let (true, Some(artifact)) = (walk.platforms.is_empty(), walk.artifact) {
        return Err(artifact);
    }
    let mut unique: Vec<Platform> = Vec::new();
    for p in walk.platforms {
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

impl Walk<'_> {
    /// Counts one more document read, refusing it past [`MAX_DOCUMENTS`].
    fn count_read(&mut self, digest: &Digest) -> Result<()> {
        if self.reads >= MAX_DOCUMENTS {
            return Err(Error::TooManyDocuments {
                image: self.source.to_owned(),
                digest: digest.clone(),
                limit: MAX_DOCUMENTS,
            });
        }
        self.reads += 1;
        Ok(())
    }

    /// The manifest or index `desc` points at, read once.
    fn document(&mut self, desc: &Descriptor) -> Result<Document> {
        if let Some(document) = self.documents.get(&desc.digest) {
            return Ok(document.clone());
        }
        self.count_read(&desc.digest)?;
        let document = self.docs.document(desc)?;
        self.documents.insert(desc.digest.clone(), document.clone());
        Ok(document)
    }

    /// The platform the config `desc` points at gives, read once.
    fn config_platform(&mut self, desc: &Descriptor) -> Result<Platform> {
        if let Some(platform) = self.configs.get(&desc.digest) {
            return Ok(platform.clone());
        }
        self.count_read(&desc.digest)?;
        let platform = config_platform(&self.docs.config(desc)?, &desc.digest)?;
        self.configs.insert(desc.digest.clone(), platform.clone());
        Ok(platform)
    }

    /// One level of the search: `entries` of an index at `depth` (0: the top).
    fn select(&mut self, entries: &[Descriptor], depth: usize) -> Result<Option<Manifest>> {
        for desc in entries {
            if desc.is_attestation() {
                continue;
            }
            let declared_index = desc.media_type.as_deref().is_some_and(media_type::is_index);
            if let Some(platform) = &desc.platform {
                if !declared_index && !platform.matches(self.wanted) {
                    self.platforms.push(platform.clone());
                    continue;
                }
            }
            if self.walked.contains(&desc.digest) {
                continue;
            }
            match self.document(desc)? {
                Document::Index { digest, manifests } => {
                    if depth >= MAX_INDEX_DEPTH {
                        return Err(Error::IndexTooDeep {
                            image: self.source.to_owned(),
                            digest,
                            limit: MAX_INDEX_DEPTH,
                        });
                    }
                    self.walked.insert(digest);
                    if let Some(selected) = self.select(&manifests, depth + 1)? {
                        return Ok(Some(selected));
                    }
                }
                Document::Manifest(manifest) => {
                    if let Err(not_image) = check_config_type(&manifest) {
                        // An artifact (signature, SBOM, chart) next to images: not a candidate.
                        self.artifact.get_or_insert(not_image);
                        continue;
                    }
                    let platform = match &desc.platform {
                        Some(platform) => platform.clone(),
                        // No platform in the descriptor: the config says.
                        None => self.config_platform(&manifest.config)?,
                    };
                    let matches = platform.matches(self.wanted);
                    self.platforms.push(platform);
                    if matches {
                        return Ok(Some(manifest));
                    }
                }
            }
        }
        Ok(None)
    }
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
        let bytes = read_blob(
            &*self.store,
            DocumentKind::Manifest,
            &desc.digest,
            Some(desc.size),
        )?;
        parse_document(&bytes, &desc.digest, desc.media_type.as_deref())
    }

    fn config(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        read_blob(
            &*self.store,
            DocumentKind::Config,
            &desc.digest,
            Some(desc.size),
        )
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
        let marker = read_file(store, DocumentKind::Manifest, OCI_LAYOUT_FILE)?
            .ok_or_else(|| self.invalid(format!("no {OCI_LAYOUT_FILE} file")))?;
        let marker: OciLayoutFile =
            serde_json::from_slice(&marker).map_err(|error| Error::Json {
                what: store.describe(OCI_LAYOUT_FILE),
                error,
            })?;
        if !marker
            .image_layout_version
            .starts_with(LAYOUT_VERSION_PREFIX)
        {
            return Err(self.invalid(format!(
                "imageLayoutVersion {} is not 1.x",
                quote(&marker.image_layout_version)
            )));
        }
        let index = read_file(store, DocumentKind::Manifest, INDEX_FILE)?
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
        let config_bytes = read_blob(
            store,
            DocumentKind::Config,
            &config_desc.digest,
            Some(config_desc.size),
        )?;
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// Documents held in memory, counting reads; reads past `budget` fail, so that a walk
    /// that reads too much ends the test instead of running for hours.
    struct Counting {
        documents: HashMap<Digest, Document>,
        configs: HashMap<Digest, Vec<u8>>,
        reads: Cell<usize>,
        budget: usize,
    }

    impl Counting {
        fn new(budget: usize) -> Self {
            Counting {
                documents: HashMap::new(),
                configs: HashMap::new(),
                reads: Cell::new(0),
                budget,
            }
        }

        fn read(&self) -> Result<()> {
            self.reads.set(self.reads.get() + 1);
            if self.reads.get() > self.budget {
                return Err(Error::InvalidDocument {
                    what: "test".into(),
                    reason: format!("more than {} reads", self.budget),
                });
            }
            Ok(())
        }

        /// Adds an index of `entries`; `tag` makes otherwise equal indexes distinct.
        fn index(&mut self, entries: Vec<Descriptor>, tag: &str) -> Descriptor {
            let digest = Digest::sha256_of(format!("index {tag} {}", entries.len()).as_bytes());
            self.documents.insert(
                digest.clone(),
                Document::Index {
                    digest: digest.clone(),
                    manifests: entries,
                },
            );
            desc(digest, Some(media_type::OCI_INDEX), None)
        }

        /// Adds an image manifest for `platform`, said only by its config.
        fn manifest(&mut self, platform: &str) -> Descriptor {
            let p: Platform = platform.parse().unwrap();
            let config = serde_json::json!({
                "os": p.os, "architecture": p.architecture, "variant": p.variant,
            })
            .to_string();
            let config_digest = Digest::sha256_of(config.as_bytes());
            self.configs
                .insert(config_digest.clone(), config.into_bytes());
            let digest = Digest::sha256_of(format!("manifest {platform}").as_bytes());
            self.documents.insert(
                digest.clone(),
                Document::Manifest(Manifest {
                    digest: digest.clone(),
                    media_type: media_type::OCI_MANIFEST.into(),
                    config: desc(config_digest, Some(media_type::OCI_CONFIG), None),
                    layers: Vec::new(),
                }),
            );
            desc(digest, Some(media_type::OCI_MANIFEST), None)
        }
    }

    impl Documents for Counting {
        fn document(&self, desc: &Descriptor) -> Result<Document> {
            self.read()?;
            Ok(self.documents[&desc.digest].clone())
        }

        fn config(&self, desc: &Descriptor) -> Result<Vec<u8>> {
            self.read()?;
            Ok(self.configs[&desc.digest].clone())
        }
    }

    fn desc(digest: Digest, media_type: Option<&str>, platform: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: media_type.map(str::to_owned),
            digest,
            size: 1,
            platform: platform.map(|p| p.parse().unwrap()),
            annotations: Default::default(),
        }
    }

    fn amd64() -> Platform {
        Platform::default()
    }

    #[test]
    fn an_index_referring_to_one_child_many_times_reads_it_once() {
        // Eight levels, each an index listing the next level sixteen times: 16^8 paths to
        // an arm64 manifest, nine documents and a config.
        let mut docs = Counting::new(1000);
        let mut level = vec![docs.manifest("linux/arm64")];
        for depth in 0..MAX_INDEX_DEPTH {
            let child = level[0].clone();
            level = vec![docs.index(vec![child; 16], &depth.to_string())];
        }
        let err = select_manifest(&docs, "oci:x", &amd64(), &level).unwrap_err();
        assert!(
            matches!(&err, Error::NoMatchingPlatform { available, .. }
                if available.len() == 1 && available[0].to_string() == "linux/arm64"),
            "{err}"
        );
        assert_eq!(docs.reads.get(), MAX_INDEX_DEPTH + 2);
    }

    #[test]
    fn a_manifest_read_once_is_still_matched_by_a_later_descriptor() {
        // Read through a descriptor without a platform (its config says linux/arm/v6), then
        // listed again as linux/arm/v7: not read again, but matched.
        let mut docs = Counting::new(10);
        let image = docs.manifest("linux/arm/v6");
        let mut v7 = image.clone();
        v7.platform = Some("linux/arm/v7".parse().unwrap());
        let top = docs.index(vec![image.clone(), v7.clone(), v7], "top");
        let wanted = "linux/arm/v5".parse().unwrap();
        let err = select_manifest(&docs, "oci:x", &wanted, std::slice::from_ref(&top)).unwrap_err();
        assert!(matches!(err, Error::NoMatchingPlatform { .. }), "{err}");
        // The index, the manifest and its config.
        assert_eq!(docs.reads.get(), 3);

        let docs_again = Counting {
            reads: Cell::new(0),
            ..docs
        };
        let wanted = "linux/arm/v7".parse().unwrap();
        let found = select_manifest(&docs_again, "oci:x", &wanted, &[top]).unwrap();
        assert_eq!(found.digest, image.digest);
        assert_eq!(docs_again.reads.get(), 3);
    }

    /// `empty` empty indexes, then an amd64 image whose descriptor gives no platform: the
    /// search reads every index, the manifest and its config.
    fn reads_needed(empty: usize) -> (Counting, Vec<Descriptor>, Digest) {
        let mut docs = Counting::new(usize::MAX);
        let mut top: Vec<Descriptor> = (0..empty)
            .map(|i| docs.index(Vec::new(), &i.to_string()))
            .collect();
        let image = docs.manifest("linux/amd64");
        let Document::Manifest(manifest) = &docs.documents[&image.digest] else {
            unreachable!()
        };
        let config = manifest.config.digest.clone();
        top.push(image);
        (docs, top, config)
    }

    #[test]
    fn max_documents_are_read_and_one_more_is_refused() {
        let (docs, top, _) = reads_needed(MAX_DOCUMENTS - 2);
        select_manifest(&docs, "oci:x", &amd64(), &top).unwrap();
        assert_eq!(docs.reads.get(), MAX_DOCUMENTS);

        let (docs, top, config) = reads_needed(MAX_DOCUMENTS - 1);
        let err = select_manifest(&docs, "oci:x", &amd64(), &top).unwrap_err();
        assert!(
            matches!(&err, Error::TooManyDocuments { digest, limit, .. }
                if *digest == config && *limit == MAX_DOCUMENTS),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.starts_with("oci:x: "), "{msg}");
        assert!(msg.contains(&config.to_string()), "{msg}");
        assert!(msg.contains(&MAX_DOCUMENTS.to_string()), "{msg}");
        assert_eq!(docs.reads.get(), MAX_DOCUMENTS);
    }
}
