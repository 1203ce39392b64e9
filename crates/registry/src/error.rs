//! The crate's one error type.
//!
//! Every message is one line and names what is at fault: the source as the user wrote it, the
//! file or archive entry, the blob digest.

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::platform::Platform;

/// Everything that can go wrong while reading an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string is not a valid digest (`ALG:HEX`).
    #[error("invalid digest {}: {reason}", quote(input))]
    InvalidDigest {
        /// The text that failed to parse.
        input: String,
        /// Why it is not a digest.
        reason: String,
    },

    /// A string is not a valid platform (`os/arch[/variant]`).
    #[error("invalid platform {}: {reason}", quote(input))]
    InvalidPlatform {
        /// The text that failed to parse.
        input: String,
        /// Why it is not a platform.
        reason: String,
    },

    /// A string is not a valid image reference.
    #[error("invalid image reference {}: {reason}", quote(input))]
    InvalidReference {
        /// The text that failed to parse.
        input: String,
        /// Why it is not a reference.
        reason: String,
    },

    /// A string is not a valid image source (`oci:`, `oci-archive:`, `docker-archive:`, ...).
    #[error("invalid image source {}: {reason}", quote(input))]
    InvalidSource {
        /// The text that failed to parse.
        input: String,
        /// Why it is not a source.
        reason: String,
    },

    /// A registry could not be reached or answered with an error.
    #[error("{registry}: {reason}")]
    Registry {
        /// The registry host (with port).
        registry: String,
        /// What went wrong, with the underlying cause.
        reason: String,
    },

    /// The HTTP client for a registry could not be set up (TLS roots, TLS library).
    #[error("{registry}: setting up the HTTP client: {error}")]
    HttpClient {
        /// The registry host (with port).
        registry: String,
        /// The client library's error.
        error: reqwest::Error,
    },

    /// A registry refused the credentials (or their absence) with 401 or 403.
    #[error("{registry}: {status}: {reason}")]
    Unauthorized {
        /// The registry host (with port).
        registry: String,
        /// The image asked for (normalised reference).
        image: String,
        /// The HTTP status, e.g. `401 Unauthorized`.
        status: String,
        /// Which credentials were sent, and what to do (never the secret).
        reason: String,
    },

    /// A blob's download failed (after retries, where retrying made sense).
    #[error("blob {digest} from {registry}: {reason}")]
    Download {
        /// The blob's digest.
        digest: Digest,
        /// The registry host (with port).
        registry: String,
        /// What went wrong, with the underlying cause.
        reason: String,
    },

    /// Credentials could not be read: an auth file, `--creds`, or a credential helper.
    #[error("credentials from {origin}: {reason}")]
    Credentials {
        /// Where they were read from (a file, `--creds`, `docker-credential-NAME`).
        origin: String,
        /// What is wrong (never the secret).
        reason: String,
    },

    /// A certificate file (`--cert-dir`, `SSL_CERT_FILE`) could not be used.
    #[error("{path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An I/O error on a file of the source.
    #[error("{path}: {error}")]
    Io {
        /// The file (or archive) being read.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },

    /// A blob's byte count differs from its descriptor's size.
    #[error("blob {digest}: expected {expected} bytes, read {actual}")]
    BlobSizeMismatch {
        /// The blob's expected digest.
        digest: Digest,
        /// The size its descriptor gives.
        expected: u64,
        /// The size found (for an over-long blob, the bytes read when that became clear).
        actual: u64,
    },

    /// A blob's content does not hash to its digest.
    #[error("blob {expected}: content hashes to {actual}")]
    BlobDigestMismatch {
        /// The digest the blob is stored under.
        expected: Digest,
        /// The digest of the bytes actually read.
        actual: Digest,
    },

    /// A blob named by a descriptor is not in the source.
    #[error("blob {digest} is missing: no {path}")]
    BlobMissing {
        /// The digest that was looked up.
        digest: Digest,
        /// Where it was expected (a file, or `ARCHIVE!ENTRY` inside an archive).
        path: String,
    },

    /// A manifest, index or config is larger than d2l reads into memory
    /// ([`MAX_MANIFEST_SIZE`](crate::limits::MAX_MANIFEST_SIZE),
    /// [`MAX_CONFIG_SIZE`](crate::limits::MAX_CONFIG_SIZE)).
    #[error("{what} is {}; d2l reads {kind} of at most {limit} bytes", bytes(*size, *limit))]
    DocumentTooLarge {
        /// The document and where it is: `manifest sha256:... (PATH)`, a file, a tag.
        what: String,
        /// Its size, when known (a registry's answer is read no further than the limit).
        size: Option<u64>,
        /// The limit.
        limit: u64,
        /// What the limit is for: `manifests and indexes`, `configs`.
        kind: &'static str,
    },

    /// A directory or archive is not a valid OCI image layout.
    #[error("{path}: not a valid OCI image layout: {reason}")]
    InvalidLayout {
        /// The directory or archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A JSON document (manifest, index, config, `manifest.json`) does not parse.
    #[error("{what}: {}", excerpt(&error.to_string()))]
    Json {
        /// Which document, and where it is.
        what: String,
        /// The parser's error.
        error: serde_json::Error,
    },

    /// A manifest, index or config is well-formed JSON but not a valid document of its kind.
    #[error("{what}: {reason}")]
    InvalidDocument {
        /// Which document, and where it is.
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The reference asked for is not in the source.
    #[error(
        "{image}: no image named {}; available: {}",
        quote(reference),
        list(available)
    )]
    RefNotFound {
        /// The source as the user wrote it.
        image: String,
        /// The name asked for.
        reference: String,
        /// The names the source has.
        available: Vec<String>,
    },

    /// The source holds several images and none was named.
    #[error("{image}: holds several images, name one of: {}", list(available))]
    AmbiguousRef {
        /// The source as the user wrote it.
        image: String,
        /// The names the source has.
        available: Vec<String>,
    },

    /// The source holds no image at all.
    #[error("{image}: holds no image")]
    NoImage {
        /// The source as the user wrote it.
        image: String,
    },

    /// No manifest in the index (or nested indexes) is for the requested platform.
    #[error(
        "{image}: no image for platform {wanted}; available: {}",
        list(available)
    )]
    NoMatchingPlatform {
        /// The source as the user wrote it.
        image: String,
        /// The platform asked for.
        wanted: Platform,
        /// Every platform the source offers.
        available: Vec<Platform>,
    },

    /// A single-platform image is for another platform than the one requested.
    #[error("{image}: image is for platform {found}, not the requested {wanted}")]
    PlatformMismatch {
        /// The source as the user wrote it.
        image: String,
        /// The platform asked for.
        wanted: Box<Platform>,
        /// The platform the image's config gives.
        found: Box<Platform>,
    },

    /// Docker image manifest schema 1.
    #[error("manifest {digest}: schema 1 manifests are not supported (convert the image to schema 2 or OCI, e.g. by pushing it again with a current docker)")]
    Schema1Unsupported {
        /// The manifest's digest.
        digest: Digest,
    },

    /// A manifest or index media type d2l cannot read.
    #[error("manifest {digest}: unsupported media type {}", quote(media_type))]
    UnsupportedManifest {
        /// The manifest's digest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },

    /// The manifest's config is not a container image config (an artifact, e.g. a Helm chart).
    #[error(
        "manifest {manifest}: config {config} has media type {}, not a container image config",
        quote(media_type)
    )]
    NotAContainerImage {
        /// The manifest's digest.
        manifest: Digest,
        /// The config descriptor's digest.
        config: Digest,
        /// The config descriptor's media type.
        media_type: String,
    },

    /// An encrypted layer (`+encrypted` media type).
    #[error(
        "layer {digest}: encrypted layers are not supported (media type {})",
        quote(media_type)
    )]
    EncryptedLayer {
        /// The layer's digest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },

    /// A layer media type d2l cannot apply.
    #[error("layer {digest}: unsupported media type {}", quote(media_type))]
    UnsupportedLayer {
        /// The layer's digest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },

    /// The config's `rootfs.type` is not `layers`.
    #[error(
        "config {config}: rootfs.type is {}, expected \"layers\"",
        quote(found)
    )]
    RootfsType {
        /// The config's digest.
        config: Digest,
        /// The type it gives.
        found: String,
    },

    /// The manifest lists a different number of layers than the config has diff_ids.
    #[error(
        "{image}: the manifest lists {layers} layers but config {config} has {diff_ids} diff_ids"
    )]
    LayerCountMismatch {
        /// The source as the user wrote it.
        image: String,
        /// The config's digest.
        config: Digest,
        /// Layers in the manifest.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },

    /// An image with more layers than [`MAX_LAYERS`](crate::limits::MAX_LAYERS).
    #[error("{what} lists {count} layers; d2l reads images of at most {limit}")]
    TooManyLayers {
        /// The manifest, config or archive entry, and where it is.
        what: String,
        /// The layers it lists.
        count: usize,
        /// The limit.
        limit: usize,
    },

    /// [`Image::open_layer`](crate::Image::open_layer) with an index past the last layer.
    #[error("{image}: no layer {index}, the image has {count}")]
    NoSuchLayer {
        /// The source as the user wrote it.
        image: String,
        /// The index asked for.
        index: usize,
        /// How many layers there are.
        count: usize,
    },

    /// Nested indexes deeper than d2l follows.
    #[error("{image}: indexes nested more than {limit} deep at {digest}")]
    IndexTooDeep {
        /// The source as the user wrote it.
        image: String,
        /// The index at which the limit was reached.
        digest: Digest,
        /// The limit.
        limit: usize,
    },

    /// Finding the image for the platform would read more manifests, indexes and configs than
    /// [`MAX_DOCUMENTS`](crate::limits::MAX_DOCUMENTS).
    #[error(
        "{image}: finding the image reads more than {limit} manifests, indexes and configs \
         (stopped before {digest})"
    )]
    TooManyDocuments {
        /// The source as the user wrote it.
        image: String,
        /// The document that would have been one too many.
        digest: Digest,
        /// The limit.
        limit: usize,
    },

    /// `d2l cache prune` while another d2l pulls into the cache (or builds from it).
    #[error(
        "{path}: in use by another d2l (a pull, or a build or export of a registry image); \
         prune it once that has finished"
    )]
    CacheBusy {
        /// The cache directory.
        path: PathBuf,
    },

    /// A `docker save` archive is malformed.
    #[error("{file}: {reason}")]
    DockerArchive {
        /// The archive.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// An entry of a tar archive cannot be served (missing, a link loop, not a regular file).
    #[error("{file}: entry {entry}: {reason}")]
    ArchiveEntry {
        /// The archive.
        file: PathBuf,
        /// The entry's name.
        entry: String,
        /// What is wrong.
        reason: String,
    },
}

