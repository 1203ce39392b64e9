//! Pulling one image: resolve the reference to a manifest for the platform, fetch the config,
//! then download the layers into the cache in the background, several at once, while
//! [`Image::open_layer`](crate::Image::open_layer) hands out each layer as soon as it is
//! complete.
//!
//! reqwest is async; d2l is not. A small tokio runtime runs on its own threads for as long
//! as the image is open: the resolution steps `block_on` it, the layer downloads are tasks on
//! it, and the synchronous side waits on a condition variable for the layer it needs.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Once};

use futures_util::StreamExt;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use super::cache::{Begun, BlobCache, CacheLock, ImageRecord};
use super::client::{describe, Connection};
use super::retry::is_transient;
use super::{PullProgress, RegistryOptions};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{parse_config, Image, LayerDescriptor, Parts};
use crate::layout::{check_config_type, layer_descriptors, select_manifest, Documents};
use crate::limits::DocumentKind;
use crate::manifest::{parse_document, Descriptor, Document};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::{Blob, Store};

/// Threads of the download runtime: network I/O is light work, hashing runs inline.
const RUNTIME_THREADS: usize = 2;

/// How one blob came to be in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Its path in the cache.
    pub path: PathBuf,
    /// Bytes that came over the network now (0 when it was cached already; less than the
    /// size when an interrupted download was resumed).
    pub downloaded: u64,
    /// Whether it was already in the cache.
    pub cached: bool,
}

/// The registry side of a pull: connection, cache and progress display.
pub(crate) struct Remote {
    connection: Connection,
    cache: BlobCache,
    progress: Arc<dyn PullProgress>,
}

impl Remote {
    /// The verified bytes of the manifest or index `desc` names: from the cache, else from
    /// the registry (and then cached).
    async fn manifest(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        self.check_size(DocumentKind::Manifest, desc)?;
        if let Some(bytes) = self.cache.read(&desc.digest, desc.size)? {
            return Ok(bytes);
        }
        let bytes = self.connection.manifest(Some(&desc.digest)).await?;
        self.check(&desc.digest, Some(desc.size), &bytes)?;
        self.cache.put(&desc.digest, &bytes)?;
        Ok(bytes)
    }

    /// A manifest, index or config is read into memory: refuse one larger than its limit
    /// before fetching it.
    fn check_size(&self, kind: DocumentKind, desc: &Descriptor) -> Result<()> {
        kind.check(
            || {
                format!(
                    "{} {} from {}",
                    kind.name(),
                    desc.digest,
                    self.connection.registry()
                )
            },
            desc.size,
        )
    }

