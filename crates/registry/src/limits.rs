//! Every bound d2l puts on what an image source may make it read, with where each value comes
//! from. Past any of them the source is refused with one error naming the document, digest or
//! input and the limit; none of them is reached by an image that container runtimes run.

/// Largest manifest or index, in bytes, read into memory before its digest is checked: an
/// OCI layout's `index.json`, a `docker save` archive's `manifest.json`, and every manifest,
/// index or manifest list from a layout, an archive or a registry (where the body is read no
/// further than this, whatever the registry sends).
///
/// 4 MiB, as everyone else bounds manifests: the distribution registry refuses to store a
/// larger one (`maxManifestBodySize = 4 << 20`, registry/handlers/manifests.go), skopeo,
/// podman and buildah read none larger (`MaxManifestBodySize = 4 * megaByte`,
/// containers/image internal/iolimits/iolimits.go), containerd resolves none larger
/// (`MaxManifestSize`, core/remotes/docker/resolver.go).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// Largest image config, in bytes, read into memory before its digest is checked.
///
/// 4 MiB, skopeo's, podman's and buildah's bound (`MaxConfigBodySize = 4 * megaByte`,
/// containers/image internal/iolimits/iolimits.go). A config holds the platform, the
/// environment, labels and one short history entry per layer: a few KiB in practice.
pub const MAX_CONFIG_SIZE: u64 = 4 << 20;

/// Most layers an image may have.
///
/// 128: overlayfs, which container runtimes stack layers with, mounts at most 128 lower
/// layers in Docker (`maxDepth = 128`, moby daemon/graphdriver/overlay2/overlay.go); Docker's
/// layer store already stops at 125 (`maxLayerDepth`, daemon/internal/layer/layer_store.go),
/// and containerd notes the same 128 (core/remotes/docker/resolver.go). An image with more
/// layers runs nowhere.
pub const MAX_LAYERS: usize = 128;

/// Most indexes nested in one another on the way from the source's top (a layout's
/// `index.json` entries, a registry's manifest) to an image manifest.
///
/// Real images nest at most two (an index of manifest lists); 8 leaves room and stops a
/// loop early.
pub const MAX_INDEX_DEPTH: usize = 8;

/// Most manifests, indexes and configs read while looking for the image of a platform. Each
/// is read once however many times indexes refer to it, so this bounds the whole search.
///
/// 256: an index lists one manifest per platform (a few dozen at most, with as many
/// attestations, which are not read); only a manifest whose descriptor gives no platform
/// costs a second read, its config.
pub const MAX_DOCUMENTS: usize = 256;

/// Longest image name, `registry/repository`, once normalised (`docker.io/library/debian`),
/// in bytes.
///
/// 255: distribution/reference's `NameTotalLengthMax` (reference.go), which Docker, podman
/// and containerd all parse references with.
pub const MAX_NAME_LENGTH: usize = 255;

/// Longest tag, in bytes.
///
/// 128: the tag grammar of distribution/reference (`[\w][\w.-]{0,127}`, reference.go).
pub const MAX_TAG_LENGTH: usize = 128;

/// The JSON documents read whole into memory, each with its size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DocumentKind {
    /// A manifest, an index or manifest list, `index.json`, `manifest.json`, `oci-layout`.
    Manifest,
    /// An image config.
    Config,
}

impl DocumentKind {
    /// The most bytes of it read.
    pub(crate) fn limit(self) -> u64 {
        match self {
            DocumentKind::Manifest => MAX_MANIFEST_SIZE,
            DocumentKind::Config => MAX_CONFIG_SIZE,
        }
    }

    /// What it is, for messages (plural).
    pub(crate) fn plural(self) -> &'static str {
        match self {
            DocumentKind::Manifest => "manifests and indexes",
            DocumentKind::Config => "configs",
        }
    }

    /// What it is, for messages (singular).
    pub(crate) fn name(self) -> &'static str {
        match self {
            DocumentKind::Manifest => "manifest",
            DocumentKind::Config => "config",
        }
    }

    /// Refuses a document of `size` bytes, when known, past the limit. `what` names it and
    /// where it is.
    pub(crate) fn check(self, what: impl FnOnce() -> String, size: u64) -> crate::Result<()> {
        if size > self.limit() {
            return Err(self.too_large(what(), Some(size)));
        }
        Ok(())
    }

    /// The error for a document `what` of `size` bytes (`None`: more than the limit, found
    /// by reading no further).
    pub(crate) fn too_large(self, what: String, size: Option<u64>) -> crate::Error {
        crate::Error::DocumentTooLarge {
            what,
            size,
            limit: self.limit(),
            kind: self.plural(),
        }
    }
}
