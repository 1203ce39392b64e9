//! Extended attributes against e2fsprogs: files with xattrs and ACLs, copied into an image by
//! `mke2fs -d`, must get the in-inode area and xattr block d2l encodes for the same
//! attributes, byte for byte (but for the kernel's block hash), and e2fsck must accept ours.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use d2l_disk::bytes::{le32, put_le32, FromBytes};
use d2l_fs_writer::internals::{
    block_hash, finish_block, fs_seed, place_xattrs, stored_name, XattrBlockHeader, XattrEntry,
    XattrIbodyHeader, IBODY_LEN, XATTR_BLOCK_LEN, XATTR_MAGIC,
};
use d2l_rootfs::Xattr;

/// `h_hash` in the xattr block header.
const H_HASH: usize = std::mem::offset_of!(XattrBlockHeader, h_hash);
/// Bytes per inode in the images.
const INODE_SIZE: usize = 256;

fn x(name: &[u8], value: &[u8]) -> Xattr {
    (name.into(), value.into())
}

/// A `security.capability` value (VFS_CAP_REVISION_2, CAP_NET_BIND_SERVICE-ish bits).
const CAP: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, // magic_etc
    0x0a, 0x00, 0x00, 0x00, // permitted (low)
    0x00, 0x00, 0x00, 0x00, // inheritable (low)
    0x00, 0x00, 0x00, 0x00, // permitted (high)
    0x00, 0x00, 0x00, 0x00, // inheritable (high)
];

/// Superblock (at byte 1024) fields used here.
const SB_OFFSET: usize = 1024;
const SB_FEATURE_INCOMPAT: usize = 0x60;
const SB_FEATURE_RO_COMPAT: usize = 0x64;
const SB_UUID: usize = 0x68;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
/// Inode fields used here.
const I_FILE_ACL_LO: usize = 0x68;
const I_FILE_ACL_HIGH: usize = 0x76;
const I_EXTRA_ISIZE: usize = 0x80;

