//! What goes on a volume: directories and files by path, checked as they are added.

use std::collections::BTreeMap;

use crate::name::{check_long_name, fold_case};
use crate::{Error, Result};

/// What goes on the volume: directories and small files (EFI loaders, configs), by path.
///
/// Paths are `/`-separated, relative to the root (a leading `/` is allowed). Names are
/// checked when added (FAT's character set, at most 255 characters) and must be unique
/// in their directory without regard to case, as FAT looks them up.
#[derive(Debug, Clone, Default)]
pub struct FatTree {
    pub(crate) root: Dir,
}

/// A directory's children, sorted by name (byte order): the order they are stored in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dir {
    pub children: Vec<Node>,
    /// The children's names folded to upper case, to each name as given.
    folded: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub name: String,
    /// The name in UCS-2, as its long-name entries hold it.
    pub ucs2: Vec<u16>,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Dir(Dir),
    File(Vec<u8>),
}

impl FatTree {
    /// An empty tree: a volume with only its root directory (and label).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory and its missing parents ("EFI/BOOT"); one already there is kept.
    pub fn add_dir(&mut self, path: &str) -> Result<()> {
        let names = split(path)?;
        let mut dir = &mut self.root;
        for name in names {
            dir = dir.subdir(path, name)?;
        }
        Ok(())
    }

    /// Adds a file with its contents, creating missing parent directories.
    pub fn add_file(&mut self, path: &str, data: Vec<u8>) -> Result<()> {
        let names = split(path)?;
        let (name, parents) = names.split_last().expect("split gives a name");
        if u32::try_from(data.len()).is_err() {
            return Err(Error::FileTooLarge {
                path: path.into(),
                size: data.len() as u64,
            });
        }
        let mut dir = &mut self.root;
        for parent in parents {
            dir = dir.subdir(path, parent)?;
        }
        dir.insert(path, name, NodeKind::File(data))?;
        Ok(())
    }
}

impl Dir {
    /// The subdirectory `name`, created when missing.
    fn subdir(&mut self, path: &str, name: &str) -> Result<&mut Dir> {
        let at = match self.folded.get(&fold_case(name)) {
            Some(existing) if existing != name => return Err(clash(path, existing)),
            Some(_) => self.position(name),
            None => self.insert(path, name, NodeKind::Dir(Dir::default()))?,
        };
        match &mut self.children[at].kind {
            NodeKind::Dir(dir) => Ok(dir),
            NodeKind::File(_) => Err(invalid(path, format!("{name:?} is a file"))),
        }
    }

    /// Adds a child `name`, in sorted order; an error when a child has that name in any
    /// case.
    fn insert(&mut self, path: &str, name: &str, kind: NodeKind) -> Result<usize> {
        let key = fold_case(name);
        if let Some(existing) = self.folded.get(&key) {
            return Err(clash(path, existing));
        }
        let at = self.position(name);
        let node = Node {
            name: name.into(),
            ucs2: ucs2(path, name)?,
            kind,
        };
        self.children.insert(at, node);
        self.folded.insert(key, name.into());
        Ok(at)
    }

    /// Where the child `name` is, or would go.
    fn position(&self, name: &str) -> usize {
        self.children
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .unwrap_or_else(|at| at)
    }
}

/// The names of a path; an error when one is not a valid FAT name.
fn split(path: &str) -> Result<Vec<&str>> {
    let relative = path.strip_prefix('/').unwrap_or(path);
    let names: Vec<&str> = relative.split('/').collect();
    for name in &names {
        check_long_name(name).map_err(|reason| invalid(path, reason))?;
    }
    Ok(names)
}

fn ucs2(path: &str, name: &str) -> Result<Vec<u16>> {
    check_long_name(name).map_err(|reason| invalid(path, reason))
}

fn invalid(path: &str, reason: String) -> Error {
    Error::InvalidName {
        path: path.into(),
        reason,
    }
}

fn clash(path: &str, existing: &str) -> Error {
    invalid(
        path,
        format!("already holds {existing:?} (FAT names are compared without regard to case)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Dir) -> Vec<&str> {
        dir.children.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn parents_are_implied_and_children_sorted() {
        let mut tree = FatTree::new();
        tree.add_file("/EFI/BOOT/grub.cfg", b"x".to_vec()).unwrap();
        tree.add_dir("EFI/BOOT").unwrap();
        tree.add_file("EFI/BOOT/BOOTX64.EFI", vec![]).unwrap();
        tree.add_dir("EFI/Linux").unwrap();
        assert_eq!(names(&tree.root), ["EFI"]);
        let NodeKind::Dir(efi) = &tree.root.children[0].kind else {
            panic!()
        };
        assert_eq!(names(efi), ["BOOT", "Linux"]);
        let NodeKind::Dir(boot) = &efi.children[0].kind else {
            panic!()
        };
        assert_eq!(names(boot), ["BOOTX64.EFI", "grub.cfg"]);
    }

    #[test]
    fn clashes_and_bad_names_name_the_path() {
        let mut tree = FatTree::new();
        tree.add_file("EFI/BOOT/grub.cfg", vec![]).unwrap();
        let message = |e: Error| e.to_string();
        let e = tree.add_file("EFI/BOOT/GRUB.CFG", vec![]).unwrap_err();
        assert!(message(e).contains("EFI/BOOT/GRUB.CFG"));
        assert!(tree.add_file("EFI/BOOT/grub.cfg", vec![]).is_err());
        assert!(tree.add_dir("efi/boot").is_err());
        assert!(tree.add_dir("EFI/BOOT/grub.cfg").is_err());
        assert!(tree.add_file("EFI/BOOT/grub.cfg/x", vec![]).is_err());
        assert!(tree.add_dir("EFI//BOOT").is_err());
        assert!(tree.add_dir("").is_err());
        assert!(tree.add_dir("EFI/").is_err());
        let e = tree.add_file("EFI/a?b", vec![]).unwrap_err();
        assert!(message(e).contains("EFI/a?b"));
    }
}
