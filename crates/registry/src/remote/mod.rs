//! Images in registries: `debian:bookworm`, `docker://quay.io/org/app:tag`,
//! `localhost:5000/app@sha256:...`.
//!
//! - [`credentials`]: `--creds`, auth files and credential helpers.
//! - `client`: one registry connection (the distribution protocol over reqwest, its
//!   authentication in `protocol`): HTTP for insecure and loopback hosts, retries, clear
//!   errors.
//! - `tls`: certificate directories as podman reads them: CAs, client certificates, a
//!   server's own self-signed certificate.
//! - [`cache`]: the content-addressed blob cache (`$XDG_CACHE_HOME/d2l`), and beside it
//!   the images builders made from others ([`BuiltRecord`]).
//! - `pull`: resolving the reference for a platform and downloading the layers in the
//!   background, several at once, each handed out as soon as it is complete.
//! - [`retry`]: what is retried and the backoff.

mod built;
pub mod cache;
mod client;
pub mod credentials;
mod protocol;
mod pull;
pub mod retry;
mod tls;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::Result;
use crate::image::Image;
use crate::platform::Platform;
use crate::reference::Reference;

pub use built::BuiltRecord;
pub use cache::{default_cache_dir, BlobCache, CacheLock, CachedBlob, ImageRecord, PruneReport};
pub use credentials::{CredentialSources, Credentials, Secret};
pub use retry::RetryPolicy;

/// Layers downloaded at once unless told otherwise.
pub const DEFAULT_CONCURRENT_DOWNLOADS: usize = 3;

/// Told about downloads as they happen, to draw progress bars. Every method has an empty
/// default. Called from the download threads.
pub trait PullProgress: Send + Sync {
    /// Layer downloads begin: how many layers, how many bytes in all.
    fn layers(&self, _count: usize, _total_bytes: u64) {}
    /// A blob's download begins (again, after a restart), `resumed` bytes already there.
    fn blob_started(&self, _digest: &Digest, _size: u64, _resumed: u64) {}
    /// `bytes` more of a blob arrived.
    fn blob_advanced(&self, _digest: &Digest, _bytes: u64) {}
    /// A blob is in the cache; `cached`: it already was, nothing was downloaded.
    fn blob_finished(&self, _digest: &Digest, _size: u64, _cached: bool) {}
    /// A blob's download failed.
    fn blob_failed(&self, _digest: &Digest) {}
}

/// Shows nothing.
pub(crate) struct NoProgress;

impl PullProgress for NoProgress {}

/// How to reach registries and where to keep what is pulled.
#[derive(Clone)]
pub struct RegistryOptions {
    /// `--creds USER:PASS`: used for every registry, before any auth file.
    pub credentials: Option<Credentials>,
    /// Auth files to search when no credentials are given.
    pub credential_sources: CredentialSources,
    /// `--cert-dir`: directories whose `*.crt` files are extra CAs (or a server's own
    /// certificate) and whose `NAME.cert` with `NAME.key` is a client certificate.
    pub cert_dirs: Vec<PathBuf>,
    /// `--insecure-registry`: hosts (`host[:port]`) that may use plain HTTP or unverified
    /// TLS.
    pub insecure_registries: Vec<String>,
    /// `--cache-dir`; `None`: [`default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Layers downloaded at once.
    pub concurrent_downloads: usize,
    /// Retries of failed requests.
    pub retry: RetryPolicy,
    /// Progress display; `None` shows nothing.
    pub progress: Option<Arc<dyn PullProgress>>,
}

impl RegistryOptions {
    /// Defaults, with auth files found from the environment.
    pub fn from_env() -> RegistryOptions {
        RegistryOptions {
            credentials: None,
            credential_sources: CredentialSources::from_env(),
            cert_dirs: Vec::new(),
            insecure_registries: Vec::new(),
            cache_dir: None,
            concurrent_downloads: DEFAULT_CONCURRENT_DOWNLOADS,
            retry: RetryPolicy::default(),
            progress: None,
        }
    }
}

impl fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("credentials", &self.credentials)
            .field("credential_sources", &self.credential_sources)
            .field("cert_dirs", &self.cert_dirs)
            .field("insecure_registries", &self.insecure_registries)
            .field("cache_dir", &self.cache_dir)
            .field("concurrent_downloads", &self.concurrent_downloads)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What [`pull_image`] fetched.
#[derive(Clone, Debug, Serialize)]
pub struct PullReport {
    /// The image as pulled (its source name, manifest, config, layers).
    #[serde(skip)]
    pub image: Image,
    /// The record now in the cache.
    pub record: ImageRecord,
    /// Per layer: bytes downloaded now (0: it was cached).
    pub downloaded: Vec<u64>,
    /// The cache directory.
    pub cache_dir: PathBuf,
}

/// Opens a registry image: manifest and config now, layers downloaded in the background
/// once the first is opened.
pub(crate) fn open(
    reference: &Reference,
    platform: &Platform,
    options: &RegistryOptions,
) -> Result<Image> {
    pull::open(reference, platform, options).map(|(image, _)| image)
}

/// Pulls `reference` for `platform` into the cache: manifest, config and every layer,
/// verified. What was cached already is not downloaded again.
pub fn pull_image(
    reference: &Reference,
    platform: &Platform,
    options: &RegistryOptions,
) -> Result<PullReport> {
    let (image, store) = pull::open(reference, platform, options)?;
    let fetched = store.wait_all()?;
    Ok(PullReport {
        record: store.record().clone(),
        downloaded: fetched.iter().map(|f| f.downloaded).collect(),
        image,
        cache_dir: store.cache_dir().to_owned(),
    })
}
