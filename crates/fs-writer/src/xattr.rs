//! Extended attributes of one inode, encoded as ext4 stores them.
//!
//! ext4 keeps xattrs in two places (kernel.org "ext4 Data Structures and Algorithms",
//! "Extended Attributes"; kernel `fs/ext4/xattr.c`, `fs/ext4/xattr.h`):
//!
//! * the **ibody**: the bytes of a large inode after `i_extra_isize`, a 4-byte magic followed
//!   by entries in no particular order; value offsets count from the first entry;
//! * one external **block** named by `i_file_acl`: a 32-byte header, then entries *sorted*
//!   (the kernel's block lookup stops at the first entry that sorts after the name it looks
//!   for); value offsets count from the start of the block. Identical blocks may be shared by
//!   several inodes (`h_refcount`).
//!
//! In both, the entry table grows from the start and ends with four zero bytes, and the values
//! (each padded to 4 bytes) are packed from the end of the area downwards.
//!
//! [`place_xattrs`] decides where each attribute goes and encodes both areas;
//! [`finish_block`] stamps a block's reference count and checksum once the caller knows where
//! the block lives and how many inodes share it. POSIX ACLs arrive in the VFS/tar form and are
//! stored in ext4's compact form ([`posix_acl_to_disk`]).

use d2l_rootfs::Xattr;

use crate::csum::ext4_chksum;
use crate::layout::{BLOCK_SIZE, EXTRA_ISIZE, INODE_SIZE};
use crate::ondisk::{XattrBlockHeader, XattrEntry, XattrIbodyHeader};
use d2l_disk::bytes::{le32, FromBytes, IntoBytes};

/// Size of the original ext2 inode (`EXT2_GOOD_OLD_INODE_SIZE`); `i_extra_isize` counts from
/// here.
const GOOD_OLD_INODE_SIZE: usize = 128;
/// Bytes of the in-inode xattr area: a 256-byte inode minus the 128-byte base minus
/// `i_extra_isize` (inode offsets 160..256).
pub const IBODY_LEN: usize = INODE_SIZE as usize - GOOD_OLD_INODE_SIZE - EXTRA_ISIZE as usize;
const _: () = assert!(IBODY_LEN == 96);
/// Bytes of an external xattr block (one filesystem block).
pub const XATTR_BLOCK_LEN: usize = BLOCK_SIZE as usize;

/// `EXT4_XATTR_MAGIC`: first word of the ibody area and of an xattr block.
pub const XATTR_MAGIC: u32 = 0xEA02_0000;

/// `struct ext4_xattr_ibody_header`: just `h_magic`.
const IBODY_HEADER_LEN: usize = size_of::<XattrIbodyHeader>();

/// `struct ext4_xattr_header` ([`XattrBlockHeader`]) field offsets.
mod header {
    use super::XattrBlockHeader as H;
    #[cfg(test)]
    use std::mem::offset_of;
    /// `h_refcount`: number of inodes sharing the block.
    #[cfg(test)]
    pub(super) const REFCOUNT: usize = offset_of!(H, h_refcount);
    /// `h_hash`: hash over all entry hashes (`ext4_xattr_rehash`); 0 = never share.
    #[cfg(test)]
    pub(super) const HASH: usize = offset_of!(H, h_hash);
    /// `h_checksum`: metadata_csum of the block.
    #[cfg(test)]
    pub(super) const CHECKSUM: usize = offset_of!(H, h_checksum);
    /// Size of the header; entries start here.
    pub(super) const LEN: usize = size_of::<H>();
}

/// `struct ext4_xattr_entry` ([`XattrEntry`]) field offsets; the name follows the fixed part.
mod entry {
    use super::XattrEntry as E;
    use std::mem::offset_of;
    /// `e_name_len` (u8).
    pub(super) const NAME_LEN: usize = offset_of!(E, e_name_len);
    /// `e_name_index` (u8): the namespace, see [`super::Namespace`].
    #[cfg(test)]
    pub(super) const NAME_INDEX: usize = offset_of!(E, e_name_index);
    /// `e_value_offs` (le16): offset of the value (ibody: from the first entry; block: from
    /// the block start). 0 for an empty value.
    #[cfg(test)]
    pub(super) const VALUE_OFFS: usize = offset_of!(E, e_value_offs);
    /// `e_value_size` (le32): length of the value, unpadded.
    #[cfg(test)]
    pub(super) const VALUE_SIZE: usize = offset_of!(E, e_value_size);
    /// `e_hash` (le32): `ext4_xattr_hash_entry`; the kernel sets it only in blocks.
    pub(super) const HASH: usize = offset_of!(E, e_hash);
    /// Size of the fixed part; `e_name` starts here.
    pub(super) const LEN: usize = size_of::<E>();
}

