//! The flattened root filesystem: an arena of inodes whose file data lives in a
//! [`ContentStore`](crate::ContentStore), never in memory.
//!
//! This is the contract between layer application and the filesystem writers. A writer walks
//! the tree ([`Tree::walk`]), takes metadata from each [`Inode`] and copies each file's
//! [`DataExtent`]s out of the store; a writer that supplied its own store already has the data
//! in its final place and only records where it went.

use std::collections::BTreeMap;

/// Index of an inode in the [`Tree`] arena. Stable for the life of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeId(u32);

impl InodeId {
    /// The arena index, for writers that keep per-inode side tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A point in time with nanosecond precision, seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Timestamp {
    /// Whole seconds; negative before 1970.
    pub seconds: i64,
    /// Nanoseconds within the second, always below 1_000_000_000.
    pub nanoseconds: u32,
}

/// Major and minor number of a device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

/// One run of file data: `len` bytes at `file_offset` in the file, stored at `store_offset`
/// in the content store. Bytes of a file not covered by any extent are holes (read as zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataExtent {
    /// Offset of the run within the file.
    pub file_offset: u64,
    /// Length of the run in bytes (never zero).
    pub len: u64,
    /// Where the run's bytes are in the content store.
    pub store_offset: u64,
}

/// The contents of a regular file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileData {
    /// Logical size of the file (apparent size, holes included).
    pub size: u64,
    /// Stored runs, sorted by `file_offset`, not overlapping.
    pub extents: Vec<DataExtent>,
}

impl FileData {
    /// Bytes actually stored (the file's size without its holes).
    pub fn stored_bytes(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }

    /// Whether the file has holes (bytes not covered by a stored extent).
    pub fn is_sparse(&self) -> bool {
        self.stored_bytes() != self.size
    }
}

/// A directory entry: which inode a name refers to, and the layer that last declared the name
/// (created it, replaced it, or created it as an implicit parent). Whiteouts use the layer to
/// remove only what lower layers declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry {
    /// The inode the name refers to.
    pub inode: InodeId,
    /// The layer that last declared the name (edits after the layers use `u32::MAX`).
    pub layer: u32,
}

/// The children of a directory, sorted by name (names are bytes, not UTF-8).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub(crate) entries: BTreeMap<Box<[u8]>, DirEntry>,
}

impl Directory {
    /// The entries in byte order of their names.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&[u8], InodeId)> {
        self.entries.iter().map(|(name, e)| (&name[..], e.inode))
    }

    /// The entry of a name, with the layer that declared it.
    pub fn entry(&self, name: &[u8]) -> Option<DirEntry> {
        self.entries.get(name).copied()
    }

    /// Looks a name up.
    pub fn get(&self, name: &[u8]) -> Option<InodeId> {
        self.entries.get(name).map(|e| e.inode)
    }

    /// Number of entries (without "." and "..").
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the directory has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What an inode is, with the data that only that kind has.
#[derive(Debug, Clone)]
pub enum InodeKind {
    /// A directory.
    Directory(Directory),
    /// A regular file.
    File(FileData),
    /// A symbolic link and its target, verbatim.
    Symlink(Box<[u8]>),
    /// A character device.
    CharDevice(Device),
    /// A block device.
    BlockDevice(Device),
    /// A named pipe.
    Fifo,
}

/// An extended attribute: name (e.g. `security.capability`) and raw value.
pub type Xattr = (Box<[u8]>, Box<[u8]>);

