//! Where a kernel and its modules come from: another image's tree (a distribution's kernel
//! package installed in it, or LinuxKit's `/kernel` and `/kernel.tar` unpacked into one), or
//! the host's own packages.

use std::io::Read;

use d2l_rootfs::{ContentStore, InodeKind, Metadata, Rootfs, SpillFile, Timestamp};

use crate::error::{Error, Result};

/// Largest kernel image read (bzImages are 5-15 MiB).
pub(crate) const MAX_KERNEL_BYTES: u64 = 256 << 20;
/// Largest module or module index file read (the largest modules are a few MiB).
pub(crate) const MAX_MODULE_BYTES: u64 = 64 << 20;
/// Largest LinuxKit modules archive entry count, against a hostile archive.
const MAX_ARCHIVE_ENTRIES: usize = 1 << 20;

/// What a directory entry is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link to this target.
    Symlink(String),
    /// Anything else (devices, pipes: not in a kernel's files).
    Other,
}

/// A filesystem a kernel is read from.
pub trait KernelSource {
    /// Where it is, for messages (`oci:kernel`, `the host`).
    fn origin(&self) -> &str;
    /// The regular file at `path` (absolute, symlinks followed), at most `limit` bytes.
    fn read(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>>;
    /// The entries of directory `path` (symlinks followed), in name order; empty when it
    /// is not a directory.
    fn list(&mut self, path: &str) -> Vec<(String, EntryKind)>;
}

/// An image's flattened tree as a kernel source.
pub struct TreeSource<'a, S: ContentStore> {
    rootfs: &'a mut Rootfs<S>,
    origin: String,
}

impl<'a, S: ContentStore> TreeSource<'a, S> {
    /// Reads the kernel from `rootfs`, the image `origin` names.
    pub fn new(rootfs: &'a mut Rootfs<S>, origin: &str) -> Self {
        TreeSource {
            rootfs,
            origin: origin.to_owned(),
        }
    }
}

impl<S: ContentStore> KernelSource for TreeSource<'_, S> {
    fn origin(&self) -> &str {
        &self.origin
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        self.rootfs
            .read_file(path.as_bytes(), limit)
            .map_err(|e| Error::Kernel {
                path: format!("{path} in {}", self.origin),
                reason: e.to_string(),
            })
    }

    fn list(&mut self, path: &str) -> Vec<(String, EntryKind)> {
        let Some(id) = self.rootfs.resolve(path.as_bytes()) else {
            return Vec::new();
        };
        let tree = self.rootfs.tree();
        let Some(dir) = tree.inode(id).as_directory() else {
            return Vec::new();
        };
        let mut entries: Vec<(String, EntryKind)> = dir
            .entries()
            .map(|(name, child)| {
                let kind = match &tree.inode(child).kind {
                    InodeKind::File(_) => EntryKind::File,
                    InodeKind::Directory(_) => EntryKind::Directory,
                    InodeKind::Symlink(target) => {
                        EntryKind::Symlink(String::from_utf8_lossy(target).into_owned())
                    }
                    _ => EntryKind::Other,
                };
                (String::from_utf8_lossy(name).into_owned(), kind)
            })
            .collect();
        entries.sort();
        entries
    }
}

/// The host's root filesystem as a kernel source (`--kernel-from host`).
pub struct HostSource;

impl KernelSource for HostSource {
    fn origin(&self) -> &str {
        "the host"
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(Error::Host {
                    path: path.to_owned(),
                    reason: "not readable by this user (some distributions make kernels \
                             root-only: `sudo chmod a+r` it, or take the kernel from an image \
                             with --kernel-from IMAGE)"
                        .into(),
                })
            }
            Err(e) => {
                return Err(Error::Host {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })
            }
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Host {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        if bytes.len() as u64 > limit {
            return Err(Error::Host {
                path: path.to_owned(),
                reason: format!("more than {limit} bytes"),
            });
        }
        Ok(Some(bytes))
    }

