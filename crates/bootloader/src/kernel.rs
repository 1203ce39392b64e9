//! Finding the kernel and initrd a machine made from an image boots.
//!
//! Layouts looked at, all in the tree before it is written:
//!
//! - `/boot/vmlinuz-VERSION` with `/boot/initrd.img-VERSION` (Debian, Ubuntu),
//!   `/boot/initramfs-VERSION.img` (Fedora, RHEL: `VERSION` ends in `.x86_64`),
//!   `/boot/initramfs-FLAVOR` (Alpine: `vmlinuz-virt`, `vmlinuz-lts`);
//! - `/vmlinuz`, `/boot/vmlinuz` and `/initrd.img` symlinks (Debian, Ubuntu);
//! - `/lib/modules/VERSION/vmlinuz` (Fedora, RHEL before `kernel-install` copies it to /boot).
//!
//! The newest version wins, versions compared naturally ([`compare_versions`]). Every path
//! returned is the real file (symlinks resolved), so a boot loader reading the filesystem
//! without following links can open it.

use std::cmp::Ordering;

use d2l_rootfs::{ContentStore, InodeId, InodeKind, Rootfs, Tree};

use crate::error::{Error, Result};

/// Symlinks followed while resolving one path (as Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;

/// Where [`find_kernel`] looks, for the error message when nothing is there.
const SEARCHED: &str = "/boot/vmlinuz-*, /vmlinuz, /boot/vmlinuz, /lib/modules/*/vmlinuz";

/// Kernel name suffixes that are not bootable images (signatures, checksums).
const NOT_KERNELS: &[&str] = &[".hmac", ".sig", ".sha256", ".signed", ".old", ".bak"];

/// The files a boot loader entry names: absolute paths inside the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// The kernel, e.g. `/boot/vmlinuz-6.1.0-50-amd64`: a regular file, never a symlink.
    pub kernel: String,
    /// The initial ramdisk, if one was found or given: a regular file.
    pub initrd: Option<String>,
    /// The symlinks the distribution moves to each new kernel and initrd on upgrade
    /// (`/vmlinuz` and `/initrd.img`, or the same in `/boot`), when they point at `kernel`
    /// and `initrd` today: a loader configured with them boots the upgraded kernel.
    pub links: Option<(String, Option<String>)>,
}

/// The kernel and initrd symlinks Debian's and Ubuntu's `linux-update-symlinks` keep
/// pointing at the newest kernel (in `/`, or in `/boot` with `image_dest=/boot`).
const UPGRADE_LINKS: &[(&str, &str)] = &[
    ("/vmlinuz", "/initrd.img"),
    ("/boot/vmlinuz", "/boot/initrd.img"),
];

impl BootFiles {
    /// The kernel and initrd paths a boot loader's configuration names: the upgrade links
    /// when the image keeps them, else the files themselves.
    pub fn loader_paths(&self) -> (&str, Option<&str>) {
        match &self.links {
            Some((kernel, initrd)) => (kernel, initrd.as_deref()),
            None => (&self.kernel, self.initrd.as_deref()),
        }
    }
}

/// The upgrade links that point at `kernel` and `initrd` (a link pair is used whole or not
/// at all: after an upgrade a loader must not pair a new kernel with a deleted initrd).
fn upgrade_links(
    tree: &Tree,
    kernel: &str,
    initrd: Option<&str>,
) -> Option<(String, Option<String>)> {
    let points_at =
        |link: &str, file: &str| resolve_file(tree, link).is_some_and(|(real, _)| real == file);
    UPGRADE_LINKS
        .iter()
        .find_map(|&(kernel_link, initrd_link)| {
            if !points_at(kernel_link, kernel) {
                return None;
            }
            match initrd {
                Some(initrd) => points_at(initrd_link, initrd)
                    .then(|| (kernel_link.to_owned(), Some(initrd_link.to_owned()))),
                None => resolve(tree, initrd_link)
                    .is_none()
                    .then(|| (kernel_link.to_owned(), None)),
            }
        })
}

/// A kernel found in the image.
#[derive(Debug, Clone)]
struct Candidate {
    /// Resolved absolute path.
    path: String,
    /// Version (or Alpine flavour) the kernel's name carries; empty when unknown.
    version: String,
}

