//! The blob cache: content-addressed files that are complete and verified, or absent.
//!
//! ```text
//! DIR/blobs/ALG/HEX        a blob (layer, config, manifest), its size and digest checked
//! DIR/downloads/ALG-HEX    a download in progress, locked (flock) by the process writing it;
//!                          kept after an interruption so the next run resumes it
//! DIR/images/KEY.json      what a finished pull fetched (reference, platform, blobs)
//! DIR/lock                 locked (flock) shared by every pull while it uses the cache,
//!                          exclusive by prune
//! DIR/built/KEY.{tar,json} images a builder made from others (see `built.rs`)
//! ```
//!
//! DIR is `$XDG_CACHE_HOME/d2l` (else `~/.cache/d2l`) or `--cache-dir`. A blob reaches
//! `blobs/` only by a rename of a file whose size and digest were checked and which was
//! synced, so neither a crash nor a concurrent d2l can leave a wrong blob under a digest
//! name; the lock keeps two processes from writing one download at once (the second waits,
//! then finds the blob there). A pull's blobs are recorded under `images/` only once all are
//! there, so until then nothing says they are needed: `DIR/lock` keeps prune from running
//! while any pull (or build from a registry) uses the cache, and a pull from starting while
//! prune runs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, Hasher, VerifiedReader};
use crate::error::{Error, Result};
use crate::store::read_error;

const BLOBS_DIR: &str = "blobs";
const DOWNLOADS_DIR: &str = "downloads";
const IMAGES_DIR: &str = "images";
/// The lock pulls hold shared and prune exclusive.
const LOCK_FILE: &str = "lock";
/// Read buffer for hashing a partial download before resuming it.
const HASH_BUFFER: usize = 256 << 10;

/// `$XDG_CACHE_HOME/d2l`, else `$HOME/.cache/d2l`; `None` without either variable.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("d2l"))
}

/// What one finished pull fetched, as `d2l cache ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The normalised reference, e.g. `docker.io/library/debian:bookworm`.
    pub reference: String,
    /// The platform chosen.
    pub platform: String,
    /// The image manifest's digest.
    pub manifest: Digest,
    /// The config's digest (the image ID).
    pub config: Digest,
    /// Every blob the image needs from the cache: indexes, manifest, config, layers.
    pub blobs: Vec<Digest>,
    /// Bytes of the layers and config.
    pub size: u64,
}

/// A cached blob, as `d2l cache ls` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CachedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// What [`BlobCache::prune`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Blobs removed.
    pub blobs: usize,
    /// Unfinished downloads removed.
    pub downloads: usize,
    /// Image records removed.
    pub images: usize,
    /// Cached builds removed (see [`super::BuiltRecord`]).
    pub built: usize,
    /// Bytes freed.
    pub bytes: u64,
}

/// The blob cache in one directory.
#[derive(Clone, Debug)]
pub struct BlobCache {
    root: PathBuf,
}

/// A hold on the whole cache ([`BlobCache::lock_shared`] for a pull, exclusive for prune),
/// released when dropped.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

/// A download being written, locked by this process.
pub(crate) struct Partial {
    file: File,
    path: PathBuf,
    final_path: PathBuf,
    /// Bytes in the file.
    pub len: u64,
}

/// What [`BlobCache::begin`] found.
pub(crate) enum Begun {
    /// The blob is already in the cache (perhaps fetched meanwhile by another process).
    Cached(PathBuf),
    /// It is not: write it.
    Download(Partial),
}