/// `EXT4_XATTR_PAD`: entries and values are aligned to 4 bytes.
const XATTR_PAD: usize = 4;
/// The entry table ends with one zero `u32` (`IS_LAST_ENTRY`).
const TERMINATOR_LEN: usize = 4;
/// `e_name_len` is a u8 (the kernel refuses longer names with ERANGE).
const MAX_NAME_LEN: usize = u8::MAX as usize;

/// `NAME_HASH_SHIFT` of `ext4_xattr_hash_entry`.
const NAME_HASH_SHIFT: u32 = 5;
/// `VALUE_HASH_SHIFT` of `ext4_xattr_hash_entry`.
const VALUE_HASH_SHIFT: u32 = 16;
/// `BLOCK_HASH_SHIFT` of `ext4_xattr_rehash`.
const BLOCK_HASH_SHIFT: u32 = 16;

/// POSIX ACLs: the VFS/tar form (`include/uapi/linux/posix_acl_xattr.h`) and ext4's on-disk
/// form (`fs/ext4/acl.h`).
mod acl {
    /// `POSIX_ACL_XATTR_VERSION`: `a_version` of the VFS form.
    pub(super) const XATTR_VERSION: u32 = 2;
    /// `EXT4_ACL_VERSION`: `a_version` of ext4's form.
    pub(super) const EXT4_VERSION: u32 = 1;
    /// `sizeof(posix_acl_xattr_header)` and `sizeof(ext4_acl_header)`: one le32 version.
    pub(super) const HEADER_LEN: usize = 4;
    /// `sizeof(posix_acl_xattr_entry)` and `sizeof(ext4_acl_entry)`: tag, perm, id.
    pub(super) const FULL_ENTRY_LEN: usize = 8;
    /// `sizeof(ext4_acl_entry_short)`: tag and perm, for entries without a qualifier.
    pub(super) const SHORT_ENTRY_LEN: usize = 4;
    /// `ACL_USER_OBJ`: the owner.
    pub(super) const USER_OBJ: u16 = 0x01;
    /// `ACL_USER`: a named user (has an id).
    pub(super) const USER: u16 = 0x02;
    /// `ACL_GROUP_OBJ`: the owning group.
    pub(super) const GROUP_OBJ: u16 = 0x04;
    /// `ACL_GROUP`: a named group (has an id).
    pub(super) const GROUP: u16 = 0x08;
    /// `ACL_MASK`: the mask entry.
    pub(super) const MASK: u16 = 0x10;
    /// `ACL_OTHER`: everyone else.
    pub(super) const OTHER: u16 = 0x20;
}

/// Why an inode's xattrs cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum XattrError {
    /// The attributes do not fit in the inode plus one block (d2l does not use ea_inode).
    #[error(
        "xattr {name} does not fit: it needs {needed} bytes, {free} are left in the inode's \
         xattr block (all xattrs of an inode must fit its {IBODY_LEN}-byte in-inode area and \
         one {XATTR_BLOCK_LEN}-byte block)"
    )]
    TooLarge {
        /// Full name of the first attribute that found no room.
        name: String,
        /// Bytes it needs: padded entry with name plus padded value.
        needed: usize,
        /// Bytes left in the block when it was tried.
        free: usize,
    },
    /// The name has no prefix ext4 can store (`user.`, `trusted.`, `security.`, `system.`).
    #[error("xattr {0}: unknown namespace (ext4 stores user., trusted., security. and system.)")]
    UnknownNamespace(String),
    /// The name is empty after its prefix, longer than 255 bytes after it, or contains a NUL.
    #[error("xattr {0}: bad name (empty or over 255 bytes after the prefix, or contains NUL)")]
    BadName(String),
    /// A `system.posix_acl_access`/`_default` value is not a valid `posix_acl_xattr`.
    #[error("bad POSIX ACL: {0}")]
    BadAcl(String),
}

/// Where an inode's xattrs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XattrPlacement {
    /// The 96 bytes at inode offset 160..256 (after `i_extra_isize` = 32): the ibody xattr
    /// area (magic + entries + values), or all zero when no attribute is stored there.
    pub ibody: [u8; IBODY_LEN],
    /// Content of the external xattr block for the attributes that did not fit in the inode,
    /// with `h_refcount` = 1 and `h_checksum` = 0 (see [`finish_block`]); `None` if all fit in
    /// the inode.
    pub block: Option<Box<[u8; XATTR_BLOCK_LEN]>>,
}

/// The `e_name_index` namespaces (kernel `fs/ext4/xattr.h`, `EXT4_XATTR_INDEX_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Namespace {
    /// `user.` (`EXT4_XATTR_INDEX_USER`).
    User = 1,
    /// `system.posix_acl_access`, whole name (`EXT4_XATTR_INDEX_POSIX_ACL_ACCESS`).
    PosixAclAccess = 2,
    /// `system.posix_acl_default`, whole name (`EXT4_XATTR_INDEX_POSIX_ACL_DEFAULT`).
    PosixAclDefault = 3,
    /// `trusted.` (`EXT4_XATTR_INDEX_TRUSTED`).
    Trusted = 4,
    /// `security.` (`EXT4_XATTR_INDEX_SECURITY`).
    Security = 6,
    /// Any other `system.` name (`EXT4_XATTR_INDEX_SYSTEM`).
    System = 7,
    /// `system.richacl`, whole name (`EXT4_XATTR_INDEX_RICHACL`).
    RichAcl = 8,
}

