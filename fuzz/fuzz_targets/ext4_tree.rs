//! Random trees written as ext4: directories (some with many entries, for htree), files with
//! small contents or sparse runs far apart, symlinks (inline and not), hard links, devices,
//! xattrs and long names, built with the `Rootfs` API and written by `write_ext4` to a
//! temporary file. The writer may refuse a tree with an error; it must not panic, and what
//! it writes must be a clean filesystem: every 64th written image (every one with
//! `D2L_FUZZ_E2FSCK=1`) is checked with `e2fsck -fn`, and any problem is a crash.
#![no_main]

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Arbitrary;
use d2l_fs_writer::{write_ext4, Ext4Options, SizeSpec};
use d2l_rootfs::{
    ContentStore, DataExtent, Device, Directory, FileData, InodeId, InodeKind, Metadata, Rootfs,
    SpillFile, Timestamp, Xattr, ROOT,
};
use libfuzzer_sys::fuzz_target;

/// Check every Nth image with e2fsck (it costs a process and a read of the image).
const E2FSCK_EVERY: u64 = 64;
/// Entries a `Many` node adds at most (enough for a two-level htree with long names).
const MANY_MAX: usize = 2048;
/// Sparse runs are placed within this many bytes of a file (a little past ext4's 16 TiB - 4 KiB
/// limit for 4 KiB blocks, so that the limit itself is exercised).
const SPARSE_SPAN: u64 = 1 << 44;
/// ext4's longest name.
const NAME_MAX: usize = 255;

#[derive(Arbitrary, Debug)]
struct Input {
    nodes: Vec<Node>,
    size: Size,
    seed: u8,
}

#[derive(Arbitrary, Debug)]
enum Size {
    Auto,
    /// Content plus this many 4 KiB blocks free.
    ExtraBlocks(u16),
    /// Exactly this many MiB (too small is an error, not a crash).
    ExactMib(u8),
}

#[derive(Arbitrary, Debug)]
struct Meta {
    mode: u16,
    uid: u32,
    gid: u32,
    mtime: i64,
    nanos: u32,
    xattrs: Vec<XattrSpec>,
}

#[derive(Arbitrary, Debug)]
struct XattrSpec {
    namespace: u8,
    name: Vec<u8>,
    value: Vec<u8>,
    /// Makes the value big (spills out of the inode, or past a block).
    repeat: u8,
}

#[derive(Arbitrary, Debug)]
struct Name {
    bytes: Vec<u8>,
    /// Extra length (a long name: up to 255 bytes and a little past it).
    pad: u8,
    pad_byte: u8,
}

#[derive(Arbitrary, Debug)]
enum Node {
    Dir {
        parent: u16,
        name: Name,
        meta: Meta,
    },
    File {
        parent: u16,
        name: Name,
        meta: Meta,
        content: Vec<u8>,
        repeat: u8,
    },
    Sparse {
        parent: u16,
        name: Name,
        meta: Meta,
        size: u64,
        runs: Vec<(u64, u16, u8)>,
    },
    Symlink {
        parent: u16,
        name: Name,
        target: Vec<u8>,
        repeat: u8,
    },
    HardLink {
        parent: u16,
        name: Name,
        target: u16,
    },
    Device {
        parent: u16,
        name: Name,
        block: bool,
        major: u32,
        minor: u32,
    },
    Fifo {
        parent: u16,
        name: Name,
    },
    Many {
        parent: u16,
        count: u16,
        name_len: u8,
    },
}

const NAMESPACES: &[&[u8]] = &[
    b"user.",
    b"trusted.",
    b"security.",
    b"security.capability",
    b"security.selinux",
    b"system.posix_acl_access",
    b"system.posix_acl_default",
];

