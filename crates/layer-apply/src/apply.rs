//! Applying tar entries to the tree, as a container runtime would: whiteouts and opaque
//! directories against lower layers only, chroot-style path resolution, hard links across
//! layers. The rules are those of `shared/notes/layer-semantics.md`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Read};

use crate::error::EntryError;
use crate::path;
use crate::store::ContentStore;
use crate::tar_reader::{Entry, EntryKind, TarReader};
use crate::tree::{
    DataExtent, Device, DirEntry, Directory, FileData, InodeId, InodeKind, Metadata, Timestamp,
    Tree, ROOT,
};
use crate::xattr::{self, XattrPolicy};

/// Prefix of a whiteout file name.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Marks its directory opaque: lower layers' children are hidden.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// AUFS hard-link stash at the layer root; hard links into it take the stashed content.
const AUFS_PLINK: &[u8] = b".wh..wh.plnk";
/// AUFS metadata at the layer root, skipped.
const AUFS_META: &[u8] = b".wh..wh.aufs";
/// AUFS orphan directory at the layer root, skipped.
const AUFS_ORPHANS: &[u8] = b".wh..wh.orph";
/// Symlinks followed while resolving one path before giving up (Linux uses 40; the
/// semantics note allows 255).
const MAX_SYMLINK_HOPS: u32 = 255;

/// Choices that change how layers are applied.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Which xattrs to keep.
    pub xattrs: XattrPolicy,
    /// Treat overlayfs-style markers (char device 0:0, `trusted.overlay.opaque=y`) as
    /// whiteouts. The OCI spec does not; by default they are kept as devices, with a warning.
    pub overlay_whiteouts: bool,
    /// mtime of directories created implicitly (parents missing from a layer); from
    /// `$SOURCE_DATE_EPOCH` when the caller sets it, else the epoch.
    pub implicit_mtime: Timestamp,
}

/// `$SOURCE_DATE_EPOCH` (reproducible-builds.org), when it is set and valid.
pub fn source_date_epoch() -> Option<i64> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
}

impl ApplyOptions {
    /// Defaults, with `implicit_mtime` from `$SOURCE_DATE_EPOCH` when it is set and valid.
    pub fn from_env() -> ApplyOptions {
        let seconds = source_date_epoch().unwrap_or(0);
        ApplyOptions {
            implicit_mtime: Timestamp {
                seconds,
                nanoseconds: 0,
            },
            ..ApplyOptions::default()
        }
    }
}

/// Counts of what one layer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Tar entries read (extension headers not counted).
    pub entries: u64,
    /// Whiteouts and opaque markers applied.
    pub whiteouts: u64,
    /// File data bytes written to the content store.
    pub stored_bytes: u64,
}

/// A bad entry: where it is and what is wrong.
#[derive(Debug)]
pub struct EntryFailure {
    /// The entry's path as stored, lossily decoded ("" if the header was unreadable).
    pub path: String,
    /// Offset of the entry's header in the decompressed stream.
    pub offset: u64,
    /// What is wrong.
    pub error: EntryError,
}

/// A rootfs being built: the tree, the store that holds its file data, and the state that
/// lives across layers.
pub struct Rootfs<S> {
    pub(crate) tree: Tree,
    pub(crate) store: S,
    options: ApplyOptions,
    /// AUFS hard-link stash: name under `.wh..wh.plnk/` -> inode (one name held by the stash).
    aufs_stash: HashMap<Vec<u8>, InodeId>,
    warned_overlay: bool,
}

pub(crate) enum Parent {
    Dir(InodeId),
    Missing,
    NotDir(String),
}

impl<S: ContentStore> Rootfs<S> {
    /// An empty rootfs whose file data goes to `store`.
    pub fn new(store: S, options: ApplyOptions) -> Rootfs<S> {
        let root = Metadata {
            mode: 0o755,
            mtime: options.implicit_mtime,
            ..Metadata::default()
        };
        Rootfs {
            tree: Tree::new(root),
            store,
            options,
            aufs_stash: HashMap::new(),
            warned_overlay: false,
        }
    }