/// `std::result::Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Characters of an input quoted in a message; a longer one is cut there.
const QUOTE_MAX_CHARS: usize = 100;
/// Characters of a parser's message, or of one list item, in a message.
const EXCERPT_MAX_CHARS: usize = 200;
/// Items of a list named in a message; the rest are counted.
const LIST_MAX_ITEMS: usize = 16;

/// The first `max` characters of `text`, and whether that is not all of it.
fn cut(text: &str, max: usize) -> (&str, bool) {
    match text.char_indices().nth(max) {
        None => (text, false),
        Some((end, _)) => (&text[..end], true),
    }
}

/// `text` quoted for a one-line message (escaped as `{:?}` does): whole when short, else its
/// first [`QUOTE_MAX_CHARS`] characters and its length. Inputs and what documents say can be
/// of any length; a message stays a line.
pub(crate) fn quote(text: &str) -> String {
    match cut(text, QUOTE_MAX_CHARS) {
        (all, false) => format!("{all:?}"),
        (start, true) => format!("{start:?}... ({} bytes)", text.len()),
    }
}

/// `text` as it is, cut like [`quote`] (at [`EXCERPT_MAX_CHARS`]), and on one line.
fn excerpt(text: &str) -> String {
    let line = |t: &str| t.replace(['\n', '\r'], " ");
    match cut(text, EXCERPT_MAX_CHARS) {
        (all, false) => line(all),
        (start, true) => format!("{}... ({} bytes)", line(start), text.len()),
    }
}

/// `N bytes`, or `more than LIMIT bytes` when the size is not known.
fn bytes(size: Option<u64>, limit: u64) -> String {
    match size {
        Some(size) => format!("{size} bytes"),
        None => format!("more than {limit} bytes"),
    }
}

/// Joins a list for an error message, each item and the list's length bounded; says so when
/// it is empty.
fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    let mut text = items
        .iter()
        .take(LIST_MAX_ITEMS)
        .map(|item| excerpt(&item.to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LIST_MAX_ITEMS {
        text.push_str(&format!(" and {} more", items.len() - LIST_MAX_ITEMS));
    }
    text
}

impl From<d2l_blob::Error> for Error {
    fn from(e: d2l_blob::Error) -> Self {
        match e {
            d2l_blob::Error::InvalidDigest { input, reason } => {
                Error::InvalidDigest { input, reason }
            }
            d2l_blob::Error::SizeMismatch {
                digest,
                expected,
                actual,
            } => Error::BlobSizeMismatch {
                digest,
                expected,
                actual,
            },
            d2l_blob::Error::DigestMismatch { expected, actual } => {
                Error::BlobDigestMismatch { expected, actual }
            }
        }
    }
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }
}