/// Finds the kernel and initrd to boot. `kernel` and `initrd` are the `--kernel` and
/// `--initrd` overrides (paths inside the image); a kernel given without an initrd gets the
/// initrd that matches its version, if there is one.
pub fn find_kernel(
    rootfs: &mut Rootfs<impl ContentStore>,
    kernel: Option<&str>,
    initrd: Option<&str>,
) -> Result<BootFiles> {
    let tree = rootfs.tree();
    let chosen = match kernel {
        Some(path) => {
            let real = regular_file(tree, path, "--kernel")?;
            let version = file_name(&real)
                .strip_prefix("vmlinuz-")
                .unwrap_or_default()
                .to_owned();
            Candidate {
                path: real,
                version,
            }
        }
        None => newest(candidates(tree)).ok_or_else(|| Error::NoKernel {
            searched: SEARCHED.to_owned(),
        })?,
    };
    let overridden = kernel.is_some() || initrd.is_some();
    let initrd = match initrd {
        Some(path) => Some(regular_file(tree, path, "--initrd")?),
        None => matching_initrd(tree, &chosen),
    };
    // Files chosen by hand are booted by their own names.
    let links = if overridden {
        None
    } else {
        upgrade_links(tree, &chosen.path, initrd.as_deref())
    };
    Ok(BootFiles {
        kernel: chosen.path,
        initrd,
        links,
    })
}

/// Every kernel in the image, resolved, without duplicates, in search order.
fn candidates(tree: &Tree) -> Vec<Candidate> {
    let mut found: Vec<Candidate> = Vec::new();
    let mut add = |path: String, version: String| {
        if !found.iter().any(|c| c.path == path) {
            found.push(Candidate { path, version });
        }
    };
    // /boot/vmlinuz-VERSION (Debian, Ubuntu, Fedora, Alpine flavours).
    if let Some((boot, id)) = resolve(tree, "/boot") {
        for name in dir_names(tree, id) {
            let Some(version) = name.strip_prefix("vmlinuz-") else {
                continue;
            };
            if version.is_empty()
                || version.contains("rescue")
                || NOT_KERNELS.iter().any(|s| version.ends_with(s))
            {
                continue;
            }
            if let Some((real, _)) = resolve_file(tree, &format!("{boot}/{name}")) {
                let version = version_of(&real).unwrap_or_else(|| version.to_owned());
                add(real, version);
            }
        }
    }
    // The symlinks Debian's kernel hooks keep pointing at the newest kernel.
    for link in ["/vmlinuz", "/boot/vmlinuz"] {
        if let Some((real, _)) = resolve_file(tree, link) {
            let version = version_of(&real).unwrap_or_default();
            add(real, version);
        }
    }
    // /lib/modules/VERSION/vmlinuz (Fedora, RHEL images without a kernel in /boot).
    if let Some((modules, id)) = resolve(tree, "/lib/modules") {
        for version in dir_names(tree, id) {
            if let Some((real, _)) = resolve_file(tree, &format!("{modules}/{version}/vmlinuz")) {
                add(real, version);
            }
        }
    }
    found
}

/// The candidate with the newest version; among equals the first found.
fn newest(candidates: Vec<Candidate>) -> Option<Candidate> {
    let mut best: Option<Candidate> = None;
    for c in candidates {
        let better = match &best {
            None => true,
            Some(b) => compare_versions(&c.version, &b.version) == Ordering::Greater,
        };
        if better {
            best = Some(c);
        }
    }
    best
}

/// The initrd that goes with `kernel`, resolved.
fn matching_initrd(tree: &Tree, kernel: &Candidate) -> Option<String> {
    let dir = parent_dir(&kernel.path);
    let v = &kernel.version;
    let mut tries: Vec<String> = Vec::new();
    if !v.is_empty() {
        for name in [
            format!("initrd.img-{v}"),
            format!("initramfs-{v}.img"),
            format!("initramfs-{v}"),
            format!("initrd-{v}"),
            format!("initrd-{v}.img"),
        ] {
            tries.push(format!("{dir}/{name}"));
        }
        if dir.ends_with(&format!("/modules/{v}")) {
            tries.push(format!("{dir}/initramfs.img"));
            tries.push(format!("{dir}/initrd.img"));
        }
        for name in [
            format!("initrd.img-{v}"),
            format!("initramfs-{v}.img"),
            format!("initramfs-{v}"),
        ] {
            tries.push(format!("/boot/{name}"));
        }
    }
    for t in tries {
        if let Some((real, _)) = resolve_file(tree, &t) {
            return Some(real);
        }
    }
    // The /initrd.img symlinks, when they point at this kernel's initrd (or the kernel's
    // version is unknown, as for a bare /vmlinuz).
    for link in ["/initrd.img", "/boot/initrd.img"] {
        if let Some((real, _)) = resolve_file(tree, link) {
            if v.is_empty() || file_name(&real).ends_with(v.as_str()) {
                return Some(real);
            }
        }
    }
    None
}

/// The version in a kernel file name `vmlinuz-VERSION`, or of `/lib/modules/VERSION/vmlinuz`.
fn version_of(path: &str) -> Option<String> {
    let name = file_name(path);
    if let Some(v) = name.strip_prefix("vmlinuz-") {
        return Some(v.to_owned());
    }
    let dir = parent_dir(path);
    let (parent, version) = dir.rsplit_once('/')?;
    (name == "vmlinuz" && parent.ends_with("/modules")).then(|| version.to_owned())
}

