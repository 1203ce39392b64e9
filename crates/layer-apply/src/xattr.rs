//! Which extended attributes from a layer reach the rootfs.

use crate::tar_reader::{EntryKind, PaxXattr};
use d2l_rootfs::Xattr;

/// Choices about xattrs that a user may change.
#[derive(Debug, Clone, Copy, Default)]
pub struct XattrPolicy {
    /// Keep `security.selinux` labels (dropped by default: the labels of the build host's
    /// policy rarely match the target system's, and a wrong label blocks boot).
    pub keep_selinux: bool,
}

/// Applies the keep/drop rules and returns the attributes sorted by name, one per name.
/// For the same name, `SCHILY.xattr` wins over `LIBARCHIVE.xattr`; among equals the last wins.
pub fn filter(raw: Vec<PaxXattr>, kind: EntryKind, policy: XattrPolicy) -> Vec<Xattr> {
    let special = matches!(
        kind,
        EntryKind::Symlink | EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo
    );
    let mut chosen: std::collections::BTreeMap<Vec<u8>, (bool, Vec<u8>)> = Default::default();
    for x in raw {
        if !keep(&x.name, special, policy) {
            continue;
        }
        match chosen.get(&x.name) {
            Some((true, _)) if !x.schily => {}
            _ => {
                chosen.insert(x.name, (x.schily, x.value));
            }
        }
    }
    chosen
        .into_iter()
        .map(|(name, (_, value))| (name.into_boxed_slice(), value.into_boxed_slice()))
        .collect()
}

/// Bytes of a set of xattrs as [`MAX_XATTR_BYTES`](crate::MAX_XATTR_BYTES) counts them:
/// names plus values.
pub fn total_bytes(xattrs: &[Xattr]) -> usize {
    xattrs
        .iter()
        .map(|(n, v)| n.len().saturating_add(v.len()))
        .fold(0, usize::saturating_add)
}

fn keep(name: &[u8], special: bool, policy: XattrPolicy) -> bool {
    if name.starts_with(b"trusted.") || name == b"system.nfs4_acl" {
        return false;
    }
    if name == b"security.selinux" && !policy.keep_selinux {
        return false;
    }
    // The kernel refuses user.* on anything but regular files and directories.
    if special && name.starts_with(b"user.") {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(name: &str, value: &[u8], schily: bool) -> PaxXattr {
        PaxXattr {
            name: name.into(),
            value: value.to_vec(),
            schily,
        }
    }

    #[test]
    fn keep_and_drop_rules() {
        let raw = vec![
            x("security.capability", b"\x01\n\x00", true),
            x("security.selinux", b"system_u:object_r:bin_t", true),
            x("trusted.overlay.opaque", b"y", true),
            x("system.nfs4_acl", b"..", true),
            x("user.note", b"LIB", false),
            x("user.note", b"SCHILY", true),
            x("user.other", b"1", false),
        ];
        let kept = filter(raw.clone(), EntryKind::File, XattrPolicy::default());
        let names: Vec<_> = kept
            .iter()
            .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v.to_vec()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("security.capability".into(), b"\x01\n\x00".to_vec()),
                ("user.note".into(), b"SCHILY".to_vec()),
                ("user.other".into(), b"1".to_vec()),
            ]
        );
        let on_link = filter(raw.clone(), EntryKind::Symlink, XattrPolicy::default());
        assert_eq!(on_link.len(), 1);
        let selinux = filter(raw, EntryKind::File, XattrPolicy { keep_selinux: true });
        assert!(selinux.iter().any(|(n, _)| &n[..] == b"security.selinux"));
    }

    #[test]
    fn schily_wins_whatever_the_order() {
        let raw = vec![x("user.a", b"S", true), x("user.a", b"L", false)];
        let kept = filter(raw, EntryKind::File, XattrPolicy::default());
        assert_eq!(&kept[0].1[..], b"S");
    }
}
