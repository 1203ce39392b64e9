//! The image tree as the jobs of this crate see it: read, write, link and list paths, every
//! error naming the path, every file written with the image's newest mtime (reproducible).

use d2l_rootfs::{ContentStore, InodeId, InodeKind, Metadata, Rootfs, Timestamp};

use crate::error::{Error, Result};

/// Largest configuration file read (account databases, key files: a few KiB).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// A rootfs being edited, with the time its new files get.
pub(crate) struct Files<'a, S: ContentStore> {
    rootfs: &'a mut Rootfs<S>,
    mtime: Timestamp,
}

impl<'a, S: ContentStore> Files<'a, S> {
    /// Edits `rootfs`; new files get its newest mtime.
    pub(crate) fn new(rootfs: &'a mut Rootfs<S>) -> Self {
        let mtime = rootfs
            .tree()
            .inodes()
            .map(|(_, inode)| inode.mtime)
            .max()
            .unwrap_or_default();
        Files { rootfs, mtime }
    }

    /// The time files written get.
    pub(crate) fn mtime(&self) -> Timestamp {
        self.mtime
    }

    /// Metadata owned by `uid:gid` with `mode`, at [`Files::mtime`].
    pub(crate) fn meta(&self, mode: u16, uid: u32, gid: u32) -> Metadata {
        Metadata {
            mode,
            uid,
            gid,
            mtime: self.mtime,
            xattrs: Vec::new(),
        }
    }

    /// Root-owned metadata with `mode`.
    pub(crate) fn root(&self, mode: u16) -> Metadata {
        self.meta(mode, 0, 0)
    }

    /// Whether `path` names something (symlinks followed, so `/sbin/x` finds `/usr/sbin/x`).
    pub(crate) fn exists(&mut self, path: &str) -> bool {
        self.rootfs.resolve(path.as_bytes()).is_some()
    }

    /// The first of `paths` that exists.
    pub(crate) fn first<'p>(&mut self, paths: &[&'p str]) -> Option<&'p str> {
        paths.iter().copied().find(|p| self.exists(p))
    }

    /// The regular file at `path`, if there is one.
    pub(crate) fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>> {
        self.rootfs
            .read_file(path.as_bytes(), MAX_CONFIG_BYTES)
            .map_err(edit(path))
    }

    /// The regular file at `path` as UTF-8 text, if there is one.
    pub(crate) fn read_text(&mut self, path: &str) -> Result<Option<String>> {
        match self.read(path)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|e| Error::Edit {
                path: path.to_owned(),
                reason: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
            }),
        }
    }

    /// The metadata of the regular file at `path` (to keep it when the file is rewritten).
    pub(crate) fn file_meta(&mut self, path: &str) -> Option<Metadata> {
        let id = self.rootfs.resolve(path.as_bytes())?;
        let inode = self.rootfs.tree().inode(id);
        matches!(inode.kind, InodeKind::File(_)).then(|| Metadata {
            mode: inode.mode,
            uid: inode.uid,
            gid: inode.gid,
            mtime: self.mtime,
            xattrs: inode.xattrs.clone(),
        })
    }

    /// Creates or replaces the file `path`.
    pub(crate) fn write(&mut self, path: &str, meta: Metadata, content: &[u8]) -> Result<()> {
        self.rootfs
            .write_file(path.as_bytes(), meta, content)
            .map(drop)
            .map_err(edit(path))
    }

    /// Creates or replaces the symlink `path` -> `target`.
    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let meta = self.root(0o777);
        self.rootfs
            .write_symlink(path.as_bytes(), target.as_bytes(), meta)
            .map(drop)
            .map_err(edit(path))
    }

    /// Creates the directory `path` (and missing parents, 0755 root); an existing one keeps
    /// its metadata unless `force` is set.
    pub(crate) fn mkdir(&mut self, path: &str, meta: Metadata, force: bool) -> Result<()> {
        let id = self
            .rootfs
            .create_dir_all(path.as_bytes(), meta.clone())
            .map_err(edit(path))?;
        if force {
            self.rootfs.tree_mut().inode_mut(id).set_metadata(meta);
        }
        Ok(())
    }

    /// Removes `path`; whether it was there.
    pub(crate) fn remove(&mut self, path: &str) -> Result<bool> {
        self.rootfs.remove(path.as_bytes()).map_err(edit(path))
    }

    /// The names in the directory `path` (empty when it is not one), in byte order.
    pub(crate) fn list(&mut self, path: &str) -> Vec<String> {
        let Some(id) = self.rootfs.resolve(path.as_bytes()) else {
            return Vec::new();
        };
        self.rootfs
            .tree()
            .inode(id)
            .as_directory()
            .map(|d| {
                d.entries()
                    .map(|(name, _)| String::from_utf8_lossy(name).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What `path` is, without following a symlink in its last component.
    pub(crate) fn kind(&mut self, path: &str) -> Option<Kind> {
        let (dir, name) = path.rsplit_once('/')?;
        let parent = self
            .rootfs
            .resolve(if dir.is_empty() { "/" } else { dir }.as_bytes())?;
        let id: InodeId = self
            .rootfs
            .tree()
            .inode(parent)
            .as_directory()?
            .get(name.as_bytes())?;
        let inode = self.rootfs.tree().inode(id);
        Some(match &inode.kind {
            InodeKind::Directory(_) => Kind::Dir(inode.mode),
            InodeKind::File(_) => Kind::File(inode.mode),
            InodeKind::Symlink(target) => Kind::Symlink(String::from_utf8_lossy(target).into()),
            _ => Kind::Other,
        })
    }
}

/// What a path is, for copying a directory tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory and its mode.
    Dir(u16),
    /// A regular file and its mode.
    File(u16),
    /// A symlink and its target.
    Symlink(String),
    /// A device, a fifo: not copied.
    Other,
}

/// Maps an error to [`Error::Edit`] naming `path`.
pub(crate) fn edit<E: std::fmt::Display>(path: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Edit {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}