    /// Size and digest of a document fetched whole.
    fn check(&self, digest: &Digest, size: Option<u64>, bytes: &[u8]) -> Result<()> {
        if let Some(size) = size {
            if bytes.len() as u64 != size {
                return Err(Error::BlobSizeMismatch {
                    digest: digest.clone(),
                    expected: size,
                    actual: bytes.len() as u64,
                });
            }
        }
        let actual = digest.same_algorithm_of(bytes);
        if actual != *digest {
            return Err(Error::BlobDigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Downloads blob `digest` of `size` bytes into the cache, unless it is there: resuming
    /// an earlier partial download with a `Range` request, retrying transient errors, and
    /// checking the size and digest of the whole before renaming it into place.
    async fn fetch(&self, digest: &Digest, size: u64, show: bool) -> Result<Fetched> {
        let cached = |path| Fetched {
            path,
            downloaded: 0,
            cached: true,
        };
        if let Some(path) = self.cache.lookup(digest, size)? {
            if show {
                self.progress.blob_finished(digest, size, true);
            }
            return Ok(cached(path));
        }
        let cache = self.cache.clone();
        let key = digest.clone();
        let begun = tokio::task::spawn_blocking(move || cache.begin(&key))
            .await
            .map_err(|e| self.download_error(digest, format!("cache lock task failed: {e}")))??;
        let mut partial = match begun {
            Begun::Cached(path) => {
                if show {
                    self.progress.blob_finished(digest, size, true);
                }
                return Ok(cached(path));
            }
            Begun::Download(partial) => partial,
        };
        if partial.len > size {
            partial.truncate()?;
        }
        let mut hasher = digest.hasher();
        let resumed = partial.len;
        if resumed > 0 {
            partial.hash_existing(&mut hasher)?;
            tracing::info!(
                "blob {digest}: resuming an interrupted download at {resumed} of {size} bytes"
            );
        }
        if show {
            self.progress.blob_started(digest, size, resumed);
        }
        let registry = self.connection.registry().to_owned();
        let mut failures = 0;
        let mut restarted = false;
        // Bytes that came over the network in this run.
        let mut received = 0;
        loop {
            while partial.len < size {
                let attempt = self
                    .copy(digest, size, &mut partial, &mut hasher, show, &mut received)
                    .await;
                let problem = match attempt {
                    Ok(()) if partial.len == size => break,
                    Ok(()) => format!("the connection ended after {} of {size} bytes", partial.len),
                    Err(Attempt::Fatal(e)) => {
                        if show {
                            self.progress.blob_failed(digest);
                        }
                        return Err(e);
                    }
                    Err(Attempt::Transient(problem)) => problem,
                };
                failures += 1;
                let Some(delay) = self.connection.retry.delay_after(failures) else {
                    if show {
                        self.progress.blob_failed(digest);
                    }
                    return Err(Error::Download {
                        digest: digest.clone(),
                        registry,
                        reason: format!(
                            "{problem}; gave up after {failures} attempts ({} of {size} bytes \
                             kept, the next run resumes)",
                            partial.len
                        ),
                    });
                };
                tracing::warn!(
                    "blob {digest}: {problem}; retrying in {:.1}s from byte {}",
                    delay.as_secs_f64(),
                    partial.len
                );
                tokio::time::sleep(delay).await;
            }
            let actual = std::mem::replace(&mut hasher, digest.hasher()).finish();
            if actual == *digest {
                break;
            }
            if resumed > 0 && !restarted {
                // The bytes an earlier run left may be what is wrong: start over once.
                tracing::warn!("blob {digest}: a resumed download hashed to {actual}; downloading it again whole");
                restarted = true;
                partial.truncate()?;
                if show {
                    self.progress.blob_started(digest, size, 0);
                }
                continue;
            }
            partial.discard()?;
            if show {
                self.progress.blob_failed(digest);
            }
            return Err(Error::BlobDigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let path = partial.commit()?;
        if show {
            self.progress.blob_finished(digest, size, false);
        }
        Ok(Fetched {
            path,
            downloaded: received,
            cached: false,
        })
    }

    /// One request: appends what arrives to `partial` until the stream ends or fails.
    async fn copy(
        &self,
        digest: &Digest,
        size: u64,
        partial: &mut super::cache::Partial,
        hasher: &mut crate::digest::Hasher,
        show: bool,
        received: &mut u64,
    ) -> std::result::Result<(), Attempt> {
        let blob = match self.connection.blob(digest, partial.len).await {
            Ok(blob) => blob,
            Err(e) if is_transient(&e) => return Err(Attempt::Transient(describe(&e))),
            Err(e) => return Err(Attempt::Fatal(self.connection.error(e, Some(digest)))),
        };
        if blob.whole && partial.len > 0 {
            tracing::info!("blob {digest}: the registry ignored the Range request; starting over");
            partial.truncate().map_err(Attempt::Fatal)?;
            *hasher = digest.hasher();
            if show {
                self.progress.blob_started(digest, size, 0);
            }
        }
        let mut stream = blob.stream;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // The stream failed after the last byte: d2l checks the digest itself
                // and reports it naming the blob.
                Err(_) if partial.len == size => return Ok(()),
                Err(e) => {
                    return Err(Attempt::Transient(format!(
                        "reading the blob: {}",
                        io_cause(&e)
                    )))
                }
            };
            if partial.len + chunk.len() as u64 > size {
                partial.truncate().map_err(Attempt::Fatal)?;
                return Err(Attempt::Fatal(Error::BlobSizeMismatch {
                    digest: digest.clone(),
                    expected: size,
                    actual: partial.len + chunk.len() as u64,
                }));
            }
            partial.append(&chunk).map_err(Attempt::Fatal)?;
            *received += chunk.len() as u64;
            hasher.update(&chunk);
            if show {
                self.progress.blob_advanced(digest, chunk.len() as u64);
            }
        }
        Ok(())
    }

    fn download_error(&self, digest: &Digest, reason: String) -> Error {
        Error::Download {
            digest: digest.clone(),
            registry: self.connection.registry().to_owned(),
            reason,
        }
    }
}

/// How one download request ended, when not with the whole blob.
enum Attempt {
    /// Worth another try (connection refused or cut, 5xx...).
    Transient(String),
    /// Not (401, 404, bad size, the cache failing...).
    Fatal(Error),
}

/// An I/O error from a response stream, with its causes (reqwest's are nested).
fn io_cause(e: &std::io::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let s = cause.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = cause.source();
    }
    text
}

/// The platform search's view of the registry (synchronous, through the runtime).
struct Resolver<'a> {
    runtime: &'a Runtime,
    remote: &'a Remote,
    /// Every manifest and index read, for the cache record.
    read: Mutex<Vec<Digest>>,
}

impl Documents for Resolver<'_> {
    fn document(&self, desc: &Descriptor) -> Result<Document> {
        let bytes = self.runtime.block_on(self.remote.manifest(desc))?;
        self.read
            .lock()
            .expect("not poisoned")
            .push(desc.digest.clone());
        parse_document(&bytes, &desc.digest, desc.media_type.as_deref())
    }

