//! Where blob bytes come from: a directory, or a range of a tar file read in place.
//!
//! A store serves files by their `/`-separated path relative to the image layout's (or
//! archive's) root. Nothing is ever unpacked: a tar file is scanned once for its headers,
//! giving each entry's data offset and size, and entries are then read straight from that
//! byte range of the file.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tar::EntryType;

use crate::error::{Error, Result};

/// Symlink and hardlink hops followed when resolving an archive entry before giving up
/// (Linux's `MAXSYMLINKS` is 40).
const MAX_LINK_HOPS: usize = 40;

/// An open file of a store: its bytes and its size.
pub(crate) struct Blob {
    /// The bytes, exactly `size` of them if the source is intact.
    pub reader: Box<dyn Read + Send>,
    /// The size the store records for it.
    pub size: u64,
    /// Where its bytes lie in a host file (every store's blobs do).
    pub range: BlobRange,
}

/// Where a blob lies in a host file: `len` bytes from `offset` (0 for a blob file of its
/// own), for positional reads by several threads.
#[derive(Debug, Clone)]
pub struct BlobRange {
    /// The file.
    pub file: Arc<File>,
    /// Where the blob starts in it.
    pub offset: u64,
    /// The blob's size as the store records it.
    pub len: u64,
}

impl Blob {
    /// A whole file, opened, as a blob.
    pub(crate) fn whole_file(file: File, len: u64) -> Blob {
        let file = Arc::new(file);
        Blob {
            // `Read` for `Arc<File>` moves the shared cursor; positional reads ignore it.
            reader: Box::new(Arc::clone(&file)),
            size: len,
            range: BlobRange {
                file,
                offset: 0,
                len,
            },
        }
    }
}

/// A source of files addressed by relative path.
pub(crate) trait Store: Send + Sync + fmt::Debug {
    /// Opens `path`; `Ok(None)` when there is no such file.
    fn open(&self, path: &str) -> Result<Option<Blob>>;

    /// Where `path` lives, for messages: a host path or `ARCHIVE!ENTRY`.
    fn describe(&self, path: &str) -> String;

    /// The directory or archive file the store reads.
    fn root(&self) -> &Path;
}

/// Reads an error that a `Read` of a store handed back: if it wraps one of this crate's errors
/// (a failed verification), that error; otherwise an I/O error at `location`.
pub(crate) fn read_error(location: &str, err: io::Error) -> Error {
    match err.downcast::<d2l_blob::Error>() {
        Ok(verification) => verification.into(),
        Err(err) => match err.downcast::<Error>() {
            Ok(ours) => ours,
            Err(err) => Error::io(location, err),
        },
    }
}

/// A directory on the host: an OCI image layout.
#[derive(Debug)]
pub(crate) struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub(crate) fn new(root: &Path) -> Result<Self> {
        let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
        if !meta.is_dir() {
            return Err(Error::InvalidLayout {
                path: root.to_owned(),
                reason: "not a directory (for a tar file use oci-archive:)".to_owned(),
            });
        }
        Ok(DirStore {
            root: root.to_owned(),
        })
    }

    fn host_path(&self, path: &str) -> PathBuf {
        debug_assert!(
            !path.starts_with('/') && !path.split('/').any(|c| c == ".."),
            "store paths are relative and never climb: {path}"
        );
        self.root.join(path)
    }
}