    fn list(&mut self, path: &str) -> Vec<(String, EntryKind)> {
        let Ok(dir) = std::fs::read_dir(path) else {
            return Vec::new();
        };
        let mut entries: Vec<(String, EntryKind)> = dir
            .filter_map(|e| e.ok())
            .map(|e| {
                let kind = match e.file_type() {
                    Ok(t) if t.is_file() => EntryKind::File,
                    Ok(t) if t.is_dir() => EntryKind::Directory,
                    Ok(t) if t.is_symlink() => EntryKind::Symlink(
                        std::fs::read_link(e.path())
                            .map(|t| t.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    ),
                    _ => EntryKind::Other,
                };
                (e.file_name().to_string_lossy().into_owned(), kind)
            })
            .collect();
        entries.sort();
        entries
    }
}

/// The running kernel's version (`uname -r`).
pub fn host_kernel_version() -> Result<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|v| v.trim().to_owned())
        .map_err(|e| Error::Host {
            path: "/proc/sys/kernel/osrelease".into(),
            reason: e.to_string(),
        })
}

/// A kernel found in a source: its version, its image and its modules directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLayout {
    /// `uname -r` of the kernel.
    pub version: String,
    /// The kernel image's path in the source.
    pub image: String,
    /// The modules directory's path in the source (`/lib/modules/VERSION`); it may be
    /// missing for a kernel with everything built in.
    pub modules: String,
}

/// Finds the kernel in `source`: `/boot/vmlinuz-VERSION` with `/lib/modules/VERSION` (the
/// newest version when there are several), or only `version` when given (the host's).
pub fn find_kernel_layout(
    source: &mut dyn KernelSource,
    version: Option<&str>,
) -> Result<KernelLayout> {
    let versions: Vec<String> = match version {
        Some(v) => vec![v.to_owned()],
        None => source
            .list("/boot")
            .into_iter()
            .filter(|(_, kind)| *kind != EntryKind::Directory)
            .filter_map(|(name, _)| name.strip_prefix("vmlinuz-").map(str::to_owned))
            .collect(),
    };
    let mut found: Vec<KernelLayout> = versions
        .into_iter()
        .map(|version| KernelLayout {
            image: format!("/boot/vmlinuz-{version}"),
            modules: format!("/lib/modules/{version}"),
            version,
        })
        // A version asked for (the host's) is the kernel whatever its modules: a kernel
        // with everything built in has none, and an unreadable image is said when read.
        .filter(|k| version.is_some() || !source.list(&k.modules).is_empty())
        .collect();
    found.sort_by(|a, b| version_order(&a.version, &b.version));
    found.pop().ok_or_else(|| Error::NoKernel {
        origin: source.origin().to_owned(),
        looked: match version {
            Some(v) => format!("/boot/vmlinuz-{v} with /lib/modules/{v}"),
            None => "/boot/vmlinuz-VERSION with /lib/modules/VERSION, or LinuxKit's /kernel \
                     with /kernel.tar"
                .into(),
        },
    })
}

/// Orders versions by their numbers (`6.1.0-50` after `6.1.0-9`).
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<(u64, String)> {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .map(|p| (p.parse().unwrap_or(0), p.to_owned()))
            .collect()
    };
    parts(a).cmp(&parts(b))
}

/// Whether `rootfs` holds a LinuxKit kernel image (`/kernel` and `/kernel.tar`).
pub fn is_linuxkit<S: ContentStore>(rootfs: &mut Rootfs<S>) -> bool {
    rootfs.resolve(b"/kernel").is_some() && rootfs.resolve(b"/kernel.tar").is_some()
}