    /// The tree so far.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// A rootfs to change further, from the parts [`Rootfs::finish`] or
    /// [`apply_image`](crate::apply_image) handed out.
    pub fn from_parts(tree: Tree, store: S, options: ApplyOptions) -> Rootfs<S> {
        Rootfs {
            tree,
            store,
            options,
            aufs_stash: HashMap::new(),
            warned_overlay: false,
        }
    }

    /// Ends application and hands out the tree and the store.
    pub fn finish(mut self) -> io::Result<(Tree, S)> {
        for (_, id) in std::mem::take(&mut self.aufs_stash) {
            self.drop_name(id)?;
        }
        Ok((self.tree, self.store))
    }

    /// Applies one layer's (decompressed) tar stream. `layer` orders layers: each must be
    /// greater than the previous one's. Returns the reader positioned after the
    /// end-of-archive marker (the caller drains it for the diff_id).
    pub fn apply_layer<R: Read>(
        &mut self,
        layer: u32,
        input: R,
    ) -> Result<(R, LayerStats), EntryFailure> {
        let mut reader = TarReader::new(input);
        let mut stats = LayerStats::default();
        loop {
            let entry = match reader.next_entry() {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err((offset, error)) => {
                    return Err(EntryFailure {
                        path: String::new(),
                        offset,
                        error,
                    })
                }
            };
            stats.entries += 1;
            if let Err(error) = self.apply_entry(layer, &entry, &mut reader, &mut stats) {
                return Err(EntryFailure {
                    path: String::from_utf8_lossy(&entry.path).into_owned(),
                    offset: entry.offset,
                    error,
                });
            }
        }
        Ok((reader.into_inner(), stats))
    }

    fn apply_entry<R: Read>(
        &mut self,
        layer: u32,
        entry: &Entry,
        reader: &mut TarReader<R>,
        stats: &mut LayerStats,
    ) -> Result<(), EntryError> {
        if entry.path.is_empty() {
            return Err(EntryError::EmptyName);
        }
        let comps = path::clean(&entry.path)?;
        let Some((&name, parents)) = comps.split_last() else {
            // The root entry ("./"): its metadata is ignored (chosen), any other type is an
            // error.
            return match entry.kind {
                EntryKind::Directory => Ok(()),
                _ => Err(EntryError::RootNotDirectory),
            };
        };

        // AUFS metadata at the layer root.
        match parents.first().copied().unwrap_or(name) {
            AUFS_META | AUFS_ORPHANS => return Ok(()),
            AUFS_PLINK => {
                if parents.len() == 1 && entry.kind == EntryKind::File {
                    let id = self.new_inode_from_entry(entry, reader, stats)?;
                    self.tree.inode_mut(id).names += 1;
                    if let Some(old) = self.aufs_stash.insert(name.to_vec(), id) {
                        self.drop_name(old).map_err(store_error)?;
                    }
                }
                return Ok(());
            }
            _ => {}
        }

        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            stats.whiteouts += 1;
            if name == OPAQUE_MARKER {
                if let Parent::Dir(dir) = self.resolve_dir(parents, layer, true)? {
                    self.hide_lower(dir, layer)?;
                }
                return Ok(());
            }
            if matches!(target, b"" | b"." | b"..") {
                return Err(EntryError::BadWhiteout);
            }
            return self.whiteout(parents, target, layer);
        }

        let is_overlay_whiteout = entry.kind == EntryKind::CharDevice && entry.device == (0, 0);
        if is_overlay_whiteout {
            if self.options.overlay_whiteouts {
                stats.whiteouts += 1;
                return self.whiteout(parents, name, layer);
            }
            if !self.warned_overlay {
                self.warned_overlay = true;
                tracing::warn!(
                    "{:?} is a character device 0:0, an overlayfs whiteout marker; OCI layers \
                     do not use those, so it is kept as a device (--overlay-whiteouts treats \
                     such markers as whiteouts)",
                    String::from_utf8_lossy(&entry.path)
                );
            }
        }