/// A `--kernel`/`--initrd` path resolved to its regular file.
fn regular_file(tree: &Tree, path: &str, option: &'static str) -> Result<String> {
    let fail = |reason: &str| Error::BootFile {
        option,
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let (real, id) = resolve(tree, path).ok_or_else(|| fail("not found in the image"))?;
    match tree.inode(id).kind {
        InodeKind::File(_) => Ok(real),
        _ => Err(fail("not a regular file")),
    }
}

/// `path` resolved to a regular file.
fn resolve_file(tree: &Tree, path: &str) -> Option<(String, InodeId)> {
    let (real, id) = resolve(tree, path)?;
    matches!(tree.inode(id).kind, InodeKind::File(_)).then_some((real, id))
}

/// Resolves `path` from the image root, following symlinks in every component (absolute
/// targets from the image root, `..` never above it). Returns the real absolute path and the
/// inode, or `None` when a component is missing or links loop.
pub(crate) fn resolve(tree: &Tree, path: &str) -> Option<(String, InodeId)> {
    // Components still to walk, last first.
    let mut todo: Vec<Vec<u8>> = split_rev(path.as_bytes());
    // Components walked, each a real directory entry.
    let mut done: Vec<(Vec<u8>, InodeId)> = Vec::new();
    let mut follows = 0;
    while let Some(comp) = todo.pop() {
        match &comp[..] {
            b"" | b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let dir = done.last().map_or(tree.root(), |d| d.1);
        let id = tree.inode(dir).as_directory()?.get(&comp)?;
        if let InodeKind::Symlink(target) = &tree.inode(id).kind {
            follows += 1;
            if follows > MAX_SYMLINKS {
                return None;
            }
            if target.starts_with(b"/") {
                done.clear();
            }
            todo.extend(split_rev(target));
        } else {
            done.push((comp, id));
        }
    }
    let id = done.last().map_or(tree.root(), |d| d.1);
    let mut real = String::new();
    for (comp, _) in &done {
        real.push('/');
        real.push_str(std::str::from_utf8(comp).ok()?);
    }
    if real.is_empty() {
        real.push('/');
    }
    Some((real, id))
}

fn split_rev(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

/// Names in a directory that are UTF-8 (kernel names always are), in byte order.
fn dir_names(tree: &Tree, dir: InodeId) -> Vec<String> {
    tree.inode(dir)
        .as_directory()
        .map(|d| {
            d.entries()
                .filter_map(|(name, _)| std::str::from_utf8(name).ok().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Compares kernel versions naturally: runs of digits as numbers (`6.1.0-50` after
/// `6.1.0-9`), everything else byte by byte; at the first difference between a digit run
/// and anything else, the digits win (`6.1.10` after `6.1.rc`).
pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match (x.is_ascii_digit(), y.is_ascii_digit()) {
                (true, true) => {
                    let (na, ra) = digit_run(a);
                    let (nb, rb) = digit_run(b);
                    // Without leading zeros, a longer run is a larger number.
                    let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                    if ord != Ordering::Equal {
                        return ord;
                    }
                    (a, b) = (ra, rb);
                }
                (true, false) => return Ordering::Greater,
                (false, true) => return Ordering::Less,
                (false, false) => {
                    if x != y {
                        return x.cmp(y);
                    }
                    (a, b) = (&a[1..], &b[1..]);
                }
            },
        }
    }
}

/// The digit run at the start of `s` without leading zeros, and the rest of `s`.
fn digit_run(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    let (run, rest) = s.split_at(end);
    let start = run.iter().position(|&b| b != b'0').unwrap_or(run.len());
    (&run[start..], rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_version_order() {
        use Ordering::*;
        assert_eq!(compare_versions("6.1.0-50-amd64", "6.1.0-9-amd64"), Greater);
        assert_eq!(compare_versions("6.1.0-9-amd64", "6.1.0-50-amd64"), Less);
        assert_eq!(compare_versions("5.10.0-28-amd64", "6.1.0-9-amd64"), Less);
        assert_eq!(
            compare_versions("6.5.6-300.fc39.x86_64", "6.5.12-300.fc39.x86_64"),
            Less
        );
        assert_eq!(compare_versions("6.1.0-09", "6.1.0-9"), Equal);
        assert_eq!(compare_versions("6.1.10", "6.1.rc"), Greater);
        assert_eq!(compare_versions("6.1", "6.1.1"), Less);
        assert_eq!(compare_versions("virt", "lts"), Greater);
    }

    #[test]
    fn version_from_path() {
        assert_eq!(
            version_of("/boot/vmlinuz-6.1.0-9-amd64").as_deref(),
            Some("6.1.0-9-amd64")
        );
        assert_eq!(
            version_of("/usr/lib/modules/6.5.6-300.fc39.x86_64/vmlinuz").as_deref(),
            Some("6.5.6-300.fc39.x86_64")
        );
        assert_eq!(version_of("/boot/bzImage"), None);
    }
}