/// One inode: metadata shared by all its names.
#[derive(Debug, Clone)]
pub struct Inode {
    /// Kind and kind-specific data.
    pub kind: InodeKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777` at most).
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Extended attributes, sorted by name, names unique.
    pub xattrs: Vec<Xattr>,
    /// Number of directory entries naming this inode (for directories: 1, their own name;
    /// writers derive the on-disk link count of a directory from its subdirectories).
    pub(crate) names: u32,
}

impl Inode {
    /// Number of names (hard links) of a non-directory inode.
    pub fn link_count(&self) -> u32 {
        self.names
    }

    /// The directory, if this is one.
    pub fn as_directory(&self) -> Option<&Directory> {
        match &self.kind {
            InodeKind::Directory(d) => Some(d),
            _ => None,
        }
    }

    /// The file data, if this is a regular file.
    pub fn as_file(&self) -> Option<&FileData> {
        match &self.kind {
            InodeKind::File(f) => Some(f),
            _ => None,
        }
    }

    /// Replaces the metadata, keeping kind and names.
    pub fn set_metadata(&mut self, meta: Metadata) {
        self.mode = meta.mode & 0o7777;
        self.uid = meta.uid;
        self.gid = meta.gid;
        self.mtime = meta.mtime;
        self.xattrs = meta.xattrs;
    }

    /// The `S_IFMT` file type bits of a POSIX mode for this kind.
    pub fn file_type_bits(&self) -> u32 {
        match self.kind {
            InodeKind::Directory(_) => 0o040000,
            InodeKind::File(_) => 0o100000,
            InodeKind::Symlink(_) => 0o120000,
            InodeKind::CharDevice(_) => 0o020000,
            InodeKind::BlockDevice(_) => 0o060000,
            InodeKind::Fifo => 0o010000,
        }
    }
}

/// Metadata to give an inode, separate from its kind.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Extended attributes, sorted by name, names unique.
    pub xattrs: Vec<Xattr>,
}

/// The flattened root filesystem.
#[derive(Debug, Clone)]
pub struct Tree {
    inodes: Vec<Option<Inode>>,
    live: usize,
}

/// The root directory's inode.
pub const ROOT: InodeId = InodeId(0);

impl Tree {
    /// An empty tree: a root directory with the given metadata.
    pub fn new(root: Metadata) -> Tree {
        let mut tree = Tree {
            inodes: Vec::new(),
            live: 0,
        };
        let root_id = tree.alloc(InodeKind::Directory(Directory::default()), root);
        debug_assert_eq!(root_id, ROOT);
        tree
    }

    /// The root directory.
    pub fn root(&self) -> InodeId {
        ROOT
    }

    /// An inode by id. Panics if the id was freed (ids handed out by the tree's own walk
    /// and lookups never are).
    pub fn inode(&self, id: InodeId) -> &Inode {
        self.inodes[id.index()]
            .as_ref()
            .expect("inode id refers to a live inode")
    }

    /// The inode `id`, to change (panics when it is not live, a caller's bug).
    pub fn inode_mut(&mut self, id: InodeId) -> &mut Inode {
        self.inodes[id.index()]
            .as_mut()
            .expect("inode id refers to a live inode")
    }

    /// Number of live inodes, the root included.
    pub fn inode_count(&self) -> usize {
        self.live
    }

    /// One past the largest inode index ever handed out (size for per-inode side tables).
    pub fn inode_index_bound(&self) -> usize {
        self.inodes.len()
    }

    /// All live inodes with their ids, in id order.
    pub fn inodes(&self) -> impl Iterator<Item = (InodeId, &Inode)> {
        self.inodes
            .iter()
            .enumerate()
            // Every index fits: `alloc` hands out u32 ids only.
            .filter_map(|(i, slot)| Some((InodeId(u32::try_from(i).ok()?), slot.as_ref()?)))
    }

    /// Looks up a path of components from the root without following symlinks.
    pub fn lookup(&self, path: &[u8]) -> Option<InodeId> {
        let mut cur = ROOT;
        for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            cur = self.inode(cur).as_directory()?.get(comp)?;
        }
        Some(cur)
    }

    /// Every name in the tree, depth first, each directory's entries in byte order of their
    /// names, parents before children (the root itself is not visited). The paths are
    /// relative, without a leading "/".
    pub fn walk(&self) -> Walk<'_> {
        let mut walk = Walk {
            tree: self,
            stack: Vec::new(),
            path: Vec::new(),
        };
        if let Some(dir) = self.inode(ROOT).as_directory() {
            walk.stack.push((dir.entries.iter(), 0));
        }
        walk
    }

    /// A new inode with no name yet; [`Rootfs::link`](crate::Rootfs::link) names it.
    pub fn alloc(&mut self, kind: InodeKind, meta: Metadata) -> InodeId {
        let id = InodeId(u32::try_from(self.inodes.len()).expect("fewer than 2^32 inodes"));
        self.inodes.push(Some(Inode {
            kind,
            mode: meta.mode & 0o7777,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
            xattrs: meta.xattrs,
            names: 0,
        }));
        self.live += 1;
        id
    }

    pub(crate) fn free(&mut self, id: InodeId) -> Inode {
        self.live -= 1;
        self.inodes[id.index()]
            .take()
            .expect("freeing a live inode")
    }
}

type EntryIter<'a> = std::collections::btree_map::Iter<'a, Box<[u8]>, DirEntry>;

/// Iterator of [`Tree::walk`].
pub struct Walk<'a> {
    tree: &'a Tree,
    /// Open directories: their remaining entries and the length of `path` at their level.
    stack: Vec<(EntryIter<'a>, usize)>,
    path: Vec<u8>,
}

/// One item of [`Tree::walk`].
#[derive(Debug)]
pub struct WalkEntry<'a> {
    /// Path relative to the root, components joined by "/".
    pub path: &'a [u8],
    /// The inode the path names.
    pub inode: InodeId,
}

impl Walk<'_> {
    /// The next name, borrowing the walk's path buffer (a lending iterator, so the walk of a
    /// large tree allocates no path per entry).
    pub fn next_entry(&mut self) -> Option<WalkEntry<'_>> {
        loop {
            let (iter, base) = self.stack.last_mut()?;
            let base = *base;
            match iter.next() {
                None => {
                    self.stack.pop();
                }
                Some((name, entry)) => {
                    self.path.truncate(base);
                    if base > 0 {
                        self.path.push(b'/');
                    }
                    self.path.extend_from_slice(name);
                    if let Some(dir) = self.tree.inode(entry.inode).as_directory() {
                        let len = self.path.len();
                        self.stack.push((dir.entries.iter(), len));
                    }
                    return Some(WalkEntry {
                        path: &self.path,
                        inode: entry.inode,
                    });
                }
            }
        }
    }
}