        let parent = match self.resolve_dir(parents, layer, true)? {
            Parent::Dir(dir) => dir,
            Parent::NotDir(what) => return Err(EntryError::ParentNotDirectory(what)),
            Parent::Missing => unreachable!("resolve_dir creates missing parents"),
        };

        match entry.kind {
            EntryKind::HardLink => self.hard_link(parent, name, &entry.link_target, layer),
            EntryKind::Directory => {
                let meta = self.metadata(entry)?;
                let existing = self.dir(parent).entries.get(name).copied();
                if let Some(existing) = existing {
                    if let InodeKind::Directory(_) = self.tree.inode(existing.inode).kind {
                        // Directory over directory: keep the children, take the metadata.
                        self.tree.inode_mut(existing.inode).set_metadata(meta);
                        self.mark(parent, name, layer);
                        return self.overlay_opaque(entry, existing.inode, layer);
                    }
                }
                let id = self
                    .tree
                    .alloc(InodeKind::Directory(Directory::default()), meta);
                self.link(parent, name, id, layer)?;
                self.overlay_opaque(entry, id, layer)
            }
            _ => {
                let id = self.new_inode_from_entry(entry, reader, stats)?;
                self.link(parent, name, id, layer)
            }
        }
    }

    /// With `--overlay-whiteouts`, a directory carrying `trusted.overlay.opaque=y` is opaque.
    fn overlay_opaque(
        &mut self,
        entry: &Entry,
        dir: InodeId,
        layer: u32,
    ) -> Result<(), EntryError> {
        let opaque = self.options.overlay_whiteouts
            && entry
                .xattrs
                .iter()
                .any(|x| x.name == b"trusted.overlay.opaque" && x.value == b"y");
        if opaque {
            self.hide_lower(dir, layer)?;
        }
        Ok(())
    }

    /// Makes an inode for a non-directory, non-hardlink entry, storing a file's data.
    fn new_inode_from_entry<R: Read>(
        &mut self,
        entry: &Entry,
        reader: &mut TarReader<R>,
        stats: &mut LayerStats,
    ) -> Result<InodeId, EntryError> {
        let meta = self.metadata(entry)?;
        let device = Device {
            major: entry.device.0,
            minor: entry.device.1,
        };
        let kind = match entry.kind {
            EntryKind::File => {
                let runs: Cow<'_, [crate::tar_reader::SparseRun]> = match &entry.sparse {
                    Some(runs) => Cow::Borrowed(runs),
                    None => Cow::Owned(vec![crate::tar_reader::SparseRun {
                        offset: 0,
                        len: entry.size,
                    }]),
                };
                let mut extents = Vec::with_capacity(runs.len());
                for run in runs.iter().filter(|r| r.len > 0) {
                    let store_offset = self
                        .store
                        .store(run.offset, run.len, &mut reader.data())
                        .map_err(|e| match e.kind() {
                            io::ErrorKind::UnexpectedEof => EntryError::Truncated,
                            _ => EntryError::Io(format!("storing file data: {e}")),
                        })?;
                    stats.stored_bytes += run.len;
                    extents.push(DataExtent {
                        file_offset: run.offset,
                        len: run.len,
                        store_offset,
                    });
                }
                InodeKind::File(FileData {
                    size: entry.size,
                    extents,
                })
            }
            EntryKind::Symlink => InodeKind::Symlink(entry.link_target.clone().into_boxed_slice()),
            EntryKind::CharDevice => InodeKind::CharDevice(device),
            EntryKind::BlockDevice => InodeKind::BlockDevice(device),
            EntryKind::Fifo => InodeKind::Fifo,
            EntryKind::Directory | EntryKind::HardLink => {
                unreachable!("directories and hard links are handled by the caller")
            }
        };
        Ok(self.tree.alloc(kind, meta))
    }

    fn metadata(&self, entry: &Entry) -> Result<Metadata, EntryError> {
        let id = |v: u64| u32::try_from(v).map_err(|_| EntryError::IdTooLarge(v));
        Ok(Metadata {
            mode: (entry.mode & 0o7777) as u16,
            uid: id(entry.uid)?,
            gid: id(entry.gid)?,
            mtime: entry.mtime,
            xattrs: xattr::filter(entry.xattrs.clone(), entry.kind, self.options.xattrs),
        })
    }

    pub(crate) fn implicit_metadata(&self) -> Metadata {
        Metadata {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: self.options.implicit_mtime,
            xattrs: Vec::new(),
        }
    }

    fn hard_link(
        &mut self,
        parent: InodeId,
        name: &[u8],
        target: &[u8],
        layer: u32,
    ) -> Result<(), EntryError> {
        let shown = || String::from_utf8_lossy(target).into_owned();
        // The target is relative to the image root even when written as absolute.
        let comps = path::clean(target)?;
        let Some((&target_name, target_parents)) = comps.split_last() else {
            return Err(EntryError::HardlinkToDirectory(shown()));
        };
        let inode = if target_parents == [AUFS_PLINK] {
            self.aufs_stash.get(target_name).copied()
        } else {
            match self.resolve_dir(target_parents, layer, false)? {
                Parent::Dir(dir) => self.dir(dir).get(target_name),
                Parent::Missing | Parent::NotDir(_) => None,
            }
        };
        let inode = inode.ok_or_else(|| EntryError::HardlinkTargetMissing(shown()))?;
        if self.tree.inode(inode).as_directory().is_some() {
            return Err(EntryError::HardlinkToDirectory(shown()));
        }
        self.link(parent, name, inode, layer)
    }

    /// Gives `inode` the name `name` in `parent`, replacing whatever had that name.
    pub(crate) fn link(
        &mut self,
        parent: InodeId,
        name: &[u8],
        inode: InodeId,
        layer: u32,
    ) -> Result<(), EntryError> {
        self.tree.inode_mut(inode).names += 1;
        let old = self
            .dir_mut(parent)
            .entries
            .insert(name.into(), DirEntry { inode, layer });
        if let Some(old) = old {
            self.drop_name(old.inode).map_err(store_error)?;
        }
        Ok(())
    }

    pub(crate) fn unlink(&mut self, parent: InodeId, name: &[u8]) -> Result<(), EntryError> {
        if let Some(old) = self.dir_mut(parent).entries.remove(name) {
            self.drop_name(old.inode).map_err(store_error)?;
        }
        Ok(())
    }

    /// Removes one name of an inode; frees it (its subtree, its data) with its last name.
    pub(crate) fn drop_name(&mut self, id: InodeId) -> io::Result<()> {
        let mut pending = vec![id];
        while let Some(id) = pending.pop() {
            let inode = self.tree.inode_mut(id);
            inode.names -= 1;
            if inode.names > 0 {
                continue;
            }
            match self.tree.free(id).kind {
                InodeKind::Directory(dir) => pending.extend(dir.entries.values().map(|e| e.inode)),
                InodeKind::File(data) => {
                    for extent in data.extents {
                        self.store.release(extent.store_offset, extent.len)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `.wh.NAME` in `parents`: hides what lower layers declared under that name.
    fn whiteout(&mut self, parents: &[&[u8]], name: &[u8], layer: u32) -> Result<(), EntryError> {
        match self.resolve_dir(parents, layer, true)? {
            Parent::Dir(dir) => self.hide_entry(dir, name, layer),
            // A whiteout under a non-directory has nothing to hide.
            Parent::NotDir(_) | Parent::Missing => Ok(()),
        }
    }

    /// Removes everything in `dir` that layers below `layer` declared.
    fn hide_lower(&mut self, dir: InodeId, layer: u32) -> Result<(), EntryError> {
        let names: Vec<Box<[u8]>> = self.dir(dir).entries.keys().cloned().collect();
        for name in names {
            self.hide_entry(dir, &name, layer)?;
        }
        Ok(())
    }

    /// Hides the lower-layer content of one name. What this layer declared survives whatever
    /// the order of entries in the layer: a directory of a lower layer that this layer used as
    /// a parent stays, as an implicit parent, holding only this layer's entries.
    fn hide_entry(&mut self, dir: InodeId, name: &[u8], layer: u32) -> Result<(), EntryError> {
        let Some(entry) = self.dir(dir).entries.get(name).copied() else {
            return Ok(());
        };
        if self.tree.inode(entry.inode).as_directory().is_some() {
            self.hide_lower(entry.inode, layer)?;
            if entry.layer < layer {
                if self.dir(entry.inode).is_empty() {
                    self.unlink(dir, name)?;
                } else {
                    let meta = self.implicit_metadata();
                    self.tree.inode_mut(entry.inode).set_metadata(meta);
                    self.mark(dir, name, layer);
                }
            }
        } else if entry.layer < layer {
            self.unlink(dir, name)?;
        }
        Ok(())
    }

    /// Resolves parent components to a directory with chroot semantics: symlinks are
    /// followed (absolute ones from the image root), ".." stops at the root, and nothing can
    /// leave the tree. With `create`, missing directories are made as implicit parents.
    pub(crate) fn resolve_dir(
        &mut self,
        comps: &[&[u8]],
        layer: u32,
        create: bool,
    ) -> Result<Parent, EntryError> {
        let mut stack: Vec<InodeId> = vec![ROOT];
        let mut pending: Vec<Cow<'_, [u8]>> =
            comps.iter().rev().map(|c| Cow::Borrowed(*c)).collect();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            match &*comp {
                b"" | b"." => {}
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                }
                name => {
                    let cur = *stack.last().expect("stack holds the root");
                    let found = self.dir(cur).entries.get(name).copied();
                    let Some(found) = found else {
                        if !create {
                            return Ok(Parent::Missing);
                        }
                        if name.len() > path::NAME_MAX {
                            return Err(EntryError::NameTooLong);
                        }
                        let id = self.tree.alloc(
                            InodeKind::Directory(Directory::default()),
                            self.implicit_metadata(),
                        );
                        self.link(cur, name, id, layer)?;
                        stack.push(id);
                        continue;
                    };
                    match &self.tree.inode(found.inode).kind {
                        InodeKind::Directory(_) => stack.push(found.inode),
                        InodeKind::Symlink(target) => {
                            hops += 1;
                            if hops > MAX_SYMLINK_HOPS {
                                return Err(EntryError::SymlinkLoop);
                            }
                            if target.starts_with(b"/") {
                                stack.truncate(1);
                            }
                            let target = target.clone();
                            pending.extend(
                                target
                                    .split(|&b| b == b'/')
                                    .rev()
                                    .map(|c| Cow::Owned(c.to_vec())),
                            );
                        }
                        _ => return Ok(Parent::NotDir(String::from_utf8_lossy(name).into_owned())),
                    }
                }
            }
        }
        Ok(Parent::Dir(*stack.last().expect("stack holds the root")))
    }

    /// Records that `layer` declared `name` in `dir`.
    fn mark(&mut self, dir: InodeId, name: &[u8], layer: u32) {
        if let Some(entry) = self.dir_mut(dir).entries.get_mut(name) {
            entry.layer = layer;
        }
    }

    pub(crate) fn dir(&self, id: InodeId) -> &Directory {
        self.tree
            .inode(id)
            .as_directory()
            .expect("inode is a directory")
    }

    fn dir_mut(&mut self, id: InodeId) -> &mut Directory {
        match &mut self.tree.inode_mut(id).kind {
            InodeKind::Directory(d) => d,
            _ => panic!("inode is a directory"),
        }
    }
}

fn store_error(e: io::Error) -> EntryError {
    EntryError::Io(format!("releasing file data: {e}"))
}
