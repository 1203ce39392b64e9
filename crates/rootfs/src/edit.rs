//! Changing a rootfs after its layers are applied: what turns a container's filesystem into a
//! machine's (an fstab, a hostname, boot loader files). Paths resolve as in layers: from the
//! image root, symlinks in parent directories followed, nothing outside the tree reachable.

use crate::error::{Error, Result};
use crate::path;
use crate::rootfs::{Parent, Rootfs};
use crate::store::ContentStore;
use crate::tree::{DataExtent, Directory, FileData, InodeId, InodeKind, Metadata};

/// Layer mark of edits: above every real layer.
const EDIT_LAYER: u32 = u32::MAX;
/// Symlinks followed for the last component of a path read back.
const MAX_FOLLOW: u32 = 40;

impl<S: ContentStore> Rootfs<S> {
    /// Creates or replaces the regular file at `path` (parents made as needed, 0755 root).
    pub fn write_file(&mut self, path: &[u8], meta: Metadata, content: &[u8]) -> Result<InodeId> {
        let (parent, name) = self.parent_of(path, true)?;
        let mut extents = Vec::new();
        if !content.is_empty() {
            let store_offset = self
                .store
                .store(0, content.len() as u64, &mut &content[..])
                .map_err(Error::Store)?;
            extents.push(DataExtent {
                file_offset: 0,
                len: content.len() as u64,
                store_offset,
            });
        }
        let kind = InodeKind::File(FileData {
            size: content.len() as u64,
            extents,
        });
        let id = self.tree.alloc(kind, meta);
        self.link(parent, &name, id, EDIT_LAYER)?;
        Ok(id)
    }

    /// Creates or replaces the symbolic link at `path`, pointing at `target` (parents made as
    /// needed), as `ln -sf` would: how a machine's services are enabled.
    pub fn write_symlink(&mut self, path: &[u8], target: &[u8], meta: Metadata) -> Result<InodeId> {
        let (parent, name) = self.parent_of(path, true)?;
        let id = self.tree.alloc(InodeKind::Symlink(target.into()), meta);
        self.link(parent, &name, id, EDIT_LAYER)?;
        Ok(id)
    }

    /// Creates the directory `path` and its missing parents; an existing directory is kept.
    pub fn create_dir_all(&mut self, path: &[u8], meta: Metadata) -> Result<InodeId> {
        let (parent, name) = self.parent_of(path, true)?;
        if let Some(existing) = self.dir(parent).get(&name) {
            if self.tree.inode(existing).as_directory().is_some() {
                return Ok(existing);
            }
        }
        let id = self
            .tree
            .alloc(InodeKind::Directory(Directory::default()), meta);
        self.link(parent, &name, id, EDIT_LAYER)?;
        Ok(id)
    }

    /// Removes `path` (a whole subtree for a directory). Returns whether it existed.
    pub fn remove(&mut self, path: &[u8]) -> Result<bool> {
        let Ok((parent, name)) = self.parent_of(path, false) else {
            return Ok(false);
        };
        let existed = self.dir(parent).get(&name).is_some();
        self.unlink(parent, &name)?;
        Ok(existed)
    }

    /// The inode `path` names, following symlinks (also in the last component).
    pub fn resolve(&mut self, path: &[u8]) -> Option<InodeId> {
        let mut path = path.to_vec();
        for _ in 0..MAX_FOLLOW {
            let (parent, name) = self.parent_of(&path, false).ok()?;
            let id = self.dir(parent).get(&name)?;
            match &self.tree.inode(id).kind {
                InodeKind::Symlink(target) => {
                    let target = target.to_vec();
                    path = if target.starts_with(b"/") {
                        target
                    } else {
                        let mut dir = path[..path.len() - name.len()].to_vec();
                        dir.extend_from_slice(&target);
                        dir
                    };
                }
                _ => return Some(id),
            }
        }
        None
    }

    /// The directory that holds `path`'s last component, and that component.
    fn parent_of(&mut self, path: &[u8], create: bool) -> Result<(InodeId, Vec<u8>)> {
        let comps = path::clean(path)?;
        let (&name, parents) = comps.split_last().ok_or(Error::EmptyName)?;
        let name = name.to_vec();
        let parents: Vec<Vec<u8>> = parents.iter().map(|c| c.to_vec()).collect();
        let parents: Vec<&[u8]> = parents.iter().map(|c| &c[..]).collect();
        match self.resolve_parent(&parents, &name, EDIT_LAYER, create)? {
            Parent::Dir(dir) => Ok((dir, name)),
            Parent::Missing => Err(Error::ParentNotDirectory(
                String::from_utf8_lossy(path).into_owned(),
            )),
            Parent::NotDir(what) => Err(Error::ParentNotDirectory(what)),
        }
    }
}

impl<S: ContentStore> Rootfs<S> {
    /// The contents of the regular file at `path` (symlinks followed), if there is one; at
    /// most `limit` bytes (configuration files, not images).
    pub fn read_file(&mut self, path: &[u8], limit: u64) -> std::io::Result<Option<Vec<u8>>> {
        let Some(id) = self.resolve(path) else {
            return Ok(None);
        };
        let Some(file) = self.tree.inode(id).as_file().cloned() else {
            return Ok(None);
        };
        if file.size > limit {
            return Err(std::io::Error::other(format!(
                "{} is {} bytes, more than {limit}",
                String::from_utf8_lossy(path),
                file.size
            )));
        }
        // Below `limit`, which the caller chose to fit in memory; extents lie inside the file.
        let index = |v: u64| usize::try_from(v).map_err(std::io::Error::other);
        let mut out = vec![0u8; index(file.size)?];
        for extent in &file.extents {
            let at = index(extent.file_offset)?;
            let end = at + index(extent.len)?;
            self.store.read_at(&mut out[at..end], extent.store_offset)?;
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use crate::{InodeKind, Metadata, Rootfs, SpillFile, Timestamp};

    #[test]
    fn symlink_replaces_and_resolves() {
        let mut fs = Rootfs::new(SpillFile::new().unwrap(), Timestamp::default());
        let meta = Metadata {
            mode: 0o644,
            ..Metadata::default()
        };
        fs.write_file(b"/lib/unit.service", meta.clone(), b"[Unit]\n")
            .unwrap();
        fs.write_file(b"/etc/wants/unit.service", meta.clone(), b"old")
            .unwrap();
        let link = fs
            .write_symlink(b"/etc/wants/unit.service", b"/lib/unit.service", meta)
            .unwrap();
        assert!(
            matches!(&fs.tree().inode(link).kind, InodeKind::Symlink(t) if &t[..] == b"/lib/unit.service")
        );
        assert_eq!(
            fs.read_file(b"/etc/wants/unit.service", 64)
                .unwrap()
                .unwrap(),
            b"[Unit]\n"
        );
    }
}