impl Store for DirStore {
    fn open(&self, path: &str) -> Result<Option<Blob>> {
        let host = self.host_path(path);
        let file = match File::open(&host) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(host, e)),
        };
        let meta = file.metadata().map_err(|e| Error::io(&host, e))?;
        if !meta.is_file() {
            return Err(Error::io(
                host,
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        Ok(Some(Blob::whole_file(file, meta.len())))
    }

    fn describe(&self, path: &str) -> String {
        self.host_path(path).display().to_string()
    }

    fn root(&self) -> &Path {
        &self.root
    }
}

/// What a tar entry is, as far as serving files goes.
#[derive(Debug, Clone)]
enum TarEntry {
    /// A regular file: its data's byte range in the archive.
    File { offset: u64, size: u64 },
    /// A symlink; the target is relative to the link's directory unless absolute.
    Symlink(String),
    /// A hardlink; the target is relative to the archive root.
    Hardlink(String),
    /// Anything else (device, fifo, sparse file, ...), named for the error.
    Other(String),
}

/// A tar file read in place: an index of its entries, and the open file.
pub(crate) struct TarStore {
    file: PathBuf,
    handle: Arc<File>,
    entries: HashMap<String, TarEntry>,
}

impl fmt::Debug for TarStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TarStore")
            .field("file", &self.file)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl TarStore {
    /// Scans the headers of the tar file at `file` (seeking over the data) and indexes them.
    pub(crate) fn open(file: &Path) -> Result<Self> {
        let handle = File::open(file).map_err(|e| Error::io(file, e))?;
        let meta = handle.metadata().map_err(|e| Error::io(file, e))?;
        if meta.is_dir() {
            return Err(Error::io(
                file,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "is a directory, expected a tar file (for a directory use oci:)",
                ),
            ));
        }
        let mut entries = HashMap::new();
        let mut archive = tar::Archive::new(&handle);
        let bad_tar = |e: io::Error| {
            Error::io(
                file,
                io::Error::new(e.kind(), format!("reading tar headers: {e}")),
            )
        };
        for entry in archive.entries_with_seek().map_err(bad_tar)? {
            let entry = entry.map_err(bad_tar)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(name) = clean_path(&name) else {
                continue;
            };
            let header = entry.header();
            let kind = header.entry_type();
            let link = || {
                entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            };
            let value = match kind {
                EntryType::Regular | EntryType::Continuous => TarEntry::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                EntryType::Symlink => TarEntry::Symlink(link()),
                EntryType::Link => TarEntry::Hardlink(link()),
                EntryType::Directory => continue,
                other => TarEntry::Other(format!("{other:?}")),
            };
            entries.insert(name, value);
        }
        tracing::debug!(file = %file.display(), entries = entries.len(), "indexed tar archive");
        Ok(TarStore {
            file: file.to_owned(),
            handle: Arc::new(handle),
            entries,
        })
    }

    fn entry_error(&self, entry: &str, reason: impl Into<String>) -> Error {
        Error::ArchiveEntry {
            file: self.file.clone(),
            entry: entry.to_owned(),
            reason: reason.into(),
        }
    }

    /// Follows links from `path` to a regular file: its cleaned name, offset and size.
    /// `Ok(None)` when `path` itself does not exist.
    pub(crate) fn resolve(&self, path: &str) -> Result<Option<(String, u64, u64)>> {
        let Some(mut current) = clean_path(path) else {
            return Ok(None);
        };
        for hop in 0..=MAX_LINK_HOPS {
            let entry = match self.entries.get(&current) {
                Some(entry) => entry,
                None if hop == 0 => return Ok(None),
                None => {
                    return Err(
                        self.entry_error(path, format!("links to {current}, which is missing"))
                    )
                }
            };
            let next = match entry {
                TarEntry::File { offset, size } => return Ok(Some((current, *offset, *size))),
                TarEntry::Other(kind) => {
                    return Err(
                        self.entry_error(&current, format!("is a {kind}, not a regular file"))
                    )
                }
                TarEntry::Symlink(target) => {
                    let joined = if target.starts_with('/') {
                        target.clone()
                    } else {
                        match current.rsplit_once('/') {
                            Some((dir, _)) => format!("{dir}/{target}"),
                            None => target.clone(),
                        }
                    };
                    clean_path(&joined)
                }
                TarEntry::Hardlink(target) => clean_path(target),
            };
            current =
                next.ok_or_else(|| self.entry_error(&current, "links outside the archive"))?;
        }
        Err(self.entry_error(path, format!("more than {MAX_LINK_HOPS} links: a loop")))
    }

    /// A reader over `size` bytes of the archive starting at `offset`.
    pub(crate) fn range(&self, entry: &str, offset: u64, size: u64) -> RangeReader {
        RangeReader {
            file: Arc::clone(&self.handle),
            archive: self.file.clone(),
            entry: entry.to_owned(),
            pos: offset,
            end: offset + size,
        }
    }
}

impl Store for TarStore {
    fn open(&self, path: &str) -> Result<Option<Blob>> {
        Ok(self.resolve(path)?.map(|(name, offset, size)| Blob {
            reader: Box::new(self.range(&name, offset, size)),
            size,
            range: BlobRange {
                file: Arc::clone(&self.handle),
                offset,
                len: size,
            },
        }))
    }