    fn config(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        self.remote.check_size(DocumentKind::Config, desc)?;
        let fetched = self
            .runtime
            .block_on(self.remote.fetch(&desc.digest, desc.size, false))?;
        self.remote
            .cache
            .read(&desc.digest, desc.size)?
            .ok_or_else(|| Error::BlobMissing {
                digest: desc.digest.clone(),
                path: fetched.path.display().to_string(),
            })
    }
}

/// Resolves `reference` for `platform` and returns the image, its layers to be downloaded
/// on first use, and the store that downloads them.
pub(crate) fn open(
    reference: &Reference,
    platform: &Platform,
    options: &RegistryOptions,
) -> Result<(Image, Arc<PulledStore>)> {
    let source = format!("docker://{reference}");
    let cache_dir = match &options.cache_dir {
        Some(dir) => dir.clone(),
        None => super::cache::default_cache_dir().ok_or_else(|| Error::Registry {
            registry: reference.registry().to_owned(),
            reason: "no cache directory: set $XDG_CACHE_HOME or $HOME, or give --cache-dir"
                .to_owned(),
        })?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_THREADS)
        .thread_name("d2l-pull")
        .enable_all()
        .build()
        .map_err(|e| Error::Registry {
            registry: reference.registry().to_owned(),
            reason: format!("starting the download runtime: {e}"),
        })?;
    let cache = BlobCache::new(cache_dir);
    // Held until the image is dropped: what the pull verifies is recorded only at its end,
    // and its layers are read from the cache until then.
    let lock = cache.lock_shared()?;

    let pinned = reference.digest().cloned();
    let connection = runtime.block_on(Connection::open(reference, options));
    let remote = Arc::new(Remote {
        connection: connection?,
        cache,
        progress: options
            .progress
            .clone()
            .unwrap_or_else(|| Arc::new(super::NoProgress)),
    });
    let top = match &pinned {
        Some(digest) => {
            let bytes = runtime.block_on(remote.connection.manifest(Some(digest)))?;
            remote.check(digest, None, &bytes)?;
            (digest.clone(), bytes)
        }
        None => {
            let bytes = runtime.block_on(remote.connection.manifest(None))?;
            (Digest::sha256_of(&bytes), bytes)
        }
    };
    remote.cache.put(&top.0, &top.1)?;
    tracing::debug!(%source, manifest = %top.0, "resolved the reference");
    let top = Descriptor {
        media_type: None,
        digest: top.0,
        size: top.1.len() as u64,
        platform: None,
        annotations: Default::default(),
    };

    let resolver = Resolver {
        runtime: &runtime,
        remote: &remote,
        read: Mutex::new(Vec::new()),
    };
    let manifest = select_manifest(&resolver, &source, platform, &[top])?;
    check_config_type(&manifest)?;
    let config_bytes = resolver.config(&manifest.config)?;
    let config = parse_config(&config_bytes, &manifest.config.digest)?;
    let layers = layer_descriptors(&manifest)?;
    let mut blobs = resolver.read.into_inner().expect("not poisoned");
    blobs.push(manifest.config.digest.clone());
    blobs.extend(layers.iter().map(|l| l.digest.clone()));
    blobs.dedup();
    let record = ImageRecord {
        reference: reference.to_string(),
        platform: config.platform.to_string(),
        manifest: manifest.digest.clone(),
        config: manifest.config.digest.clone(),
        blobs,
        size: layers
            .iter()
            .fold(manifest.config.size, |sum, l| sum.saturating_add(l.size)),
    };
    let store = Arc::new(PulledStore {
        runtime: Some(runtime),
        remote,
        layers: layers.clone(),
        concurrency: options.concurrent_downloads.max(1),
        record,
        state: Arc::new((Mutex::new(State::new(layers.len())), Condvar::new())),
        started: Once::new(),
        _lock: lock,
    });
    let image = Parts {
        source,
        manifest_digest: Some(manifest.digest),
        manifest_media_type: manifest.media_type,
        config_digest: manifest.config.digest,
        config_bytes,
        config,
        layer_paths: layers.iter().map(|l| l.digest.layout_path()).collect(),
        layers,
        store: store.clone(),
    }
    .into_image()?;
    Ok((image, store))
}

