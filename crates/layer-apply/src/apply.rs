//! Applying tar entries to the tree, as a container runtime would: whiteouts and opaque
//! directories against lower layers only, chroot-style path resolution, hard links across
//! layers. The rules are those of `shared/notes/layer-semantics.md`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Read};
use std::num::NonZeroUsize;

use d2l_rootfs::{
    path, ContentStore, DataExtent, Device, Directory, FileData, InodeId, InodeKind, Metadata,
    Parent, Rootfs, Timestamp, Tree,
};

use crate::error::EntryError;
use crate::tar_reader::{Entry, EntryKind, TarReader, MAX_XATTR_BYTES};
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

/// Most inodes a tree may be given while layers are applied: every inode made counts, those
/// later deleted included (the tree's arena keeps their slots), implicit parent directories
/// too. Memory per inode: 88 bytes of slot, 24 bytes of directory entry in its parent's
/// B-tree (plus node overhead, at most as much again), its name on the heap (up to 255
/// bytes), 24 bytes per data extent of a file, its xattrs (at most
/// [`MAX_XATTR_BYTES`](crate::MAX_XATTR_BYTES)) and its symlink target (at most
/// [`MAX_PATH_LEN`](crate::MAX_PATH_LEN)); about 200 bytes for a typical file, so 10 million
/// is about 2 GB, for an image a hundred times the size of a full desktop distribution (a
/// Debian system with a desktop has about 100,000 files). File data never counts: it is in
/// the content store. Past it: [`EntryError::TooManyInodes`] naming the entry.
pub const MAX_INODES: usize = 10_000_000;

/// Choices that change how layers are applied.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Which xattrs to keep.
    pub xattrs: XattrPolicy,
    /// Treat overlayfs-style markers (char device 0:0, `trusted.overlay.opaque=y`) as
    /// whiteouts. The OCI spec does not; by default they are kept as devices, with a warning.
    pub overlay_whiteouts: bool,
    /// mtime of directories created implicitly (parents missing from a layer); from
    /// `$SOURCE_DATE_EPOCH` when the caller sets it, else the epoch.
    pub implicit_mtime: Timestamp,
    /// Most inodes the tree may be given, [`MAX_INODES`] by default (lower it to bound
    /// memory further).
    pub max_inodes: usize,
    /// Most threads decoding one gzip blob that lies in a file: one per core by default
    /// ([`default_decoder_threads`](crate::default_decoder_threads)); 1 decodes every layer
    /// on the decompression stage alone.
    pub decoder_threads: NonZeroUsize,
}

impl Default for ApplyOptions {
    fn default() -> ApplyOptions {
        ApplyOptions {
            xattrs: XattrPolicy::default(),
            overlay_whiteouts: false,
            implicit_mtime: Timestamp::default(),
            max_inodes: MAX_INODES,
            decoder_threads: crate::parallel_gzip::default_decoder_threads(),
        }
    }
}