    fn describe(&self, path: &str) -> String {
        format!("{}!{path}", self.file.display())
    }

    fn root(&self) -> &Path {
        &self.file
    }
}

/// Reads a byte range of a shared file with positional reads, so that any number of readers
/// can share one file handle.
pub(crate) struct RangeReader {
    file: Arc<File>,
    archive: PathBuf,
    entry: String,
    pos: u64,
    end: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.end - self.pos;
        if remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = read_at(&self.file, &mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                Error::ArchiveEntry {
                    file: self.archive.clone(),
                    entry: self.entry.clone(),
                    reason: format!("archive is truncated at offset {:#x}", self.pos),
                },
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Cleans an archive entry name lexically: drops leading `/` and `./`, empty and `.`
/// components, resolves `..`. `None` for the root itself or a name that climbs above it.
pub(crate) fn clean_path(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for component in name.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        for (input, want) in [
            ("index.json", Some("index.json")),
            ("./index.json", Some("index.json")),
            ("/blobs//sha256/./ab", Some("blobs/sha256/ab")),
            ("a/../b/layer.tar", Some("b/layer.tar")),
            ("a/b/../../c", Some("c")),
            ("./", None),
            ("../etc/passwd", None),
            ("a/../../b", None),
        ] {
            assert_eq!(clean_path(input).as_deref(), want, "{input}");
        }
    }

    fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn add_file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    }

    fn add_link(b: &mut tar::Builder<Vec<u8>>, kind: EntryType, name: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(kind);
        b.append_link(&mut h, name, target).unwrap();
    }

    fn read(store: &TarStore, path: &str) -> Option<Vec<u8>> {
        let blob = store.open(path).unwrap()?;
        let mut out = Vec::new();
        blob.reader.take(1 << 20).read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, blob.size);
        Some(out)
    }

    #[test]
    fn tar_store_serves_entries_and_links() {
        let long = format!("{}/file", "d".repeat(150));
        let bytes = tar_with(|b| {
            add_file(b, "./a/layer.tar", b"first layer");
            add_file(b, "plain", b"plain data");
            add_file(b, &long, b"long name");
            add_link(b, EntryType::Symlink, "b/layer.tar", "../a/layer.tar");
            add_link(b, EntryType::Symlink, "abs", "/plain");
            add_link(b, EntryType::Link, "c/hard", "./a/layer.tar");
            add_link(b, EntryType::Symlink, "loop1", "loop2");
            add_link(b, EntryType::Symlink, "loop2", "loop1");
            add_link(b, EntryType::Symlink, "dangling", "nowhere");
            add_link(b, EntryType::Symlink, "escape", "../../x");
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tar");
        std::fs::write(&path, &bytes).unwrap();
        let store = TarStore::open(&path).unwrap();

        assert_eq!(read(&store, "a/layer.tar").unwrap(), b"first layer");
        assert_eq!(read(&store, "./plain").unwrap(), b"plain data");
        assert_eq!(read(&store, &long).unwrap(), b"long name");
        assert_eq!(read(&store, "b/layer.tar").unwrap(), b"first layer");
        assert_eq!(read(&store, "abs").unwrap(), b"plain data");
        assert_eq!(read(&store, "c/hard").unwrap(), b"first layer");
        assert!(read(&store, "missing").is_none());
        for bad in ["loop1", "dangling", "escape"] {
            let err = store.open(bad).err().unwrap();
            assert!(matches!(err, Error::ArchiveEntry { .. }), "{bad}: {err}");
        }
        assert!(store.describe("plain").ends_with("x.tar!plain"));
    }

    #[test]
    fn truncated_archive_is_an_error_naming_the_entry() {
        let bytes = tar_with(|b| add_file(b, "big", &[1u8; 4096]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tar");
        std::fs::write(&path, &bytes).unwrap();
        let store = TarStore::open(&path).unwrap();
        // Cut the file inside the entry's data.
        std::fs::write(&path, &bytes[..512 + 100]).unwrap();
        let mut blob = store.open("big").unwrap().unwrap();
        let mut out = Vec::new();
        let err = blob.reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("entry big"), "{err}");
    }
}