/// LinuxKit's layout made a distribution's: `/kernel` as `/boot/vmlinuz-VERSION`, and
/// `/kernel.tar` (modules under `lib/modules/VERSION`) unpacked, in a tree of its own.
pub fn unpack_linuxkit<S: ContentStore>(
    rootfs: &mut Rootfs<S>,
    origin: &str,
) -> Result<Rootfs<SpillFile>> {
    let fail = |path: &str, reason: String| Error::Kernel {
        path: format!("{path} in {origin}"),
        reason,
    };
    let spill = SpillFile::new().map_err(|e| fail("/kernel.tar", e.to_string()))?;
    let mut unpacked = Rootfs::new(spill, Timestamp::default());
    let archive =
        TreeFileReader::open(rootfs, "/kernel.tar").map_err(|e| fail("/kernel.tar", e))?;
    let mut version = None;
    let mut entries = tar::Archive::new(archive);
    let entries = entries
        .entries()
        .map_err(|e| fail("/kernel.tar", e.to_string()))?;
    for (count, entry) in entries.enumerate() {
        if count > MAX_ARCHIVE_ENTRIES {
            return Err(fail("/kernel.tar", "too many entries".into()));
        }
        let mut entry = entry.map_err(|e| fail("/kernel.tar", e.to_string()))?;
        let path = entry.path_bytes().into_owned();
        let path = String::from_utf8_lossy(&path)
            .trim_start_matches("./")
            .to_owned();
        let Some(rest) = path.strip_prefix("lib/modules/") else {
            continue;
        };
        if let Some((v, _)) = rest.split_once('/') {
            version.get_or_insert_with(|| v.to_owned());
        }
        let meta = Metadata {
            mode: 0o644,
            ..Metadata::default()
        };
        let target = format!("/{path}");
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            unpacked
                .create_dir_all(
                    target.as_bytes(),
                    Metadata {
                        mode: 0o755,
                        ..meta
                    },
                )
                .map_err(|e| fail(&target, e.to_string()))?;
        } else if kind.is_file() {
            if entry.size() > MAX_MODULE_BYTES {
                return Err(fail(&target, format!("more than {MAX_MODULE_BYTES} bytes")));
            }
            let mut content = Vec::new();
            entry
                .read_to_end(&mut content)
                .map_err(|e| fail(&target, e.to_string()))?;
            unpacked
                .write_file(target.as_bytes(), meta, &content)
                .map_err(|e| fail(&target, e.to_string()))?;
        }
    }
    let version = version.ok_or_else(|| {
        fail(
            "/kernel.tar",
            "holds no lib/modules/VERSION/ directory".into(),
        )
    })?;
    let kernel = rootfs
        .read_file(b"/kernel", MAX_KERNEL_BYTES)
        .map_err(|e| fail("/kernel", e.to_string()))?
        .ok_or_else(|| fail("/kernel", "not a regular file".into()))?;
    let image = format!("/boot/vmlinuz-{version}");
    unpacked
        .write_file(
            image.as_bytes(),
            Metadata {
                mode: 0o644,
                ..Metadata::default()
            },
            &kernel,
        )
        .map_err(|e| fail(&image, e.to_string()))?;
    Ok(unpacked)
}

/// Reads a regular file of a tree from its store, a piece at a time (holes read as zeros).
struct TreeFileReader<'a, S: ContentStore> {
    store: &'a mut S,
    file: d2l_rootfs::FileData,
    position: u64,
}

impl<'a, S: ContentStore> TreeFileReader<'a, S> {
    fn open(rootfs: &'a mut Rootfs<S>, path: &str) -> std::result::Result<Self, String> {
        let id = rootfs
            .resolve(path.as_bytes())
            .ok_or_else(|| "missing".to_owned())?;
        let file = rootfs
            .tree()
            .inode(id)
            .as_file()
            .cloned()
            .ok_or_else(|| "not a regular file".to_owned())?;
        Ok(TreeFileReader {
            store: rootfs.store_mut(),
            file,
            position: 0,
        })
    }
}

