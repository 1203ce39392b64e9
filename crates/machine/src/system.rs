//! The files every machine needs and a container lacks: /etc/fstab (root by UUID),
//! /etc/hostname, /etc/hosts; and no container marker files.

use d2l_rootfs::ContentStore;

use crate::error::{Error, Result};
use crate::files::Files;
use crate::Outcome;

/// Longest hostname (`HOST_NAME_MAX` on Linux).
const HOST_NAME_MAX: usize = 64;
/// Files whose presence tells software it runs in a container (Docker, Podman).
const CONTAINER_MARKERS: &[&str] = &["/.dockerenv", "/.containerenv"];

/// Writes fstab (with `extra` mount options for the root), hostname and hosts; removes the
/// container markers.
pub(crate) fn write<S: ContentStore>(
    files: &mut Files<'_, S>,
    hostname: &str,
    fs_uuid: &str,
    extra: &[&str],
) -> Result<Outcome> {
    check_hostname(hostname)?;
    let mut out = Outcome::default();
    let meta = files.root(0o644);
    let options: Vec<&str> = ["rw", "relatime", "errors=remount-ro"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let options = options.join(",");
    files.write(
        "/etc/fstab",
        meta.clone(),
        format!("# Written by d2l.\nUUID={fs_uuid} / ext4 {options} 0 1\n").as_bytes(),
    )?;
    out.change(format!("wrote /etc/fstab (root by UUID={fs_uuid})"));
    files.write(
        "/etc/hostname",
        meta.clone(),
        format!("{hostname}\n").as_bytes(),
    )?;
    out.change(format!("wrote /etc/hostname ({hostname})"));
    files.write("/etc/hosts", meta, hosts(hostname).as_bytes())?;
    out.change(format!(
        "wrote /etc/hosts (localhost, 127.0.1.1 {hostname})"
    ));
    for marker in CONTAINER_MARKERS {
        if files.remove(marker)? {
            out.change(format!("removed {marker}"));
        }
    }
    Ok(out)
}

/// /etc/hosts as Debian writes it for a machine named `host`.
fn hosts(host: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{host}\n\n\
         # The following lines are desirable for IPv6 capable hosts\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n"
    )
}

/// A hostname is one or more labels of letters, digits and hyphens (RFC 1123), at most
/// [`HOST_NAME_MAX`] bytes.
pub(crate) fn check_hostname(host: &str) -> Result<()> {
    let bad = |reason: &str| Error::Option {
        option: "--hostname",
        reason: format!("{host:?}: {reason}"),
    };
    if host.is_empty() || host.len() > HOST_NAME_MAX {
        return Err(bad("must be 1 to 64 characters"));
    }
    for label in host.split('.') {
        if label.is_empty()
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(
                "labels of letters, digits and inner hyphens, separated by dots",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        check_hostname("d2l").unwrap();
        check_hostname("web-1.example").unwrap();
        for bad in ["", "-x", "a b", "x\n", "a..b", &"a".repeat(65)] {
            check_hostname(bad).unwrap_err();
        }
    }
}