/// Names stored with an empty suffix, matched whole; checked before the prefixes so that
/// `system.posix_acl_access` does not land in `system.` (as e2fsprogs' `find_ea_index`).
const WHOLE_NAMES: [(&[u8], Namespace); 3] = [
    (b"system.posix_acl_access", Namespace::PosixAclAccess),
    (b"system.posix_acl_default", Namespace::PosixAclDefault),
    (b"system.richacl", Namespace::RichAcl),
];
/// Prefixes; the stored name is what follows.
const PREFIXES: [(&[u8], Namespace); 4] = [
    (b"user.", Namespace::User),
    (b"trusted.", Namespace::Trusted),
    (b"security.", Namespace::Security),
    (b"system.", Namespace::System),
];

/// One attribute ready to encode: namespace, stored name and value in on-disk form.
#[derive(Debug, Clone)]
struct Attr<'a> {
    index: Namespace,
    /// The name after the prefix (`e_name`).
    suffix: &'a [u8],
    /// The value as stored (ACLs converted to ext4's form).
    value: Vec<u8>,
    /// The full name, for error messages.
    full_name: &'a [u8],
}

impl<'a> Attr<'a> {
    fn parse((name, value): &'a Xattr) -> Result<Self, XattrError> {
        let lossy = || String::from_utf8_lossy(name).into_owned();
        let (index, suffix) =
            if let Some(&(_, ns)) = WHOLE_NAMES.iter().find(|(n, _)| **n == **name) {
                (ns, &name[name.len()..])
            } else {
                let &(prefix, ns) = PREFIXES
                    .iter()
                    .find(|(p, _)| name.starts_with(p))
                    .ok_or_else(|| XattrError::UnknownNamespace(lossy()))?;
                let suffix = &name[prefix.len()..];
                // The VFS refuses a bare prefix (xattr_resolve_name: EINVAL).
                if suffix.is_empty() {
                    return Err(XattrError::BadName(lossy()));
                }
                (ns, suffix)
            };
        if suffix.len() > MAX_NAME_LEN || suffix.contains(&0) {
            return Err(XattrError::BadName(lossy()));
        }
        let value = match index {
            Namespace::PosixAclAccess | Namespace::PosixAclDefault => posix_acl_to_disk(value)
                .map_err(|why| XattrError::BadAcl(format!("{}: {why}", lossy())))?,
            _ => value.to_vec(),
        };
        Ok(Attr {
            index,
            suffix,
            value,
            full_name: name,
        })
    }

    /// Bytes of the entry: fixed part plus name, padded (`EXT4_XATTR_LEN`).
    fn entry_len(&self) -> usize {
        pad(entry::LEN + self.suffix.len())
    }

    /// Bytes of the entry and of its padded value (`EXT4_XATTR_LEN + EXT4_XATTR_SIZE`).
    fn footprint(&self) -> usize {
        self.entry_len() + pad(self.value.len())
    }

    /// The order the kernel keeps block entries in (`xattr_find_entry` with `sorted`): name
    /// index, then name length, then name bytes.
    fn block_order(&self, other: &Self) -> std::cmp::Ordering {
        (self.index as u8, self.suffix.len(), self.suffix).cmp(&(
            other.index as u8,
            other.suffix.len(),
            other.suffix,
        ))
    }
}

/// Rounds up to [`XATTR_PAD`] (`EXT4_XATTR_SIZE`).
fn pad(n: usize) -> usize {
    n.next_multiple_of(XATTR_PAD)
}