impl ApplyOptions {
    /// Defaults, with implicit directories dated `seconds` (the caller's
    /// `$SOURCE_DATE_EPOCH`, reproducible-builds.org), or the epoch.
    pub fn dated(seconds: Option<i64>) -> ApplyOptions {
        ApplyOptions {
            implicit_mtime: Timestamp {
                seconds: seconds.unwrap_or(0),
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
    /// The entry's path as stored, lossily decoded: from its extension headers or its
    /// header's name field ("" only when the stream failed before any header of the entry).
    pub path: String,
    /// Offset of the entry's header in the decompressed stream.
    pub offset: u64,
    /// What is wrong.
    pub error: EntryError,
}

/// Longest path an error shows whole: twice the longest accepted, so that a path refused for
/// its length is shown, but not a PAX path of megabytes.
const SHOWN_PATH_MAX: usize = 2 * path::MAX_PATH_LEN;

/// A path for an error message: lossily decoded, cut after [`SHOWN_PATH_MAX`] bytes.
fn shown_path(p: &[u8]) -> String {
    if p.len() <= SHOWN_PATH_MAX {
        return String::from_utf8_lossy(p).into_owned();
    }
    let mut shown = String::from_utf8_lossy(&p[..SHOWN_PATH_MAX]).into_owned();
    shown.push_str(&format!("... ({} bytes)", p.len()));
    shown
}

/// Applies layers to a [`Rootfs`], keeping the state that lives across layers.
pub struct Applier<S> {
    rootfs: Rootfs<S>,
    options: ApplyOptions,
    /// AUFS hard-link stash: name under `.wh..wh.plnk/` -> inode (one name held by the stash).
    aufs_stash: HashMap<Vec<u8>, InodeId>,
    warned_overlay: bool,
}

impl<S: ContentStore> Applier<S> {
    /// An empty rootfs whose file data goes to `store`.
    pub fn new(store: S, options: ApplyOptions) -> Applier<S> {
        Applier::on(Rootfs::new(store, options.implicit_mtime), options)
    }

    /// Applies further layers on `rootfs` (names its edits made are marked above every
    /// layer: whiteouts do not hide them).
    pub fn on(rootfs: Rootfs<S>, options: ApplyOptions) -> Applier<S> {
        Applier {
            rootfs,
            options,
            aufs_stash: HashMap::new(),
            warned_overlay: false,
        }
    }

    /// The tree so far.
    pub fn tree(&self) -> &Tree {
        self.rootfs.tree()
    }

    /// Ends application and hands out the rootfs.
    pub fn finish(mut self) -> Result<Rootfs<S>, d2l_rootfs::Error> {
        for (_, id) in std::mem::take(&mut self.aufs_stash) {
            self.rootfs.drop_name(id)?;
        }
        Ok(self.rootfs)
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
                Err(failure) => {
                    return Err(EntryFailure {
                        path: shown_path(&failure.path),
                        offset: failure.offset,
                        error: failure.error,
                    })
                }
            };
            stats.entries += 1;
            let mut result = self.apply_entry(layer, &entry, &mut reader, &mut stats);
            if result.is_ok() && self.rootfs.tree().inode_index_bound() > self.options.max_inodes {
                result = Err(EntryError::TooManyInodes(self.options.max_inodes));
            }
            if let Err(error) = result {
                return Err(EntryFailure {
                    path: shown_path(&entry.path),
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
            return Err(d2l_rootfs::Error::EmptyName.into());
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
                    self.rootfs.hold(id);
                    if let Some(old) = self.aufs_stash.insert(name.to_vec(), id) {
                        self.rootfs.drop_name(old)?;
                    }
                }
                return Ok(());
            }
            _ => {}
        }

        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            stats.whiteouts += 1;
            if name == OPAQUE_MARKER {
                if let Parent::Dir(dir) = self.rootfs.resolve_dir(parents, layer, true)? {
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

        let parent = match self.rootfs.resolve_parent(parents, name, layer, true)? {
            Parent::Dir(dir) => dir,
            Parent::NotDir(what) => return Err(d2l_rootfs::Error::ParentNotDirectory(what).into()),
            Parent::Missing => unreachable!("resolve_dir creates missing parents"),
        };

        match entry.kind {
            EntryKind::HardLink => self.hard_link(parent, name, &entry.link_target, layer),
            EntryKind::Directory => {
                let meta = self.metadata(entry)?;
                let existing = self.rootfs.dir(parent).get(name);
                if let Some(existing) = existing {
                    if let InodeKind::Directory(_) = self.rootfs.tree().inode(existing).kind {
                        // Directory over directory: keep the children, take the metadata.
                        self.rootfs
                            .tree_mut()
                            .inode_mut(existing)
                            .set_metadata(meta);
                        self.rootfs.mark(parent, name, layer);
                        return self.overlay_opaque(entry, existing, layer);
                    }
                }
                let id = self
                    .rootfs
                    .tree_mut()
                    .alloc(InodeKind::Directory(Directory::default()), meta);
                self.rootfs.link(parent, name, id, layer)?;
                self.overlay_opaque(entry, id, layer)
            }
            _ => {
                let id = self.new_inode_from_entry(entry, reader, stats)?;
                Ok(self.rootfs.link(parent, name, id, layer)?)
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
                        .rootfs
                        .store_mut()
                        .store(run.offset, run.len, &mut reader.data())
                        .map_err(|e| match e.kind() {
                            io::ErrorKind::UnexpectedEof => EntryError::Truncated,
                            _ => EntryError::Tree(d2l_rootfs::Error::Store(e)),
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
            EntryKind::Symlink => {
                if entry.link_target.len() > path::MAX_PATH_LEN {
                    return Err(EntryError::LinkTargetTooLong(entry.link_target.len()));
                }
                InodeKind::Symlink(entry.link_target.clone().into_boxed_slice())
            }
            EntryKind::CharDevice => InodeKind::CharDevice(device),
            EntryKind::BlockDevice => InodeKind::BlockDevice(device),
            EntryKind::Fifo => InodeKind::Fifo,
            EntryKind::Directory | EntryKind::HardLink => {
                unreachable!("directories and hard links are handled by the caller")
            }
        };
        Ok(self.rootfs.tree_mut().alloc(kind, meta))
    }

    fn metadata(&self, entry: &Entry) -> Result<Metadata, EntryError> {
        let id = |v: u64| u32::try_from(v).map_err(|_| EntryError::IdTooLarge(v));
        let xattrs = xattr::filter(entry.xattrs.clone(), entry.kind, self.options.xattrs);
        let bytes = xattr::total_bytes(&xattrs);
        if bytes > MAX_XATTR_BYTES {
            return Err(EntryError::XattrsTooLarge(bytes));
        }
        Ok(Metadata {
            mode: u16::try_from(entry.mode & 0o7777).expect("12 bits fit in 16"),
            uid: id(entry.uid)?,
            gid: id(entry.gid)?,
            mtime: entry.mtime,
            xattrs,
        })
    }

    fn hard_link(
        &mut self,
        parent: InodeId,
        name: &[u8],
        target: &[u8],
        layer: u32,
    ) -> Result<(), EntryError> {
        let shown = || shown_path(target);
        // The target is relative to the image root even when written as absolute.
        let comps = path::clean(target)?;
        let Some((&target_name, target_parents)) = comps.split_last() else {
            return Err(EntryError::HardlinkToDirectory(shown()));
        };
        let inode = if target_parents == [AUFS_PLINK] {
            self.aufs_stash.get(target_name).copied()
        } else {
            match self.rootfs.resolve_dir(target_parents, layer, false)? {
                Parent::Dir(dir) => self.rootfs.dir(dir).get(target_name),
                Parent::Missing | Parent::NotDir(_) => None,
            }
        };
        let inode = inode.ok_or_else(|| EntryError::HardlinkTargetMissing(shown()))?;
        if self.rootfs.tree().inode(inode).as_directory().is_some() {
            return Err(EntryError::HardlinkToDirectory(shown()));
        }
        Ok(self.rootfs.link(parent, name, inode, layer)?)
    }

    /// `.wh.NAME` in `parents`: hides what lower layers declared under that name.
    fn whiteout(&mut self, parents: &[&[u8]], name: &[u8], layer: u32) -> Result<(), EntryError> {
        match self.rootfs.resolve_dir(parents, layer, true)? {
            Parent::Dir(dir) => self.hide_entry(dir, name, layer),
            // A whiteout under a non-directory has nothing to hide.
            Parent::NotDir(_) | Parent::Missing => Ok(()),
        }
    }

    /// Removes everything in `dir` that layers below `layer` declared.
    fn hide_lower(&mut self, dir: InodeId, layer: u32) -> Result<(), EntryError> {
        let names = self.child_names(dir);
        self.hide(names, layer)
    }

    /// Hides the lower-layer content of one name.
    fn hide_entry(&mut self, dir: InodeId, name: &[u8], layer: u32) -> Result<(), EntryError> {
        self.hide(vec![(dir, name.into())], layer)
    }

    /// Hides the lower-layer content of each `(directory, name)`, in order. What this layer
    /// declared survives whatever the order of entries in the layer: a directory of a lower
    /// layer that this layer used as a parent stays, as an implicit parent, holding only this
    /// layer's entries. Iterative, depth first in name order, so that a tree of any depth
    /// costs heap, not stack.
    fn hide(&mut self, names: Vec<(InodeId, Box<[u8]>)>, layer: u32) -> Result<(), EntryError> {
        // (directory, name, children already hidden); popped from the end.
        let mut pending: Vec<(InodeId, Box<[u8]>, bool)> = names
            .into_iter()
            .rev()
            .map(|(d, n)| (d, n, false))
            .collect();
        while let Some((dir, name, children_done)) = pending.pop() {
            let Some(entry) = self.rootfs.dir(dir).entry(&name) else {
                continue;
            };
            if self
                .rootfs
                .tree()
                .inode(entry.inode)
                .as_directory()
                .is_none()
            {
                if entry.layer < layer {
                    self.rootfs.unlink(dir, &name)?;
                }
                continue;
            }
            if !children_done {
                let children = self.child_names(entry.inode);
                pending.push((dir, name, true));
                pending.extend(children.into_iter().rev().map(|(d, n)| (d, n, false)));
                continue;
            }
            if entry.layer < layer {
                if self.rootfs.dir(entry.inode).is_empty() {
                    self.rootfs.unlink(dir, &name)?;
                } else {
                    let meta = self.rootfs.implicit_metadata();
                    self.rootfs
                        .tree_mut()
                        .inode_mut(entry.inode)
                        .set_metadata(meta);
                    self.rootfs.mark(dir, &name, layer);
                }
            }
        }
        Ok(())
    }

    /// The names in directory `dir`, in order, each with `dir`.
    fn child_names(&self, dir: InodeId) -> Vec<(InodeId, Box<[u8]>)> {
        self.rootfs
            .dir(dir)
            .entries()
            .map(|(name, _)| (dir, name.into()))
            .collect()
    }
}
