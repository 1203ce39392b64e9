//! Inode numbers for the tree: root 2, lost+found 11, then depth first from 12 in the
//! tree's name order, so a directory's inodes (and, allocated in the same order, their
//! blocks) sit together.

use d2l_rootfs::{InodeId, InodeKind, Tree};

use crate::dir::DirEntryIn;
use crate::layout::{FIRST_INO, LOST_FOUND_INO, ROOT_INO};

/// File type codes of directory entries (`ext4_dir_entry_2.file_type`).
const FT_REG: u8 = 1;
const FT_DIR: u8 = 2;
const FT_CHR: u8 = 3;
const FT_BLK: u8 = 4;
const FT_FIFO: u8 = 5;
const FT_SYMLINK: u8 = 7;

/// The tree with ext4 inode numbers.
pub(crate) struct Numbering {
    /// ext4 inode number of each tree inode (0 = none).
    pub ino_of: Vec<u32>,
    /// Tree inode of each ext4 inode number (index = ino); `None` for reserved and synthetic.
    pub tree_of: Vec<Option<InodeId>>,
    /// Parent directory inode number of each directory inode.
    pub parent_of: Vec<u32>,
    /// Whether d2l creates lost+found (the image has none).
    pub synthetic_lost_found: bool,
    /// The highest inode number in use.
    pub max_ino: u32,
}

pub(crate) fn number(tree: &Tree) -> Numbering {
    let mut ino_of = vec![0u32; tree.inode_index_bound()];
    let mut tree_of: Vec<Option<InodeId>> = vec![None; FIRST_INO as usize + 1];
    let mut parent_of = vec![0u32; FIRST_INO as usize + 1];
    let root = tree.root();
    ino_of[root.index()] = ROOT_INO;
    tree_of[ROOT_INO as usize] = Some(root);
    parent_of[ROOT_INO as usize] = ROOT_INO;
    let root_dir = tree
        .inode(root)
        .as_directory()
        .expect("root is a directory");
    let existing_lf = root_dir
        .get(b"lost+found")
        .filter(|&id| tree.inode(id).as_directory().is_some());
    if let Some(id) = existing_lf {
        ino_of[id.index()] = LOST_FOUND_INO;
        tree_of[LOST_FOUND_INO as usize] = Some(id);
    }
    parent_of[LOST_FOUND_INO as usize] = ROOT_INO;
    let mut next = FIRST_INO + 1;
    // Depth first, names in byte order: inode numbers and blocks follow the tree, so a
    // directory's files sit together.
    let mut stack = vec![root];
    while let Some(dir_id) = stack.pop() {
        let dir_ino = ino_of[dir_id.index()];
        let dir = tree
            .inode(dir_id)
            .as_directory()
            .expect("stack holds directories");
        let mut subdirs = Vec::new();
        for (_, child) in dir.entries() {
            if ino_of[child.index()] == 0 {
                ino_of[child.index()] = next;
                tree_of.push(Some(child));
                parent_of.push(0);
                next += 1;
            }
            if tree.inode(child).as_directory().is_some() {
                parent_of[ino_of[child.index()] as usize] = dir_ino;
                subdirs.push(child);
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Numbering {
        ino_of,
        tree_of,
        parent_of,
        synthetic_lost_found: existing_lf.is_none(),
        max_ino: next - 1,
    }
}

fn file_type(kind: &InodeKind) -> u8 {
    match kind {
        InodeKind::Directory(_) => FT_DIR,
        InodeKind::File(_) => FT_REG,
        InodeKind::Symlink(_) => FT_SYMLINK,
        InodeKind::CharDevice(_) => FT_CHR,
        InodeKind::BlockDevice(_) => FT_BLK,
        InodeKind::Fifo => FT_FIFO,
    }
}

/// Directory entries of a directory inode as ext4 sees them (without "." and "..").
pub(crate) fn dir_entries<'t>(
    tree: &'t Tree,
    numbering: &Numbering,
    ino: u32,
) -> Vec<DirEntryIn<'t>> {
    let mut out = Vec::new();
    if let Some(id) = numbering.tree_of[ino as usize] {
        let dir = tree.inode(id).as_directory().expect("a directory");
        out.reserve(dir.len() + 1);
        for (name, child) in dir.entries() {
            out.push(DirEntryIn {
                name,
                inode: numbering.ino_of[child.index()],
                file_type: file_type(&tree.inode(child).kind),
            });
        }
    }
    if ino == ROOT_INO && numbering.synthetic_lost_found {
        let at = out.partition_point(|e| e.name < &b"lost+found"[..]);
        out.insert(
            at,
            DirEntryIn {
                name: b"lost+found",
                inode: LOST_FOUND_INO,
                file_type: FT_DIR,
            },
        );
    }
    out
}