impl<S: ContentStore> Read for TreeFileReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.file.size.saturating_sub(self.position);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = left.min(buf.len() as u64);
        let at = self.position;
        // The extent holding `at`, or the hole before the next one.
        let extent = self
            .file
            .extents
            .iter()
            .find(|e| e.file_offset + e.len > at);
        let len = match extent {
            Some(e) if e.file_offset <= at => {
                let len = want.min(e.file_offset + e.len - at);
                let n = usize::try_from(len).map_err(std::io::Error::other)?;
                self.store
                    .read_at(&mut buf[..n], e.store_offset + (at - e.file_offset))?;
                len
            }
            Some(e) => {
                let len = want.min(e.file_offset - at);
                buf[..usize::try_from(len).map_err(std::io::Error::other)?].fill(0);
                len
            }
            None => {
                buf[..usize::try_from(want).map_err(std::io::Error::other)?].fill(0);
                want
            }
        };
        self.position += len;
        usize::try_from(len).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_by_number() {
        let mut v = vec![
            "6.1.0-9-amd64",
            "6.1.0-50-amd64",
            "5.10.0-32-amd64",
            "6.12.1",
        ];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(
            v,
            [
                "5.10.0-32-amd64",
                "6.1.0-9-amd64",
                "6.1.0-50-amd64",
                "6.12.1"
            ]
        );
    }

    fn tree() -> Rootfs<SpillFile> {
        Rootfs::new(SpillFile::new().unwrap(), Timestamp::default())
    }

    #[test]
    fn the_newest_kernel_with_modules_is_found() {
        let mut rootfs = tree();
        let meta = Metadata::default();
        for v in ["6.1.0-9", "6.1.0-50", "7.0-nomodules"] {
            rootfs
                .write_file(format!("/boot/vmlinuz-{v}").as_bytes(), meta.clone(), b"k")
                .unwrap();
        }
        for v in ["6.1.0-9", "6.1.0-50"] {
            rootfs
                .write_file(
                    format!("/usr/lib/modules/{v}/modules.dep").as_bytes(),
                    meta.clone(),
                    b"",
                )
                .unwrap();
        }
        rootfs.write_symlink(b"/lib", b"usr/lib", meta).unwrap();
        let mut source = TreeSource::new(&mut rootfs, "oci:kernel");
        let found = find_kernel_layout(&mut source, None).unwrap();
        assert_eq!(found.version, "6.1.0-50");
        assert_eq!(found.image, "/boot/vmlinuz-6.1.0-50");
        // A version asked for is taken as is: copy_kernel says when its image is missing.
        let asked = find_kernel_layout(&mut source, Some("9.9")).unwrap();
        assert_eq!(asked.image, "/boot/vmlinuz-9.9");
        let mut empty = tree();
        let error = find_kernel_layout(&mut TreeSource::new(&mut empty, "oci:kernel"), None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("no kernel in oci:kernel") && error.contains("LinuxKit"),
            "{error}"
        );
    }

    #[test]
    fn linuxkit_kernels_are_unpacked() {
        let mut archive = tar::Builder::new(Vec::new());
        let mut add = |path: &str, content: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive.append_data(&mut header, path, content).unwrap();
        };
        add(
            "lib/modules/5.15.27-linuxkit/modules.dep",
            b"kernel/a.ko:\n",
        );
        add("lib/modules/5.15.27-linuxkit/kernel/a.ko", &[7u8; 70_000]);
        let archive = archive.into_inner().unwrap();
        let mut rootfs = tree();
        rootfs
            .write_file(b"/kernel", Metadata::default(), b"bzImage")
            .unwrap();
        rootfs
            .write_file(b"/kernel.tar", Metadata::default(), &archive)
            .unwrap();
        assert!(is_linuxkit(&mut rootfs));
        let mut unpacked = unpack_linuxkit(&mut rootfs, "oci:lk").unwrap();
        let mut source = TreeSource::new(&mut unpacked, "oci:lk");
        let found = find_kernel_layout(&mut source, None).unwrap();
        assert_eq!(found.version, "5.15.27-linuxkit");
        assert_eq!(source.read(&found.image, 100).unwrap().unwrap(), b"bzImage");
        assert_eq!(
            source
                .read("/lib/modules/5.15.27-linuxkit/kernel/a.ko", 1 << 20)
                .unwrap()
                .unwrap(),
            vec![7u8; 70_000]
        );
        let mut broken = tree();
        broken
            .write_file(b"/kernel", Metadata::default(), b"k")
            .unwrap();
        broken
            .write_file(b"/kernel.tar", Metadata::default(), &[1u8; 1024])
            .unwrap();
        assert!(unpack_linuxkit(&mut broken, "oci:lk").is_err());
    }
}
