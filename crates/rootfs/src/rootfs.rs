//! A rootfs being built or edited: the [`Tree`], the store that holds its file data, and the
//! operations every change shares (naming an inode in a directory, dropping a name, resolving
//! parent directories with chroot semantics).

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::path;
use crate::store::ContentStore;
use crate::tree::{DirEntry, Directory, InodeId, InodeKind, Metadata, Timestamp, Tree, ROOT};

/// Symlinks followed while resolving one path before giving up (Linux uses 40; the
/// semantics note allows 255).
const MAX_SYMLINK_HOPS: u32 = 255;

/// A rootfs: its tree and the store its file data lives in.
pub struct Rootfs<S> {
    pub(crate) tree: Tree,
    pub(crate) store: S,
    /// mtime of directories created implicitly (missing parents).
    implicit_mtime: Timestamp,
}

/// What the parent components of a path resolve to.
#[derive(Debug)]
pub enum Parent {
    /// A directory.
    Dir(InodeId),
    /// A component does not exist (only when not creating).
    Missing,
    /// A component, named here, is neither a directory nor a symlink to one.
    NotDir(String),
}

impl<S: ContentStore> Rootfs<S> {
    /// An empty rootfs (a root directory, 0755, owned by root) whose file data goes to
    /// `store`; directories created implicitly get `implicit_mtime`.
    pub fn new(store: S, implicit_mtime: Timestamp) -> Rootfs<S> {
        let root = Metadata {
            mode: 0o755,
            mtime: implicit_mtime,
            ..Metadata::default()
        };
        Rootfs::from_parts(Tree::new(root), store, implicit_mtime)
    }

    /// A rootfs to change further, from a tree and the store holding its data.
    pub fn from_parts(tree: Tree, store: S, implicit_mtime: Timestamp) -> Rootfs<S> {
        Rootfs {
            tree,
            store,
            implicit_mtime,
        }
    }

    /// The tree so far.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The tree, to change inodes in place (metadata, new inodes to link).
    pub fn tree_mut(&mut self) -> &mut Tree {
        &mut self.tree
    }

    /// The store holding the file data.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Hands out the tree and the store.
    pub fn into_parts(self) -> (Tree, S) {
        (self.tree, self.store)
    }

    /// Metadata of a directory created implicitly: 0755, root, the implicit mtime.
    pub fn implicit_metadata(&self) -> Metadata {
        Metadata {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: self.implicit_mtime,
            xattrs: Vec::new(),
        }
    }

    /// Gives `inode` the name `name` in `parent`, declared by `layer`, replacing whatever
    /// had that name.
    pub fn link(&mut self, parent: InodeId, name: &[u8], inode: InodeId, layer: u32) -> Result<()> {
        self.tree.inode_mut(inode).names += 1;
        let old = self
            .dir_mut(parent)
            .entries
            .insert(name.into(), DirEntry { inode, layer });
        if let Some(old) = old {
            self.drop_name(old.inode)?;
        }
        Ok(())
    }

    /// Counts a reference to `id` held outside any directory (a stash of hard-link targets),
    /// so that it lives until [`Rootfs::drop_name`] releases it.
    pub fn hold(&mut self, id: InodeId) {
        self.tree.inode_mut(id).names += 1;
    }

    /// Removes the name `name` from `parent`, if it is there.
    pub fn unlink(&mut self, parent: InodeId, name: &[u8]) -> Result<()> {
        if let Some(old) = self.dir_mut(parent).entries.remove(name) {
            self.drop_name(old.inode)?;
        }
        Ok(())
    }

    /// Removes one name of an inode; frees it (its subtree, its data) with its last name.
    pub fn drop_name(&mut self, id: InodeId) -> Result<()> {
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
                        self.store
                            .release(extent.store_offset, extent.len)
                            .map_err(Error::Store)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Resolves parent components to a directory with chroot semantics: symlinks are
    /// followed (absolute ones from the image root), ".." stops at the root, and nothing can
    /// leave the tree. With `create`, missing directories are made as implicit parents,
    /// declared by `layer`. Where the components really lead (after symlinks) must stay
    /// within [`path::MAX_PATH_LEN`] and [`path::MAX_DEPTH`].
    pub fn resolve_dir(&mut self, comps: &[&[u8]], layer: u32, create: bool) -> Result<Parent> {
        Ok(self.resolve_located(comps, layer, create)?.0)
    }

    /// [`Rootfs::resolve_dir`] for the parents of `name`, checking that `name` itself, where
    /// it lands, stays within [`path::MAX_PATH_LEN`] and [`path::MAX_DEPTH`].
    pub fn resolve_parent(
        &mut self,
        comps: &[&[u8]],
        name: &[u8],
        layer: u32,
        create: bool,
    ) -> Result<Parent> {
        let (parent, len, depth) = self.resolve_located(comps, layer, create)?;
        if let Parent::Dir(_) = parent {
            path::check_limits(child_len(len, name), depth + 1)?;
        }
        Ok(parent)
    }

    /// The parent, the length of its real path and its depth.
    fn resolve_located(
        &mut self,
        comps: &[&[u8]],
        layer: u32,
        create: bool,
    ) -> Result<(Parent, usize, usize)> {
        // The directories from the root to where resolution is, each with the length of its
        // real path.
        let mut stack: Vec<(InodeId, usize)> = vec![(ROOT, 0)];
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
                    let (cur, cur_len) = *stack.last().expect("stack holds the root");
                    let len = child_len(cur_len, name);
                    let found = self.dir(cur).entries.get(name).copied();
                    let Some(found) = found else {
                        if !create {
                            return Ok((Parent::Missing, 0, 0));
                        }
                        if name.len() > path::NAME_MAX {
                            return Err(Error::NameTooLong);
                        }
                        path::check_limits(len, stack.len())?;
                        let id = self.tree.alloc(
                            InodeKind::Directory(Directory::default()),
                            self.implicit_metadata(),
                        );
                        self.link(cur, name, id, layer)?;
                        stack.push((id, len));
                        continue;
                    };
                    match &self.tree.inode(found.inode).kind {
                        InodeKind::Directory(_) => {
                            path::check_limits(len, stack.len())?;
                            stack.push((found.inode, len));
                        }
                        InodeKind::Symlink(target) => {
                            hops += 1;
                            if hops > MAX_SYMLINK_HOPS {
                                return Err(Error::SymlinkLoop);
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
                        _ => {
                            return Ok((
                                Parent::NotDir(String::from_utf8_lossy(name).into_owned()),
                                0,
                                0,
                            ))
                        }
                    }
                }
            }
        }
        let (dir, len) = *stack.last().expect("stack holds the root");
        Ok((Parent::Dir(dir), len, stack.len() - 1))
    }

    /// Records that `layer` declared `name` in `dir`.
    pub fn mark(&mut self, dir: InodeId, name: &[u8], layer: u32) {
        if let Some(entry) = self.dir_mut(dir).entries.get_mut(name) {
            entry.layer = layer;
        }
    }

    /// The directory `id`; panics when it is not one (a caller's bug).
    pub fn dir(&self, id: InodeId) -> &Directory {
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

/// Length of the path of `name` in a directory whose path is `parent_len` bytes long (0 for
/// the root).
fn child_len(parent_len: usize, name: &[u8]) -> usize {
    if parent_len == 0 {
        name.len()
    } else {
        parent_len.saturating_add(1).saturating_add(name.len())
    }
}