/// Decides where each attribute goes and encodes the ibody area and, if needed, the block.
///
/// Attributes are taken in the given order (d2l passes them sorted by name); each goes into
/// the inode if it still fits there, else into the block. That is what the kernel does when
/// the attributes are set one after the other (`ext4_xattr_set_handle` tries
/// `ext4_xattr_ibody_set` first and falls back to the block on ENOSPC), and what e2fsprogs'
/// `ext2fs_xattr_set` (used by `mke2fs -d`) does. The ibody keeps that order, the block is
/// sorted as the kernel requires.
pub fn place_xattrs(xattrs: &[Xattr]) -> Result<XattrPlacement, XattrError> {
    let attrs = xattrs
        .iter()
        .map(Attr::parse)
        .collect::<Result<Vec<_>, _>>()?;

    let mut ibody_free = IBODY_LEN - IBODY_HEADER_LEN - TERMINATOR_LEN;
    let mut block_free = XATTR_BLOCK_LEN - header::LEN - TERMINATOR_LEN;
    let (mut in_inode, mut in_block) = (Vec::new(), Vec::new());
    for attr in attrs {
        let needed = attr.footprint();
        if needed <= ibody_free {
            ibody_free -= needed;
            in_inode.push(attr);
        } else if needed <= block_free {
            block_free -= needed;
            in_block.push(attr);
        } else {
            return Err(XattrError::TooLarge {
                name: String::from_utf8_lossy(attr.full_name).into_owned(),
                needed,
                free: block_free,
            });
        }
    }

    let mut ibody = [0u8; IBODY_LEN];
    if !in_inode.is_empty() {
        let header = XattrIbodyHeader {
            h_magic: XATTR_MAGIC.into(),
        };
        ibody[..IBODY_HEADER_LEN].copy_from_slice(header.as_bytes());
        // Offsets count from the first entry, right after the magic; no hashes in the inode.
        write_entries(&mut ibody[IBODY_HEADER_LEN..], 0, &in_inode, false);
    }

    let block = (!in_block.is_empty()).then(|| {
        in_block.sort_by(Attr::block_order);
        let mut b = Box::new([0u8; XATTR_BLOCK_LEN]);
        write_entries(&mut b[..], header::LEN, &in_block, true);
        let header = XattrBlockHeader {
            h_magic: XATTR_MAGIC.into(),
            h_refcount: 1.into(),
            // h_blocks: always 1.
            h_blocks: 1.into(),
            h_hash: block_hash(&b[..]).into(),
            ..XattrBlockHeader::default()
        };
        b[..header::LEN].copy_from_slice(header.as_bytes());
        b
    });

    Ok(XattrPlacement { ibody, block })
}

/// Sets `h_refcount` and the checksum of a block from [`place_xattrs`] stored at physical
/// block `block_nr` (`ext4_xattr_block_csum`: CRC32C seeded with the filesystem seed, over
/// le64 `block_nr`, then over the whole block with `h_checksum` zero).
///
/// The kernel itself never lets more than 1024 inodes share a block
/// (`EXT4_XATTR_REFCOUNT_MAX`), but it reads and decrements larger counts and e2fsck does not
/// check the limit; a writer that wants to stay within what the kernel writes starts a new
/// copy of the block past it.
pub fn finish_block(block: &mut [u8; XATTR_BLOCK_LEN], refcount: u32, block_nr: u64, fs_seed: u32) {
    debug_assert!(refcount >= 1, "an xattr block needs at least one inode");
    let (mut header, _) = XattrBlockHeader::read_from_prefix(&block[..]).expect("a block");
    header.h_refcount = refcount.into();
    header.h_checksum = 0.into();
    block[..header::LEN].copy_from_slice(header.as_bytes());
    let csum = ext4_chksum(ext4_chksum(fs_seed, &block_nr.to_le_bytes()), &block[..]);
    header.h_checksum = csum.into();
    block[..header::LEN].copy_from_slice(header.as_bytes());
}

/// Writes the entry table of `attrs` at `first` in `area` and their values from the end of
/// `area` downwards; value offsets are relative to the start of `area`. `with_hash` fills
/// `e_hash` (blocks); the kernel leaves it 0 in the inode (`ext4_xattr_set_entry` hashes only
/// when `is_block` or for ea_inode values). `area` must be zero and large enough.
fn write_entries(area: &mut [u8], first: usize, attrs: &[Attr], with_hash: bool) {
    let mut at = first;
    let mut values_start = area.len();
    for attr in attrs {
        // `Attr::parse` and `place_xattrs` bound these: names of at most 255 bytes, values
        // within one block (offsets below 4096).
        fn too_long<T>() -> T {
            unreachable!("xattr entry fields beyond their on-disk width")
        }
        let value_size = u32::try_from(attr.value.len()).unwrap_or_else(|_| too_long());
        let mut fixed = XattrEntry {
            e_name_len: u8::try_from(attr.suffix.len()).unwrap_or_else(|_| too_long()),
            e_name_index: attr.index as u8,
            e_value_offs: 0.into(),
            e_value_inum: 0.into(), // no ea_inode
            e_value_size: value_size.into(),
            e_hash: 0.into(),
        };
        let e = &mut area[at..at + attr.entry_len()];
        e[entry::LEN..entry::LEN + attr.suffix.len()].copy_from_slice(attr.suffix);
        // An empty value takes no space and keeps e_value_offs 0, as the kernel writes it
        // (e2fsprogs points it at the current end instead; both are accepted on read).
        let value_offs = if attr.value.is_empty() {
            0
        } else {
            values_start -= pad(attr.value.len());
            area[values_start..values_start + attr.value.len()].copy_from_slice(&attr.value);
            values_start
        };
        fixed.e_value_offs = u16::try_from(value_offs)
            .unwrap_or_else(|_| too_long())
            .into();
        if with_hash {
            // For an empty value this slice is empty: the hash covers the name only.
            let padded = &area[values_start..values_start + pad(attr.value.len())];
            fixed.e_hash = entry_hash(attr.suffix, padded).into();
        }
        area[at..at + entry::LEN].copy_from_slice(fixed.as_bytes());
        at += attr.entry_len();
    }
    debug_assert!(
        at + TERMINATOR_LEN <= values_start,
        "entries overlap values"
    );
}