impl BlobCache {
    /// The cache in `root` (created when first written).
    pub fn new(root: impl Into<PathBuf>) -> BlobCache {
        BlobCache { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where blob `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join(BLOBS_DIR)
            .join(digest.algorithm())
            .join(digest.hex())
    }

    fn download_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join(DOWNLOADS_DIR)
            .join(format!("{}-{}", digest.algorithm(), digest.hex()))
    }

    /// The blob's path if it is cached with the expected size. A file of another size was
    /// damaged outside d2l: it is removed and reported as absent.
    pub(crate) fn lookup(&self, digest: &Digest, size: u64) -> Result<Option<PathBuf>> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(meta) if meta.len() == size => Ok(Some(path)),
            Ok(meta) => {
                tracing::warn!(
                    "{}: {} bytes, not {size}: removing the damaged cache entry",
                    path.display(),
                    meta.len()
                );
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// A small cached blob (manifest, config), read and verified; `None` when absent.
    pub(crate) fn read(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>> {
        let Some(path) = self.lookup(digest, size)? else {
            return Ok(None);
        };
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        VerifiedReader::new(file, digest.clone(), size)
            .read_to_end(&mut bytes)
            .map_err(|e| read_error(&path.display().to_string(), e))?;
        Ok(Some(bytes))
    }

    /// Stores a small blob held in memory, whose digest the caller checked.
    pub(crate) fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.blob_path(digest);
        if self.lookup(digest, bytes.len() as u64)?.is_some() {
            return Ok(path);
        }
        let dir = path.parent().expect("a blob path has a directory");
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_atomically(dir, &path, bytes)?;
        Ok(path)
    }

    /// Takes the download of `digest`: waits while another process holds it, then returns
    /// the blob if that process finished it, else the partial file, locked. Blocks: call it
    /// off the async runtime's threads.
    pub(crate) fn begin(&self, digest: &Digest) -> Result<Begun> {
        let final_path = self.blob_path(digest);
        let path = self.download_path(digest);
        let dir = path.parent().expect("a download path has a directory");
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        loop {
            if final_path.is_file() {
                return Ok(Begun::Cached(final_path));
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
                tracing::info!("{}: another d2l is downloading it; waiting", path.display());
                flock(&file, FlockOperation::LockExclusive)
                    .map_err(|e| Error::io(&path, e.into()))?;
            }
            if final_path.is_file() {
                return Ok(Begun::Cached(final_path));
            }
            // The holder we waited for may have renamed or removed the file we locked.
            let ours = file.metadata().map_err(|e| Error::io(&path, e))?;
            match fs::metadata(&path) {
                Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {
                    return Ok(Begun::Download(Partial {
                        len: ours.len(),
                        file,
                        path,
                        final_path,
                    }));
                }
                _ => continue,
            }
        }
    }

    /// Records a finished pull.
    pub(crate) fn record(&self, record: &ImageRecord) -> Result<()> {
        let dir = self.root.join(IMAGES_DIR);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let key = Digest::sha256_of(format!("{} {}", record.reference, record.platform).as_bytes());
        let path = dir.join(format!("{}.json", &key.hex()[..16]));
        let json = serde_json::to_vec_pretty(record).expect("a record serialises");
        write_atomically(&dir, &path, &json)
    }

    /// The images pulled into the cache, sorted by reference. Records whose blobs are no
    /// longer all there are left out.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let dir = self.root.join(IMAGES_DIR);
        let mut records = Vec::new();
        for path in list_dir(&dir)? {
            let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            match serde_json::from_slice::<ImageRecord>(&bytes) {
                Ok(r) if r.blobs.iter().all(|d| self.blob_path(d).is_file()) => records.push(r),
                Ok(_) => {}
                Err(e) => tracing::warn!("{}: unreadable image record: {e}", path.display()),
            }
        }
        records.sort_by(|a, b| (&a.reference, &a.platform).cmp(&(&b.reference, &b.platform)));
        Ok(records)
    }

    /// Every cached blob, sorted by digest.
    pub fn blobs(&self) -> Result<Vec<CachedBlob>> {
        let mut blobs = Vec::new();
        let base = self.root.join(BLOBS_DIR);
        for alg_dir in list_dir(&base)? {
            let alg = file_name(&alg_dir);
            for path in list_dir(&alg_dir)? {
                let Ok(digest) = format!("{alg}:{}", file_name(&path)).parse::<Digest>() else {
                    continue;
                };
                let size = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
                blobs.push(CachedBlob { digest, size });
            }
        }
        blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(blobs)
    }

    /// Opens (creating it and the cache directory) the cache's lock file.
    fn lock_file(&self) -> Result<(File, PathBuf)> {
        fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let path = self.root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok((file, path))
    }

    /// Takes the cache for a pull, which shares it with other pulls: waits while a prune
    /// runs. Hold it until the pull is recorded and its blobs are no longer read. Blocks.
    pub fn lock_shared(&self) -> Result<CacheLock> {
        let (file, path) = self.lock_file()?;
        if flock(&file, FlockOperation::NonBlockingLockShared).is_err() {
            tracing::info!(
                "{}: d2l cache prune is running; waiting",
                self.root.display()
            );
            flock(&file, FlockOperation::LockShared).map_err(|e| Error::io(&path, e.into()))?;
        }
        Ok(CacheLock { _file: file })
    }

    /// Takes the cache for prune, alone: refuses while any pull holds it. `None`: there is
    /// no cache.
    fn lock_exclusive(&self) -> Result<Option<CacheLock>> {
        if !self.root.is_dir() {
            return Ok(None);
        }
        let (file, path) = self.lock_file()?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(CacheLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::CacheBusy {
                path: self.root.clone(),
            }),
            Err(e) => Err(Error::io(path, e.into())),
        }
    }

    /// Removes unfinished downloads that no process holds, blobs no image record needs and
    /// unfinished builds; with `all`, everything (records, blobs, builds, downloads not in
    /// progress). Refuses
    /// ([`Error::CacheBusy`]) while a pull uses the cache: the blobs it has verified are
    /// recorded only at its end.
    pub fn prune(&self, all: bool) -> Result<PruneReport> {
        let Some(_lock) = self.lock_exclusive()? else {
            return Ok(PruneReport::default());
        };
        let mut report = PruneReport::default();
        for path in list_dir(&self.root.join(DOWNLOADS_DIR))? {
            let Ok(file) = File::open(&path) else {
                continue;
            };
            // A download in progress keeps its lock: leave it alone.
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
                report.bytes += file.metadata().map_or(0, |m| m.len());
                remove(&path)?;
                report.downloads += 1;
            }
        }
        let keep: Vec<Digest> = if all {
            for path in list_dir(&self.root.join(IMAGES_DIR))? {
                remove(&path)?;
                report.images += 1;
            }
            Vec::new()
        } else {
            self.images()?.into_iter().flat_map(|r| r.blobs).collect()
        };
        for blob in self.blobs()? {
            if !keep.contains(&blob.digest) {
                remove(&self.blob_path(&blob.digest))?;
                report.blobs += 1;
                report.bytes += blob.size;
            }
        }
        let (built, built_bytes) = self.prune_built(all)?;
        report.built += built;
        report.bytes += built_bytes;
        if !all {
            // Records whose blobs went missing describe nothing any more.
            let dir = self.root.join(IMAGES_DIR);
            for path in list_dir(&dir)? {
                let complete = fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<ImageRecord>(&b).ok())
                    .is_some_and(|r| r.blobs.iter().all(|d| self.blob_path(d).is_file()));
                if !complete {
                    remove(&path)?;
                    report.images += 1;
                }
            }
        }
        Ok(report)
    }
}

impl Partial {
    /// Feeds the bytes already in the file to `hasher` (to resume a download).
    pub(crate) fn hash_existing(&mut self, hasher: &mut Hasher) -> Result<()> {
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut buf = vec![0u8; HASH_BUFFER];
        let mut left = self.len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file
                .read(&mut buf[..want])
                .map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(())
    }

    /// Empties the file (the registry sent the whole blob, or the resumed bytes were bad).
    pub(crate) fn truncate(&mut self) -> Result<()> {
        self.file.set_len(0).map_err(|e| Error::io(&self.path, e))?;
        self.len = 0;
        Ok(())
    }

    /// Appends bytes.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(bytes, self.len)
            .map_err(|e| Error::io(&self.path, e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Syncs the file and renames it into place (the caller checked size and digest).
    pub(crate) fn commit(self) -> Result<PathBuf> {
        self.file.sync_all().map_err(|e| Error::io(&self.path, e))?;
        let dir = self
            .final_path
            .parent()
            .expect("a blob path has a directory");
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        fs::rename(&self.path, &self.final_path).map_err(|e| Error::io(&self.final_path, e))?;
        sync_dir(dir)?;
        Ok(self.final_path)
    }

    /// Removes the file: its bytes are wrong.
    pub(crate) fn discard(self) -> Result<()> {
        remove(&self.path)
    }
}

/// Writes `bytes` to a temporary file in `dir`, syncs it and renames it to `path`.
pub(crate) fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let temp_name = format!(
        ".{}.{}.tmp",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id()
    );
    let temp = dir.join(temp_name);
    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(Error::io(path, e));
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

pub(crate) fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The entries of `dir`, sorted; none when it does not exist. Hidden (temporary) files are
/// left out.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_reaches_blobs_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let data = b"layer bytes";
        let digest = Digest::sha256_of(data);
        assert!(cache.lookup(&digest, data.len() as u64).unwrap().is_none());

        let Begun::Download(mut partial) = cache.begin(&digest).unwrap() else {
            panic!("nothing cached yet")
        };
        partial.append(&data[..5]).unwrap();
        drop(partial);
        // Interrupted: nothing under the digest's name, the prefix kept for resuming.
        assert!(!cache.blob_path(&digest).exists());
        let Begun::Download(mut partial) = cache.begin(&digest).unwrap() else {
            panic!("still not cached")
        };
        assert_eq!(partial.len, 5);
        let mut hasher = digest.hasher();
        partial.hash_existing(&mut hasher).unwrap();
        partial.append(&data[5..]).unwrap();
        hasher.update(&data[5..]);
        assert_eq!(hasher.finish(), digest);
        let path = partial.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), data);
        assert!(matches!(cache.begin(&digest).unwrap(), Begun::Cached(_)));
        assert_eq!(
            cache.read(&digest, data.len() as u64).unwrap().unwrap(),
            data
        );
        assert_eq!(cache.blobs().unwrap().len(), 1);
    }

    #[test]
    fn damaged_entries_are_dropped_and_prune_keeps_recorded_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let kept = Digest::sha256_of(b"kept");
        let loose = Digest::sha256_of(b"loose");
        cache.put(&kept, b"kept").unwrap();
        cache.put(&loose, b"loose").unwrap();
        // A wrong size is noticed and the entry removed.
        assert!(cache.lookup(&loose, 99).unwrap().is_none());
        assert!(!cache.blob_path(&loose).exists());
        cache.put(&loose, b"loose").unwrap();
        // Same size, wrong bytes: reading fails naming the digest.
        fs::write(cache.blob_path(&loose), b"LOOSE").unwrap();
        let err = cache.read(&loose, 5).unwrap_err();
        assert!(err.to_string().contains(&loose.to_string()), "{err}");

        let record = ImageRecord {
            reference: "localhost/x:latest".into(),
            platform: "linux/amd64".into(),
            manifest: kept.clone(),
            config: kept.clone(),
            blobs: vec![kept.clone()],
            size: 4,
        };
        cache.record(&record).unwrap();
        assert_eq!(cache.images().unwrap(), vec![record]);
        let Begun::Download(mut partial) = cache.begin(&Digest::sha256_of(b"x")).unwrap() else {
            panic!()
        };
        partial.append(b"x").unwrap();
        drop(partial);

        let report = cache.prune(false).unwrap();
        assert_eq!((report.blobs, report.downloads, report.images), (1, 1, 0));
        assert!(cache.blob_path(&kept).exists());
        let report = cache.prune(true).unwrap();
        assert_eq!((report.blobs, report.images), (1, 1));
        assert!(cache.blobs().unwrap().is_empty());
    }

    fn record_of(blobs: &[&Digest]) -> ImageRecord {
        ImageRecord {
            reference: "localhost/x:latest".into(),
            platform: "linux/amd64".into(),
            manifest: blobs[0].clone(),
            config: blobs[0].clone(),
            blobs: blobs.iter().map(|d| (*d).clone()).collect(),
            size: 1,
        }
    }

    #[test]
    fn prune_refuses_while_a_pull_holds_the_cache() {
        use std::sync::mpsc;
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let layer = Digest::sha256_of(b"layer");
        let (verified_tx, verified_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let pull = {
            let cache = cache.clone();
            let layer = layer.clone();
            std::thread::spawn(move || {
                // A pull: its first layer verified and in blobs/, not recorded until all are.
                let _lock = cache.lock_shared().unwrap();
                cache.put(&layer, b"layer").unwrap();
                verified_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                cache.record(&record_of(&[&layer])).unwrap();
            })
        };
        verified_rx.recv().unwrap();
        let err = cache.prune(false).unwrap_err();
        assert!(matches!(err, Error::CacheBusy { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: in use by another d2l (a pull, or a build or export of a registry \
                 image); prune it once that has finished",
                dir.path().display()
            )
        );
        assert!(cache.prune(true).is_err());
        assert!(
            cache.blob_path(&layer).is_file(),
            "prune removed a pulled blob"
        );

        go_tx.send(()).unwrap();
        pull.join().unwrap();
        let report = cache.prune(false).unwrap();
        assert_eq!(report, PruneReport::default());
        assert!(cache.blob_path(&layer).is_file());
    }

    #[test]
    fn a_pull_waits_for_a_prune_to_finish() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let pruning = cache.lock_exclusive().unwrap().unwrap();
        let locked = Arc::new(AtomicBool::new(false));
        let pull = {
            let cache = cache.clone();
            let locked = Arc::clone(&locked);
            std::thread::spawn(move || {
                let lock = cache.lock_shared().unwrap();
                locked.store(true, Ordering::SeqCst);
                lock
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            !locked.load(Ordering::SeqCst),
            "a pull started during prune"
        );
        drop(pruning);
        let _pulling = pull.join().unwrap();
        assert!(locked.load(Ordering::SeqCst));
        // Pulls share the cache with each other.
        let _another = cache.lock_shared().unwrap();
        assert!(matches!(cache.prune(false), Err(Error::CacheBusy { .. })));
    }

    #[test]
    fn prune_of_no_cache_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path().join("none"));
        assert_eq!(cache.prune(true).unwrap(), PruneReport::default());
        assert!(!dir.path().join("none").exists());
    }
}