fn name(name: &Name) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = name
        .bytes
        .iter()
        .copied()
        .filter(|&b| b != b'/' && b != 0)
        .collect();
    let pad = if name.pad_byte == b'/' || name.pad_byte == 0 {
        b'x'
    } else {
        name.pad_byte
    };
    bytes.extend(std::iter::repeat_n(
        pad,
        name.pad as usize + name.pad as usize / 4,
    ));
    // Past 255 bytes the writer refuses the tree (fs-writer/tests/fuzz_regressions.rs); keep
    // most names writable so the target gets past that check.
    if name.pad % 8 != 0 {
        bytes.truncate(NAME_MAX);
    }
    (!bytes.is_empty() && bytes != b"." && bytes != b"..").then_some(bytes)
}

fn metadata(meta: &Meta) -> Metadata {
    let mut xattrs: Vec<Xattr> = Vec::new();
    for x in &meta.xattrs {
        let mut key = NAMESPACES[x.namespace as usize % NAMESPACES.len()].to_vec();
        if key.ends_with(b".") {
            key.extend(x.name.iter().copied().filter(|&b| b != 0));
        }
        let value = x.value.repeat(1 + x.repeat as usize);
        if !xattrs.iter().any(|(k, _)| **k == *key) {
            xattrs.push((key.into(), value.into()));
        }
    }
    xattrs.sort();
    Metadata {
        mode: meta.mode & 0o7777,
        uid: meta.uid,
        gid: meta.gid,
        mtime: Timestamp {
            seconds: meta.mtime,
            nanoseconds: meta.nanos % 1_000_000_000,
        },
        xattrs,
    }
}

struct Builder {
    rootfs: Rootfs<SpillFile>,
    dirs: Vec<InodeId>,
    linkable: Vec<InodeId>,
}

impl Builder {
    fn parent(&self, index: u16) -> InodeId {
        self.dirs[index as usize % self.dirs.len()]
    }

    /// Links a new inode under a name not yet taken (replacing would free inodes the
    /// builder still refers to).
    fn add(
        &mut self,
        parent: u16,
        name: &Name,
        kind: InodeKind,
        meta: Metadata,
    ) -> Option<InodeId> {
        let parent = self.parent(parent);
        let name = self::name(name)?;
        if self.rootfs.dir(parent).get(&name).is_some() {
            return None;
        }
        let id = self.rootfs.tree_mut().alloc(kind, meta);
        self.rootfs.link(parent, &name, id, 1).ok()?;
        Some(id)
    }