fn find_tool(name: &str, package: &str) -> PathBuf {
    d2l_testkit::which(name).unwrap_or_else(|| {
        panic!(
            "the xattr cross-check needs `{name}` (Debian package `{package}`), \
                 not found in PATH, /usr/sbin or /sbin"
        )
    })
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_same(what: &str, ours: &[u8], theirs: &[u8]) {
    if let Some(at) = (0..ours.len()).find(|&i| ours[i] != theirs[i]) {
        let (from, to) = (at.saturating_sub(8), (at + 24).min(ours.len()));
        panic!(
            "{what}: first difference at byte {at:#x}\n ours {}\n mke2fs {}",
            hex(&ours[from..to]),
            hex(&theirs[from..to])
        );
    }
}

struct File {
    path: &'static str,
    /// Attributes set with setfattr (name, value).
    set: Vec<Xattr>,
    /// `setfacl` arguments, if any.
    acl: &'static [&'static str],
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Builds files with xattrs, lets `mke2fs -d` copy them into an image and compares what
/// it wrote with this module's encoding of the same attributes.
#[test]
fn matches_mke2fs() {
    let setfattr = find_tool("setfattr", "attr");
    let getfattr = find_tool("getfattr", "attr");
    let setfacl = find_tool("setfacl", "acl");
    let mke2fs = find_tool("mke2fs", "e2fsprogs");
    let debugfs = find_tool("debugfs", "e2fsprogs");
    let e2fsck = find_tool("e2fsck", "e2fsprogs");

    let files = [
        // Everything in the inode.
        File {
            path: "caps",
            set: vec![x(b"security.capability", &CAP), x(b"user.small", b"hi")],
            acl: &[],
        },
        // ACL and a small one in the inode, 3000 bytes in the block.
        File {
            path: "acl",
            set: vec![x(b"user.big", &pattern(3000, 1)), x(b"user.small", b"hi")],
            acl: &["-m", "u:1234:rx,g:5678:r"],
        },
        // A directory with both ACLs and several block entries to sort, one with a
        // name byte >= 0x80 (unsigned hash, e2fsprogs >= 1.47.0).
        File {
            path: "dir",
            set: vec![
                x(b"trusted.t", &pattern(120, 2)),
                x(b"user.aa", &pattern(300, 3)),
                x(b"user.b", &pattern(301, 4)),
                x(b"user.c", &pattern(302, 5)),
                x(b"user.\xe9t\xe9", &pattern(100, 6)),
                x(b"security.capability", &CAP),
            ],
            acl: &["-m", "u:1234:rwx", "-d", "-m", "u:42:rx,g:43:r"],
        },
    ];

    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for f in &files {
        let p = src.join(f.path);
        if f.path == "dir" {
            std::fs::create_dir(&p).unwrap();
        } else {
            std::fs::write(&p, b"").unwrap();
        }
        for (name, value) in &f.set {
            let mut v = b"0x".to_vec();
            v.extend_from_slice(hex(value).as_bytes());
            run(Command::new(&setfattr)
                .arg("-n")
                .arg(OsStr::from_bytes(name))
                .arg("-v")
                .arg(OsStr::from_bytes(&v))
                .arg(&p));
        }
        if !f.acl.is_empty() {
            run(Command::new(&setfacl).args(f.acl).arg(&p));
        }
    }

    let img = tmp.path().join("img");
    run(Command::new(&mke2fs)
        .args([
            "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-O", "^64bit", "-d",
        ])
        .arg(&src)
        .arg(&img)
        .arg("64M"));
    let mut image = std::fs::read(&img).unwrap();
    let sb = &image[SB_OFFSET..];
    assert_eq!(le32(sb, SB_FEATURE_INCOMPAT) & INCOMPAT_CSUM_SEED, 0);
    assert_ne!(le32(sb, SB_FEATURE_RO_COMPAT) & RO_COMPAT_METADATA_CSUM, 0);
    let uuid: [u8; 16] = sb[SB_UUID..SB_UUID + 16].try_into().unwrap();
    let seed = fs_seed(&uuid);

    let mut blocks_seen = 0;
    let mut patches = Vec::new();
    for f in &files {
        let p = src.join(f.path);
        // What mke2fs read: our values, plus the ACLs as the VFS returns them.
        let mut attrs: Vec<Xattr> = f.set.clone();
        for acl in ["system.posix_acl_access", "system.posix_acl_default"] {
            if f.acl.is_empty() || (acl.ends_with("default") && f.path != "dir") {
                continue;
            }
            let value = run(Command::new(&getfattr)
                .args(["--absolute-names", "--only-values", "-n", acl])
                .arg(&p));
            attrs.push(x(acl.as_bytes(), &value));
        }
        attrs.sort();

        let inode = read_inode(&debugfs, &img, &image, f.path);
        assert_eq!(
            u16::from_le_bytes([inode[I_EXTRA_ISIZE], inode[I_EXTRA_ISIZE + 1]]),
            32
        );
        let theirs_ibody: [u8; IBODY_LEN] = inode[160..256].try_into().unwrap();
        let file_acl = u64::from(le32(&inode, I_FILE_ACL_LO))
            | u64::from(u16::from_le_bytes([
                inode[I_FILE_ACL_HIGH],
                inode[I_FILE_ACL_HIGH + 1],
            ])) << 32;

        // mke2fs adds attributes in the source's listxattr order; put the ones it
        // stored in the inode first, in its order. First-fit then makes the same
        // split (those fit together; the others did not fit even beside fewer).
        let order = ibody_order(&theirs_ibody, &attrs);
        let mut input: Vec<Xattr> = order.iter().map(|&i| attrs[i].clone()).collect();
        input.extend(
            (0..attrs.len())
                .filter(|i| !order.contains(i))
                .map(|i| attrs[i].clone()),
        );

        let ours = place_xattrs(&input).unwrap();
        assert_same(&format!("{}: ibody", f.path), &ours.ibody, &theirs_ibody);
        assert_eq!(
            ours.block.is_some(),
            file_acl != 0,
            "{}: block present in ours vs mke2fs (i_file_acl {file_acl})",
            f.path
        );
        let Some(our_block) = ours.block else {
            continue;
        };
        blocks_seen += 1;
        let at = file_acl as usize * XATTR_BLOCK_LEN;
        let theirs: [u8; XATTR_BLOCK_LEN] = image[at..at + XATTR_BLOCK_LEN].try_into().unwrap();
        // mke2fs leaves h_hash 0 (ext2fs_xattrs_write does not rehash); ours is the
        // kernel's rehash of the entry hashes, which must equal the fold of the
        // entry hashes e2fsprogs wrote.
        assert_eq!(le32(&our_block[..], H_HASH), block_hash(&theirs));
        assert_ne!(block_hash(&theirs), 0);
        let mut cmp = our_block.clone();
        put_le32(&mut cmp[..], H_HASH, 0);
        finish_block(&mut cmp, 1, file_acl, seed);
        assert_same(&format!("{}: block {file_acl}", f.path), &cmp[..], &theirs);
        // For the fsck round below: our block as we would write it, with h_hash.
        let mut mine = our_block.clone();
        finish_block(&mut mine, 1, file_acl, seed);
        patches.push((at, mine));
    }
    assert_eq!(blocks_seen, 2, "the acl and dir files need a block");

    // Our blocks (with the kernel's h_hash) in place of mke2fs's: e2fsck is happy.
    for (at, block) in patches {
        image[at..at + XATTR_BLOCK_LEN].copy_from_slice(&block[..]);
    }
    std::fs::write(&img, &image).unwrap();
    run(Command::new(&e2fsck).arg("-fn").arg(&img));
}

/// The raw 256-byte inode of `/path` in the image: `debugfs imap` gives its block and
/// byte offset ("located at block 37, offset 0x0b00").
fn read_inode(debugfs: &Path, img: &Path, image: &[u8], path: &str) -> Vec<u8> {
    let out = run(Command::new(debugfs)
        .arg("-R")
        .arg(format!("imap /{path}"))
        .arg(img));
    let out = String::from_utf8(out).unwrap();
    let rest = out
        .split("located at block ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected debugfs imap output: {out}"));
    let (block, rest) = rest.split_once(", offset 0x").unwrap();
    let block: usize = block.trim().parse().unwrap();
    let offset = usize::from_str_radix(rest.trim(), 16).unwrap();
    let at = block * XATTR_BLOCK_LEN + offset;
    image[at..at + INODE_SIZE].to_vec()
}

/// Indexes into `attrs` of the entries of an ibody area, in stored order.
fn ibody_order(ibody: &[u8; IBODY_LEN], attrs: &[Xattr]) -> Vec<usize> {
    let parsed: Vec<(u8, Vec<u8>)> = attrs
        .iter()
        .map(|a| stored_name(a).map(|(i, s)| (i, s.to_vec())).unwrap())
        .collect();
    let mut order = Vec::new();
    if le32(ibody, 0) != XATTR_MAGIC {
        return order;
    }
    let mut at = size_of::<XattrIbodyHeader>();
    while le32(ibody, at) != 0 {
        let (e, name) = XattrEntry::read_from_prefix(&ibody[at..]).unwrap();
        let len = usize::from(e.e_name_len);
        let key = (e.e_name_index, name[..len].to_vec());
        let i = parsed
            .iter()
            .position(|p| *p == key)
            .unwrap_or_else(|| panic!("mke2fs stored an unknown xattr {key:?}"));
        order.push(i);
        at += (size_of::<XattrEntry>() + len).next_multiple_of(4);
    }
    order
}