/// `ext4_xattr_hash_entry`: the name bytes rotated in 5 bits at a time, then the value
/// (zero-padded to 4 bytes) as little-endian words 16 bits at a time.
///
/// Name bytes are taken as *unsigned*, as the kernel's current `ext4_xattr_hash_entry` does
/// (`(unsigned char)*name`, since Linux 6.2; before, the plain `char` was signed on x86, and
/// e2fsprogs changed the same way in 1.47.0). The kernel and e2fsck >= 1.47.0 accept either
/// form on read (`ext4_xattr_hash_entry_signed`); the forms differ only for name bytes >=
/// 0x80.
fn entry_hash(name: &[u8], padded_value: &[u8]) -> u32 {
    let mut hash: u32 = 0;
    for &b in name {
        hash = hash.rotate_left(NAME_HASH_SHIFT) ^ u32::from(b);
    }
    for word in padded_value.chunks_exact(XATTR_PAD) {
        let word = u32::from_le_bytes(word.try_into().expect("4-byte chunk"));
        hash = hash.rotate_left(VALUE_HASH_SHIFT) ^ word;
    }
    hash
}

/// `ext4_xattr_rehash`: the entry hashes of a block combined 16 bits at a time; 0 if any entry
/// hash is 0 (such a block is never shared by the kernel).
pub fn block_hash(block: &[u8]) -> u32 {
    let mut hash: u32 = 0;
    let mut at = header::LEN;
    while le32(block, at) != 0 {
        let e_hash = le32(block, at + entry::HASH);
        if e_hash == 0 {
            return 0;
        }
        hash = hash.rotate_left(BLOCK_HASH_SHIFT) ^ e_hash;
        at += pad(entry::LEN + usize::from(block[at + entry::NAME_LEN]));
    }
    hash
}

/// The namespace index (`e_name_index`) and name suffix an attribute is stored under.
#[cfg(any(test, feature = "internals"))] // only the tests' cross-check with mke2fs reads it
pub fn stored_name(xattr: &Xattr) -> Result<(u8, &[u8]), XattrError> {
    let attr = Attr::parse(xattr)?;
    Ok((attr.index as u8, attr.suffix))
}

