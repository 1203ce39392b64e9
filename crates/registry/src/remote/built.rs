//! Images an image builder made from another image (d2l's kernel recipes), kept beside the
//! blobs so that building the same image again runs no builder:
//!
//! ```text
//! DIR/built/KEY.tar    the builder's archive (oci-archive or docker-archive), read in place
//! DIR/built/KEY.json   its BuiltRecord, written after the archive is complete
//! ```
//!
//! KEY is chosen by the caller (a hash of the base image's digest, the platform and the
//! recipe's text). An archive without its record is unfinished and ignored (prune removes
//! it); both are written under a temporary name and renamed.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cache::{list_dir, remove, write_atomically, BlobCache};
use crate::error::{Error, Result};

const BUILT_DIR: &str = "built";

/// What one cached build made, as `d2l cache ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltRecord {
    /// The cache key (file names are `KEY.tar` and `KEY.json`).
    pub key: String,
    /// The base image as the user named it.
    pub base: String,
    /// The base image's manifest digest (its config digest when it has no manifest).
    pub base_digest: String,
    /// The platform built for.
    pub platform: String,
    /// The base image's `/etc/os-release`, as read (none: it had none).
    pub os_release: Option<String>,
    /// Whether the recipe installed a kernel.
    pub kernel: bool,
    /// The packages asked for with `--install`.
    pub installs: Vec<String>,
    /// One line saying what the recipe did.
    pub summary: String,
    /// `oci-archive` or `docker-archive`.
    pub format: String,
    /// Bytes of the archive.
    pub size: u64,
}

impl BlobCache {
    fn built_dir(&self) -> PathBuf {
        self.root().join(BUILT_DIR)
    }

    /// Where the archive of `key` lives.
    pub fn built_archive(&self, key: &str) -> PathBuf {
        self.built_dir().join(format!("{key}.tar"))
    }

    /// The complete cached builds (record and archive of the recorded size), by base.
    pub fn built_images(&self) -> Result<Vec<BuiltRecord>> {
        let mut records = Vec::new();
        for path in list_dir(&self.built_dir())? {
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            match serde_json::from_slice::<BuiltRecord>(&bytes) {
                Ok(r) if self.complete(&r) => records.push(r),
                Ok(_) => {}
                Err(e) => tracing::warn!("{}: unreadable build record: {e}", path.display()),
            }
        }
        records.sort_by(|a, b| (&a.base, &a.platform, &a.key).cmp(&(&b.base, &b.platform, &b.key)));
        Ok(records)
    }

    fn complete(&self, record: &BuiltRecord) -> bool {
        valid_key(&record.key)
            && fs::metadata(self.built_archive(&record.key)).is_ok_and(|m| m.len() == record.size)
    }

    /// Moves `archive` (renamed when on the same filesystem, else copied) into the cache as
    /// `record.key`'s, then writes the record; returns the archive's new path. Hold
    /// [`BlobCache::lock_shared`] meanwhile.
    pub fn store_built(&self, record: &BuiltRecord, archive: &Path) -> Result<PathBuf> {
        if !valid_key(&record.key) {
            return Err(Error::io(
                self.built_dir(),
                io::Error::new(io::ErrorKind::InvalidInput, "invalid cache key"),
            ));
        }
        let dir = self.built_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = self.built_archive(&record.key);
        let temp = dir.join(format!(".{}.{}.tmp", record.key, std::process::id()));
        let moved = fs::rename(archive, &temp).or_else(|_| {
            fs::copy(archive, &temp)?;
            File::open(&temp)?.sync_all()
        });
        if let Err(e) = moved.and_then(|()| fs::rename(&temp, &path)) {
            let _ = fs::remove_file(&temp);
            return Err(Error::io(&path, e));
        }
        let json = serde_json::to_vec_pretty(record).expect("a record serialises");
        write_atomically(&dir, &dir.join(format!("{}.json", record.key)), &json)?;
        Ok(path)
    }

    /// Removes cached builds: all of them with `all`, else only archives without a record
    /// and records without their archive. Returns (builds removed, bytes freed). The caller
    /// holds the cache exclusively.
    pub(crate) fn prune_built(&self, all: bool) -> Result<(usize, u64)> {
        let dir = self.built_dir();
        let keep: Vec<String> = if all {
            Vec::new()
        } else {
            self.built_images()?.into_iter().map(|r| r.key).collect()
        };
        let (mut removed, mut bytes) = (0, 0);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let stem = name.trim_start_matches('.').split('.').next().unwrap_or("");
            if keep.iter().any(|k| k == stem) && !name.starts_with('.') {
                continue;
            }
            if name.ends_with(".tar") {
                removed += 1;
            }
            bytes += fs::metadata(&path).map_or(0, |m| m.len());
            remove(&path)?;
        }
        Ok((removed, bytes))
    }
}

/// Keys are file names: hex digits only.
fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, size: u64) -> BuiltRecord {
        BuiltRecord {
            key: key.into(),
            base: "debian:bookworm".into(),
            base_digest: "sha256:00".into(),
            platform: "linux/amd64".into(),
            os_release: Some("ID=debian\n".into()),
            kernel: true,
            installs: vec!["openssh-server".into()],
            summary: "Debian: apt-get installs linux-image-amd64".into(),
            format: "oci-archive".into(),
            size,
        }
    }

    #[test]
    fn stores_lists_and_prunes_builds() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path().join("cache"));
        assert!(cache.built_images().unwrap().is_empty());
        let archive = dir.path().join("out.tar");
        fs::write(&archive, b"archive bytes").unwrap();
        let stored = cache.store_built(&record("abcd", 13), &archive).unwrap();
        assert_eq!(stored, cache.built_archive("abcd"));
        assert_eq!(fs::read(&stored).unwrap(), b"archive bytes");
        assert!(!archive.exists(), "moved, not copied");
        assert_eq!(cache.built_images().unwrap(), [record("abcd", 13)]);

        // An archive whose size is not the recorded one is not a cached build.
        fs::write(cache.built_archive("abcd"), b"short").unwrap();
        assert!(cache.built_images().unwrap().is_empty());
        assert_eq!(cache.prune_built(false).unwrap().0, 1);
        assert!(fs::read_dir(cache.built_dir()).unwrap().next().is_none());

        fs::write(&archive, b"archive bytes").unwrap();
        cache.store_built(&record("ef01", 13), &archive).unwrap();
        assert_eq!(cache.prune_built(false).unwrap(), (0, 0));
        assert_eq!(cache.built_images().unwrap().len(), 1);
        let (removed, _) = cache.prune_built(true).unwrap();
        assert_eq!(removed, 1);
        assert!(cache.built_images().unwrap().is_empty());
    }

    #[test]
    fn refuses_keys_that_are_not_hex() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let archive = dir.path().join("a.tar");
        fs::write(&archive, b"x").unwrap();
        assert!(cache.store_built(&record("../x", 1), &archive).is_err());
    }
}