/// Where a layer's download stands.
enum Slot {
    Pending,
    Done(Fetched),
    /// Failed; the error is handed to the first who asks.
    Failed(Option<Error>),
}

struct State {
    slots: Vec<Slot>,
    finished: bool,
}

impl State {
    fn new(layers: usize) -> State {
        State {
            slots: (0..layers).map(|_| Slot::Pending).collect(),
            finished: false,
        }
    }
}

/// A [`Store`] over the layers of a pulled image: opening one starts the downloads (all of
/// them, in order, a few at a time) and waits for that one to be in the cache.
pub(crate) struct PulledStore {
    /// `Some` until dropped; dropping it stops the downloads.
    runtime: Option<Runtime>,
    remote: Arc<Remote>,
    layers: Vec<LayerDescriptor>,
    concurrency: usize,
    record: ImageRecord,
    state: Arc<(Mutex<State>, Condvar)>,
    started: Once,
    /// The cache, shared with other pulls, kept from prune.
    _lock: CacheLock,
}

impl fmt::Debug for PulledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PulledStore")
            .field("cache", &self.remote.cache.root())
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl Drop for PulledStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Downloads still running are abandoned (their partial files stay for resuming).
            runtime.shutdown_background();
        }
    }
}

impl PulledStore {
    /// Starts the layer downloads, once.
    fn start(&self) {
        self.started.call_once(|| {
            let total = self
                .layers
                .iter()
                .fold(0, |sum: u64, l| sum.saturating_add(l.size));
            self.remote.progress.layers(self.layers.len(), total);
            let remote = Arc::clone(&self.remote);
            let layers = self.layers.clone();
            let state = Arc::clone(&self.state);
            let record = self.record.clone();
            let concurrency = self.concurrency;
            let runtime = self.runtime.as_ref().expect("running until dropped");
            runtime.spawn(download_all(remote, layers, state, record, concurrency));
        });
    }