/// Converts a POSIX ACL from the VFS/tar form (`posix_acl_xattr`: le32 version 2, then
/// {le16 tag, le16 perm, le32 id} per entry) to ext4's (`fs/ext4/acl.c` `ext4_acl_to_disk`:
/// le32 version 1, then {tag, perm} for the owner, owning group, mask and other, and
/// {tag, perm, id} for named users and groups). Returns why the input is malformed.
pub(crate) fn posix_acl_to_disk(value: &[u8]) -> Result<Vec<u8>, String> {
    let Some((version, entries)) = value.split_first_chunk::<{ acl::HEADER_LEN }>() else {
        return Err(format!(
            "{} bytes, shorter than the version header",
            value.len()
        ));
    };
    let version = u32::from_le_bytes(*version);
    if version != acl::XATTR_VERSION {
        return Err(format!(
            "version {version}, expected {}",
            acl::XATTR_VERSION
        ));
    }
    if entries.is_empty() || entries.len() % acl::FULL_ENTRY_LEN != 0 {
        return Err(format!(
            "{} bytes of entries, not a positive multiple of {}",
            entries.len(),
            acl::FULL_ENTRY_LEN
        ));
    }
    let mut out = Vec::with_capacity(value.len());
    out.extend_from_slice(&acl::EXT4_VERSION.to_le_bytes());
    for (i, e) in entries.chunks_exact(acl::FULL_ENTRY_LEN).enumerate() {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        match tag {
            acl::USER_OBJ | acl::GROUP_OBJ | acl::MASK | acl::OTHER => {
                out.extend_from_slice(&e[..acl::SHORT_ENTRY_LEN]);
            }
            acl::USER | acl::GROUP => out.extend_from_slice(e),
            _ => return Err(format!("entry {i}: unknown tag {tag:#x}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // fixtures: small, known values
mod tests {
    use super::*;
    use d2l_disk::bytes::put_le32;

    fn x(name: &[u8], value: &[u8]) -> Xattr {
        (name.into(), value.into())
    }

    /// `security.capability` in `vfs_cap_data` revision 2: magic_etc = REVISION_2 |
    /// FLAGS_EFFECTIVE, permitted = CAP_DAC_OVERRIDE | CAP_FOWNER (0x0a, a newline byte).
    const CAP: [u8; 20] = [
        0x01, 0x00, 0x00, 0x02, // magic_etc
        0x0a, 0x00, 0x00, 0x00, // permitted (low)
        0x00, 0x00, 0x00, 0x00, // inheritable (low)
        0x00, 0x00, 0x00, 0x00, // permitted (high)
        0x00, 0x00, 0x00, 0x00, // inheritable (high)
    ];

    /// Values of this test module's fixtures were computed with an independent Python
    /// implementation of `ext4_xattr_hash_entry`, `ext4_xattr_rehash` and bitwise CRC32C.
    fn big() -> Vec<u8> {
        (0..200u32).map(|i| i as u8).collect()
    }

    #[test]
    fn ibody_fixture() {
        let p = place_xattrs(&[x(b"security.capability", &CAP), x(b"user.a", b"xyz")]).unwrap();
        assert!(p.block.is_none());
        #[rustfmt::skip]
        let mut expected: Vec<u8> = vec![
            0x00, 0x00, 0x02, 0xea,             // h_magic 0xEA020000
            // entry 1, ibody offset 4 (offset base 0)
            10,                                 // e_name_len "capability"
            6,                                  // e_name_index security
            72, 0,                              // e_value_offs: 92 - 20
            0, 0, 0, 0,                         // e_value_inum
            20, 0, 0, 0,                        // e_value_size
            0, 0, 0, 0,                         // e_hash: 0 in the inode
            b'c', b'a', b'p', b'a', b'b', b'i', b'l', b'i', b't', b'y', 0, 0, // name, padded
            // entry 2, ibody offset 32
            1,                                  // e_name_len "a"
            1,                                  // e_name_index user
            68, 0,                              // e_value_offs: 72 - pad(3)
            0, 0, 0, 0,                         // e_value_inum
            3, 0, 0, 0,                         // e_value_size
            0, 0, 0, 0,                         // e_hash
            b'a', 0, 0, 0,                      // name, padded
            0, 0, 0, 0,                         // end of entries, ibody offset 52
        ];
        expected.resize(4 + 68, 0); // free space up to the values
        expected.extend_from_slice(b"xyz\0"); // value 2 at 4 + 68, padded
        expected.extend_from_slice(&CAP); // value 1 at 4 + 72, up to the end
        assert_eq!(p.ibody.as_slice(), expected.as_slice());
    }

    #[test]
    fn block_fixture() {
        // user.a fits the inode (24 bytes of 88); user.big (20 + 200) does not after it.
        let p = place_xattrs(&[x(b"user.a", b"xyz"), x(b"user.big", &big())]).unwrap();
        assert_eq!(&p.ibody[..4], &XATTR_MAGIC.to_le_bytes());
        assert_eq!(p.ibody[4 + entry::NAME_LEN], 1);
        let block = p.block.expect("user.big goes to the block");
        #[rustfmt::skip]
        let head: [u8; 56] = [
            0x00, 0x00, 0x02, 0xea,             // h_magic
            1, 0, 0, 0,                         // h_refcount
            1, 0, 0, 0,                         // h_blocks
            0x41, 0x83, 0x07, 0x06,             // h_hash: rehash of the one entry = its hash
            0, 0, 0, 0,                         // h_checksum: set by finish_block
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // h_reserved
            // entry at 32
            3,                                  // e_name_len "big"
            1,                                  // e_name_index user
            0x38, 0x0f,                         // e_value_offs 3896 = 4096 - 200
            0, 0, 0, 0,                         // e_value_inum
            200, 0, 0, 0,                       // e_value_size
            0x41, 0x83, 0x07, 0x06,             // e_hash 0x06078341
            b'b', b'i', b'g', 0,                // name, padded
            0, 0, 0, 0,                         // end of entries
        ];
        assert_eq!(&block[..56], &head);
        assert!(block[56..3896].iter().all(|&b| b == 0));
        assert_eq!(&block[3896..], big().as_slice());
    }

    #[test]
    fn finish_block_sets_refcount_and_checksum() {
        let p = place_xattrs(&[x(b"user.a", b"xyz"), x(b"user.big", &big())]).unwrap();
        let mut block = p.block.unwrap();
        finish_block(&mut block, 3, 0x1234_5678_9abc, 0xdead_beef);
        assert_eq!(le32(&block[..], header::REFCOUNT), 3);
        assert_eq!(le32(&block[..], header::CHECKSUM), 0x085a_624d);
        // Idempotent: the old checksum does not feed the new one.
        let before = block.clone();
        finish_block(&mut block, 3, 0x1234_5678_9abc, 0xdead_beef);
        assert_eq!(block, before);
    }

    #[test]
    fn entry_hash_reference_values() {
        assert_eq!(entry_hash(b"big", &big()), 0x0607_8341);
        // Value padded with zeros to 4 bytes before hashing.
        assert_eq!(entry_hash(b"a", b"xyz\0"), 0x001b_7978);
        // Name bytes >= 0x80 are unsigned (kernel >= 6.2); the legacy signed form would be
        // 0x5696.
        assert_eq!(entry_hash(b"\xe9t\xe9", b""), 0x0003_aa69);
    }

    #[test]
    fn block_entries_sorted_by_index_then_length_then_name() {
        let v = [b'x'; 100];
        // Sorted by full name, as d2l passes them; each is too big for what is left of the
        // inode area, so all go to the block.
        let input = [
            x(b"security.x", &v),
            x(b"trusted.z", &v),
            x(b"user.a", &v),
            x(b"user.bb", &v),
            x(b"user.c", &v),
        ];
        let p = place_xattrs(&input).unwrap();
        assert!(
            p.ibody.iter().all(|&b| b == 0),
            "nothing in the inode: all zero"
        );
        let block = p.block.unwrap();
        let mut names = Vec::new();
        let mut at = header::LEN;
        while le32(&block[..], at) != 0 {
            let len = usize::from(block[at + entry::NAME_LEN]);
            let name = &block[at + entry::LEN..at + entry::LEN + len];
            names.push((
                block[at + entry::NAME_INDEX],
                String::from_utf8_lossy(name).into_owned(),
            ));
            at += pad(entry::LEN + len);
        }
        let expect = [(1, "a"), (1, "c"), (1, "bb"), (4, "z"), (6, "x")];
        let expect: Vec<_> = expect.iter().map(|&(i, n)| (i, n.to_owned())).collect();
        assert_eq!(names, expect);
        // Values packed from the end, in entry order.
        assert_eq!(u16::from_le_bytes([block[34], block[35]]), 4096 - 100);
    }

    #[test]
    fn block_hash_folds_entry_hashes_and_is_zero_if_one_is() {
        let p = place_xattrs(&[x(b"user.a", &[b'x'; 100]), x(b"user.c", &[b'y'; 100])]).unwrap();
        let mut block = p.block.unwrap();
        // Entry hashes 0x78197878 and 0x791a7979.
        assert_eq!(le32(&block[..], header::LEN + entry::HASH), 0x7819_7878);
        assert_eq!(le32(&block[..], header::HASH), 0x0162_0160);
        put_le32(&mut block[..], header::LEN + entry::HASH, 0);
        assert_eq!(block_hash(&block[..]), 0);
    }

    #[test]
    fn first_fit_keeps_later_small_attributes_in_the_inode() {
        // 28 + 4 fits, then 200 bytes does not, then 24 still fits: ibody a, c; block b.
        let p = place_xattrs(&[
            x(b"user.a", b"1234"),
            x(b"user.b", &[0; 200]),
            x(b"user.c", b"1"),
        ])
        .unwrap();
        assert_eq!(p.ibody[4 + entry::LEN], b'a');
        assert_eq!(p.ibody[4 + 20 + entry::LEN], b'c');
        let block = p.block.unwrap();
        assert_eq!(block[header::LEN + entry::LEN], b'b');
    }

    #[test]
    fn ibody_exactly_full() {
        // 4 magic + entry (16 + 4) + 4 terminator + 68-byte value = 96.
        let p = place_xattrs(&[x(b"user.abcd", &[7; 68])]).unwrap();
        assert!(p.block.is_none());
        assert_eq!(u16::from_le_bytes([p.ibody[6], p.ibody[7]]), 24);
        assert_eq!(&p.ibody[24..28], &[0; 4]); // terminator right before the value
        assert_eq!(&p.ibody[28..], &[7; 68]);
        // One more byte of value and it goes to the block.
        let p = place_xattrs(&[x(b"user.abcd", &[7; 69])]).unwrap();
        assert!(p.ibody.iter().all(|&b| b == 0));
        assert!(p.block.is_some());
    }

    #[test]
    fn empty_value_has_offset_zero_and_name_only_hash() {
        let p = place_xattrs(&[x(b"user.big", &[1; 100]), x(b"user.e", b"")]).unwrap();
        // user.big (120 bytes) goes to the block, the empty user.e into the inode.
        let e = &p.ibody[4..];
        assert_eq!(e[entry::NAME_LEN], 1);
        assert_eq!(&e[entry::VALUE_OFFS..entry::VALUE_OFFS + 2], &[0, 0]);
        assert_eq!(le32(e, entry::VALUE_SIZE), 0);
        // In a block (the inode is full), the hash covers the name only.
        let p = place_xattrs(&[x(b"user.abcd", &[7; 68]), x(b"user.e", b"")]).unwrap();
        let block = p.block.unwrap();
        let at = header::LEN;
        assert_eq!(block[at + entry::LEN], b'e');
        assert_eq!(u16::from_le_bytes([block[at + 2], block[at + 3]]), 0);
        assert_eq!(le32(&block[..], at + entry::HASH), u32::from(b'e'));
    }

    #[test]
    fn too_large_names_the_attribute() {
        let v = vec![0u8; 3000];
        let err = place_xattrs(&[x(b"user.one", &v), x(b"user.two", &v)]).unwrap_err();
        match err {
            XattrError::TooLarge { name, needed, free } => {
                assert_eq!(name, "user.two");
                assert_eq!(needed, 16 + 4 + 3000);
                assert_eq!(free, 4096 - 32 - 4 - (16 + 4 + 3000));
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn names_map_to_indexes() {
        let idx = |name: &[u8]| {
            let xa = x(name, b"");
            Attr::parse(&xa).map(|a| (a.index as u8, a.suffix.to_vec()))
        };
        assert_eq!(idx(b"user.foo").unwrap(), (1, b"foo".to_vec()));
        assert_eq!(
            idx(b"trusted.overlay.opaque").unwrap(),
            (4, b"overlay.opaque".to_vec())
        );
        assert_eq!(idx(b"security.selinux").unwrap(), (6, b"selinux".to_vec()));
        assert_eq!(idx(b"system.richacl").unwrap(), (8, vec![]));
        assert_eq!(idx(b"system.data").unwrap(), (7, b"data".to_vec()));
        assert!(matches!(
            idx(b"os2.foo"),
            Err(XattrError::UnknownNamespace(_))
        ));
        assert!(matches!(idx(b"user"), Err(XattrError::UnknownNamespace(_))));
        assert!(matches!(idx(b"user."), Err(XattrError::BadName(_))));
        assert!(matches!(idx(b"user.a\0b"), Err(XattrError::BadName(_))));
        let long = [b"user.".as_slice(), &[b'n'; 256]].concat();
        assert!(matches!(idx(&long), Err(XattrError::BadName(_))));
        let longest = [b"user.".as_slice(), &[b'n'; 255]].concat();
        assert!(idx(&longest).is_ok());
    }

    /// `setfacl -m u:1234:rx,g:5678:r` on a 0644 file, in the VFS form.
    #[rustfmt::skip]
    const ACL_XATTR: [u8; 52] = [
        2, 0, 0, 0,                             // a_version POSIX_ACL_XATTR_VERSION
        0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,  // USER_OBJ rw-, id unused
        0x02, 0, 5, 0, 0xd2, 0x04, 0, 0,        // USER 1234 r-x
        0x04, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,  // GROUP_OBJ r--
        0x08, 0, 4, 0, 0x2e, 0x16, 0, 0,        // GROUP 5678 r--
        0x10, 0, 5, 0, 0xff, 0xff, 0xff, 0xff,  // MASK r-x
        0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,  // OTHER r--
    ];

    #[test]
    fn acl_converted_to_ext4_form() {
        #[rustfmt::skip]
        let expected: [u8; 36] = [
            1, 0, 0, 0,                         // a_version EXT4_ACL_VERSION
            0x01, 0, 6, 0,                      // USER_OBJ, short
            0x02, 0, 5, 0, 0xd2, 0x04, 0, 0,    // USER 1234, full
            0x04, 0, 4, 0,                      // GROUP_OBJ, short
            0x08, 0, 4, 0, 0x2e, 0x16, 0, 0,    // GROUP 5678, full
            0x10, 0, 5, 0,                      // MASK, short
            0x20, 0, 4, 0,                      // OTHER, short
        ];
        assert_eq!(posix_acl_to_disk(&ACL_XATTR).unwrap(), expected);
        // And through place_xattrs: name index 2, empty name, converted value.
        let p = place_xattrs(&[x(b"system.posix_acl_access", &ACL_XATTR)]).unwrap();
        let e = &p.ibody[4..];
        assert_eq!((e[entry::NAME_LEN], e[entry::NAME_INDEX]), (0, 2));
        assert_eq!(le32(e, entry::VALUE_SIZE), 36);
        assert_eq!(&p.ibody[96 - 36..], &expected);
        let p = place_xattrs(&[x(b"system.posix_acl_default", &ACL_XATTR)]).unwrap();
        assert_eq!(p.ibody[4 + entry::NAME_INDEX], 3);
    }

    #[test]
    fn malformed_acls_are_refused() {
        let bad = |v: &[u8]| {
            let err = place_xattrs(&[x(b"system.posix_acl_access", v)]).unwrap_err();
            assert!(matches!(err, XattrError::BadAcl(_)), "{err}");
        };
        bad(b"");
        bad(&[2, 0]); // shorter than the header
        bad(&[2, 0, 0, 0]); // no entries
        bad(&ACL_XATTR[..51]); // truncated entry
        let mut v = ACL_XATTR;
        v[0] = 1; // ext4's own version is not the VFS form
        bad(&v);
        let mut v = ACL_XATTR;
        v[4] = 0x40; // unknown tag
        bad(&v);
    }
}