    fn node(&mut self, node: &Node) -> Option<()> {
        match node {
            Node::Dir { parent, name, meta } => {
                let kind = InodeKind::Directory(Directory::default());
                let id = self.add(*parent, name, kind, metadata(meta))?;
                self.dirs.push(id);
            }
            Node::File {
                parent,
                name,
                meta,
                content,
                repeat,
            } => {
                let content = content.repeat(1 + *repeat as usize);
                let mut extents = Vec::new();
                if !content.is_empty() {
                    let len = content.len() as u64;
                    let store_offset = self
                        .rootfs
                        .store_mut()
                        .store(0, len, &mut &content[..])
                        .ok()?;
                    extents.push(DataExtent {
                        file_offset: 0,
                        len,
                        store_offset,
                    });
                }
                let kind = InodeKind::File(FileData {
                    size: content.len() as u64,
                    extents,
                });
                let id = self.add(*parent, name, kind, metadata(meta))?;
                self.linkable.push(id);
            }
            Node::Sparse {
                parent,
                name,
                meta,
                size,
                runs,
            } => {
                let mut extents: Vec<DataExtent> = Vec::new();
                let mut end = 0u64;
                for &(gap, len, byte) in runs.iter().take(16) {
                    let file_offset = end.checked_add(gap % SPARSE_SPAN)?;
                    let len = u64::from(len) + 1;
                    if file_offset.checked_add(len)? > SPARSE_SPAN {
                        break;
                    }
                    let data = vec![byte; len as usize];
                    let store_offset = self
                        .rootfs
                        .store_mut()
                        .store(file_offset, len, &mut &data[..])
                        .ok()?;
                    extents.push(DataExtent {
                        file_offset,
                        len,
                        store_offset,
                    });
                    end = file_offset + len;
                }
                let size = end.max(size % SPARSE_SPAN);
                let kind = InodeKind::File(FileData { size, extents });
                let id = self.add(*parent, name, kind, metadata(meta))?;
                self.linkable.push(id);
            }
            Node::Symlink {
                parent,
                name,
                target,
                repeat,
            } => {
                // A NUL in a target is refused by the writer (fs-writer/tests/
                // fuzz_regressions.rs); it stays possible, rarely.
                let target: Vec<u8> = target
                    .repeat(1 + *repeat as usize)
                    .into_iter()
                    .filter(|&b| b != 0 || *repeat == 7)
                    .collect();
                let meta = Metadata {
                    mode: 0o777,
                    ..Metadata::default()
                };
                let id = self.add(*parent, name, InodeKind::Symlink(target.into()), meta)?;
                self.linkable.push(id);
            }
            Node::HardLink {
                parent,
                name,
                target,
            } => {
                if self.linkable.is_empty() {
                    return None;
                }
                let target = self.linkable[*target as usize % self.linkable.len()];
                let parent = self.parent(*parent);
                let name = self::name(name)?;
                if self.rootfs.dir(parent).get(&name).is_some() {
                    return None;
                }
                self.rootfs.link(parent, &name, target, 1).ok()?;
            }
            Node::Device {
                parent,
                name,
                block,
                major,
                minor,
            } => {
                let device = Device {
                    major: *major,
                    minor: *minor,
                };
                let kind = if *block {
                    InodeKind::BlockDevice(device)
                } else {
                    InodeKind::CharDevice(device)
                };
                let meta = Metadata {
                    mode: 0o600,
                    ..Metadata::default()
                };
                let id = self.add(*parent, name, kind, meta)?;
                self.linkable.push(id);
            }
            Node::Fifo { parent, name } => {
                let meta = Metadata {
                    mode: 0o644,
                    ..Metadata::default()
                };
                let id = self.add(*parent, name, InodeKind::Fifo, meta)?;
                self.linkable.push(id);
            }
            Node::Many {
                parent,
                count,
                name_len,
            } => {
                let parent = self.parent(*parent);
                let width = (*name_len as usize).clamp(8, 255);
                for i in 0..(*count as usize % MANY_MAX) {
                    let name = format!("{i:0width$}");
                    if self.rootfs.dir(parent).get(name.as_bytes()).is_some() {
                        continue;
                    }
                    let meta = Metadata {
                        mode: 0o644,
                        ..Metadata::default()
                    };
                    let id = self
                        .rootfs
                        .tree_mut()
                        .alloc(InodeKind::File(FileData::default()), meta);
                    self.rootfs.link(parent, name.as_bytes(), id, 1).ok()?;
                }
            }
        }
        Some(())
    }
}

static RUNS: AtomicU64 = AtomicU64::new(0);

fn e2fsck(path: &std::path::Path) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(path)
        .output()
        .expect("e2fsck (e2fsprogs)");
    assert!(
        out.status.success(),
        "e2fsck -fn found problems (exit {:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fuzz_target!(|input: Input| {
    let rootfs = Rootfs::new(SpillFile::new().expect("spill file"), Timestamp::default());
    let mut builder = Builder {
        rootfs,
        dirs: vec![ROOT],
        linkable: Vec::new(),
    };
    for node in &input.nodes {
        let _ = builder.node(node);
    }
    let (tree, store) = builder.rootfs.into_parts();
    let data = store.into_reader().expect("spill reader");
    let mut options = Ext4Options::deterministic(&[input.seed; 32]);
    options.size = match input.size {
        Size::Auto => SizeSpec::Auto,
        Size::ExtraBlocks(blocks) => SizeSpec::Extra(u64::from(blocks) * 4096),
        Size::ExactMib(mib) => SizeSpec::Exact(u64::from(mib) << 20),
    };
    let image = tempfile::NamedTempFile::new().expect("temporary file");
    if write_ext4(&tree, &data, image.as_file(), &options).is_err() {
        return;
    }
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    if run.is_multiple_of(E2FSCK_EVERY)
        || std::env::var_os("D2L_FUZZ_E2FSCK").is_some_and(|v| v == "1")
    {
        e2fsck(image.path());
    }
});