    /// Waits for layer `index`.
    fn wait(&self, index: usize) -> Result<Fetched> {
        self.start();
        let (lock, ready) = &*self.state;
        let mut state = lock.lock().expect("not poisoned");
        loop {
            match &mut state.slots[index] {
                Slot::Pending => state = ready.wait(state).expect("not poisoned"),
                Slot::Done(fetched) => return Ok(fetched.clone()),
                Slot::Failed(error) => {
                    return Err(error.take().unwrap_or_else(|| {
                        self.remote.download_error(
                            &self.layers[index].digest,
                            "the download failed (reported above)".to_owned(),
                        )
                    }))
                }
            }
        }
    }

    /// Downloads every layer and waits for all; the first failure in layer order is the
    /// error.
    pub(crate) fn wait_all(&self) -> Result<Vec<Fetched>> {
        // Started here too: an image without layers never waits for one.
        self.start();
        let fetched: Vec<Result<Fetched>> = (0..self.layers.len()).map(|i| self.wait(i)).collect();
        let (lock, ready) = &*self.state;
        let mut state = lock.lock().expect("not poisoned");
        while !state.finished {
            state = ready.wait(state).expect("not poisoned");
        }
        fetched.into_iter().collect()
    }

    /// The cache directory.
    pub(crate) fn cache_dir(&self) -> &Path {
        self.remote.cache.root()
    }

    /// What the pull records in the cache once complete.
    pub(crate) fn record(&self) -> &ImageRecord {
        &self.record
    }
}

/// Downloads the layers in order, `concurrency` at a time, filling the slots; records the
/// image in the cache when all succeeded.
async fn download_all(
    remote: Arc<Remote>,
    layers: Vec<LayerDescriptor>,
    state: Arc<(Mutex<State>, Condvar)>,
    record: ImageRecord,
    concurrency: usize,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(layers.len());
    for (index, layer) in layers.into_iter().enumerate() {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let remote = Arc::clone(&remote);
        let state = Arc::clone(&state);
        tasks.push(tokio::spawn(async move {
            let result = remote.fetch(&layer.digest, layer.size, true).await;
            drop(permit);
            let ok = result.is_ok();
            let (lock, ready) = &*state;
            lock.lock().expect("not poisoned").slots[index] = match result {
                Ok(fetched) => Slot::Done(fetched),
                Err(e) => Slot::Failed(Some(e)),
            };
            ready.notify_all();
            ok
        }));
    }
    let mut all_ok = true;
    for task in tasks {
        all_ok &= task.await.unwrap_or(false);
    }
    if all_ok {
        if let Err(e) = remote.cache.record(&record) {
            tracing::warn!("recording the pull in the cache: {e}");
        }
    }
    let (lock, ready) = &*state;
    lock.lock().expect("not poisoned").finished = true;
    ready.notify_all();
}

impl Store for PulledStore {
    fn open(&self, path: &str) -> Result<Option<Blob>> {
        let Some(index) = self
            .layers
            .iter()
            .position(|l| l.digest.layout_path() == path)
        else {
            return Ok(None);
        };
        let fetched = self.wait(index)?;
        let file = File::open(&fetched.path).map_err(|e| Error::io(&fetched.path, e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io(&fetched.path, e))?
            .len();
        Ok(Some(Blob::whole_file(file, size)))
    }

    fn describe(&self, path: &str) -> String {
        match path.strip_prefix("blobs/") {
            Some(rest) => match rest.split_once('/') {
                Some((alg, hex)) => match format!("{alg}:{hex}").parse::<Digest>() {
                    Ok(d) => self.remote.cache.blob_path(&d).display().to_string(),
                    Err(_) => path.to_owned(),
                },
                None => path.to_owned(),
            },
            None => path.to_owned(),
        }
    }

    fn root(&self) -> &Path {
        self.remote.cache.root()
    }
}
