//! Making a container's root filesystem a machine's, in the tree before it is written:
//! fstab, hostname, hosts, machine-id, container marker files, root's password.
//!
//! Every change comes back as a [`Change`] line for the build's summary; things the user
//! should know but that are not errors come back as warnings.

use d2l_rootfs::{ContentStore, InodeKind, Metadata, Rootfs, Timestamp};
use sha2::{Digest, Sha512};

use crate::error::{Error, Result};

/// Largest /etc/shadow or /etc/group read (they are text files of a few KiB).
const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Seconds in a day, for shadow's "days since the epoch" field (shadow(5)).
const SECONDS_PER_DAY: i64 = 86_400;
/// Longest hostname (`HOST_NAME_MAX` on Linux).
const HOST_NAME_MAX: usize = 64;
/// Files whose presence tells software it runs in a container (Docker, Podman).
const CONTAINER_MARKERS: &[&str] = &["/.dockerenv", "/.containerenv"];
/// The warning when no password is given and root's is locked or missing.
const ROOT_LOCKED: &str = "no --root-password: root cannot log in (the image's accounts are kept)";

/// What [`prepare`] writes.
#[derive(Debug, Clone)]
pub struct MachineOptions {
    /// `--hostname` (d2l's default is `d2l`).
    pub hostname: String,
    /// `--root-password` or the contents of `--root-password-file` (one trailing newline
    /// already stripped by the caller); `None` keeps the image's accounts.
    pub root_password: Option<String>,
    /// The root filesystem's UUID in text form, for /etc/fstab.
    pub fs_uuid: String,
    /// Salt for root's password hash (see [`salt_from`]); `None` derives one from `fs_uuid`.
    pub salt: Option<String>,
}

/// One change made to the tree, as a line for the build's summary, e.g.
/// `wrote /etc/fstab (root by UUID=…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change(pub String);

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Makes the tree a machine's. Returns the changes made and warnings for the user.
/// Files written belong to root, mode 0644, with the image's newest mtime.
pub fn prepare(
    rootfs: &mut Rootfs<impl ContentStore>,
    options: &MachineOptions,
) -> Result<(Vec<Change>, Vec<String>)> {
    check_hostname(&options.hostname)?;
    let mtime = newest_mtime(rootfs);
    let meta = |mode: u16| Metadata {
        mode,
        uid: 0,
        gid: 0,
        mtime,
        xattrs: Vec::new(),
    };
    let mut changes = Vec::new();
    let mut warnings = Vec::new();

    let uuid = &options.fs_uuid;
    write(
        rootfs,
        "/etc/fstab",
        meta(0o644),
        format!("# Written by d2l.\nUUID={uuid} / ext4 rw,relatime,errors=remount-ro 0 1\n")
            .as_bytes(),
    )?;
    changes.push(Change(format!("wrote /etc/fstab (root by UUID={uuid})")));

    let host = &options.hostname;
    write(
        rootfs,
        "/etc/hostname",
        meta(0o644),
        format!("{host}\n").as_bytes(),
    )?;
    changes.push(Change(format!("wrote /etc/hostname ({host})")));
    write(rootfs, "/etc/hosts", meta(0o644), hosts(host).as_bytes())?;
    changes.push(Change(format!(
        "wrote /etc/hosts (localhost, 127.0.1.1 {host})"
    )));

    for marker in CONTAINER_MARKERS {
        let removed = rootfs.remove(marker.as_bytes()).map_err(edit(marker))?;
        if removed {
            changes.push(Change(format!("removed {marker}")));
        }
    }

    write(rootfs, "/etc/machine-id", meta(0o444), b"")?;
    changes.push(Change(
        "wrote an empty /etc/machine-id (systemd makes one on first boot)".to_owned(),
    ));

    let shadow = read(rootfs, "/etc/shadow")?;
    match &options.root_password {
        Some(password) => {
            let salt = match &options.salt {
                Some(s) => s.clone(),
                None => salt_from(options.fs_uuid.as_bytes()),
            };
            let hash = sha512_crypt(password, &salt);
            let days = (mtime.seconds > 0).then_some(mtime.seconds / SECONDS_PER_DAY);
            let text = String::from_utf8_lossy(shadow.as_deref().unwrap_or_default());
            let new = set_root_password(&text, &hash, days);
            let shadow_meta = shadow_metadata(rootfs, mtime)?;
            write(rootfs, "/etc/shadow", shadow_meta, new.as_bytes())?;
            changes.push(Change(
                "set root's password in /etc/shadow (SHA-512 crypt)".to_owned(),
            ));
        }
        None => {
            let text = String::from_utf8_lossy(shadow.as_deref().unwrap_or_default());
            match root_password_field(&text) {
                Some("") => warnings.push(
                    "root has an empty password in the image: anyone at the console can log \
                     in as root (set one with --root-password)"
                        .to_owned(),
                ),
                Some(f) if !(f.starts_with('!') || f.starts_with('*')) => {}
                _ => warnings.push(ROOT_LOCKED.to_owned()),
            }
        }
    }
    Ok((changes, warnings))
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
fn check_hostname(host: &str) -> Result<()> {
    let bad = |reason: &str| Error::MachineOption {
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

/// The newest mtime in the tree: a reproducible time for the files written.
fn newest_mtime(rootfs: &Rootfs<impl ContentStore>) -> Timestamp {
    rootfs
        .tree()
        .inodes()
        .map(|(_, inode)| inode.mtime)
        .max()
        .unwrap_or_default()
}

/// Keeps an existing /etc/shadow's mode and owner; else 0640 root:shadow when the image has
/// a shadow group, else 0600 root:root.
fn shadow_metadata(rootfs: &mut Rootfs<impl ContentStore>, mtime: Timestamp) -> Result<Metadata> {
    let mut meta = Metadata {
        mode: 0o600,
        uid: 0,
        gid: 0,
        mtime,
        xattrs: Vec::new(),
    };
    if let Some(id) = rootfs.resolve(b"/etc/shadow") {
        let inode = rootfs.tree().inode(id);
        if matches!(inode.kind, InodeKind::File(_)) {
            meta.mode = inode.mode;
            meta.uid = inode.uid;
            meta.gid = inode.gid;
            meta.xattrs = inode.xattrs.clone();
            return Ok(meta);
        }
    }
    let group = read(rootfs, "/etc/group")?;
    let group = String::from_utf8_lossy(group.as_deref().unwrap_or_default()).into_owned();
    if let Some(gid) = group.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some("shadow"))
            .then(|| fields.nth(1)?.parse::<u32>().ok())
            .flatten()
    }) {
        meta.mode = 0o640;
        meta.gid = gid;
    }
    Ok(meta)
}

/// Root's password field in shadow text, if there is a root line.
fn root_password_field(shadow: &str) -> Option<&str> {
    shadow
        .lines()
        .find_map(|line| line.strip_prefix("root:"))
        .map(|rest| rest.split(':').next().unwrap_or_default())
}

/// `shadow` with root's password field set to `hash` and its last-change field (3) set to
/// `days` (kept when `None`, but never left at 0, which would force a change at login).
/// Other lines and fields are kept; a root line is added first when there is none.
fn set_root_password(shadow: &str, hash: &str, days: Option<i64>) -> String {
    let mut out = String::with_capacity(shadow.len() + 128);
    let mut found = false;
    for line in shadow.lines() {
        if !found && line.starts_with("root:") {
            found = true;
            let mut fields: Vec<String> = line.split(':').map(str::to_owned).collect();
            // name:password:lastchg:min:max:warn:inactive:expire:reserved
            fields.resize(fields.len().max(9), String::new());
            fields[1] = hash.to_owned();
            match days {
                Some(d) => fields[2] = d.to_string(),
                None if fields[2] == "0" => fields[2].clear(),
                None => {}
            }
            out.push_str(&fields.join(":"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if !found {
        let days = days.map(|d| d.to_string()).unwrap_or_default();
        out.insert_str(0, &format!("root:{hash}:{days}:0:99999:7:::\n"));
    }
    out
}

fn write(
    rootfs: &mut Rootfs<impl ContentStore>,
    path: &str,
    meta: Metadata,
    content: &[u8],
) -> Result<()> {
    rootfs
        .write_file(path.as_bytes(), meta, content)
        .map(drop)
        .map_err(edit(path))
}

fn read(rootfs: &mut Rootfs<impl ContentStore>, path: &str) -> Result<Option<Vec<u8>>> {
    rootfs
        .read_file(path.as_bytes(), MAX_CONFIG_BYTES)
        .map_err(edit(path))
}

fn edit<E: std::fmt::Display>(path: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Edit {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// The crypt(3) base-64 alphabet.
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Rounds of SHA-crypt without a `rounds=` field (Drepper, "Unix crypt using SHA-256 and
/// SHA-512", rounds_default).
const SHA_CRYPT_ROUNDS: usize = 5000;
/// Longest salt SHA-crypt uses; longer salts are cut (same spec, salt_len_max).
const SHA_CRYPT_SALT_MAX: usize = 16;
/// Output byte order of SHA-512 crypt's base-64 encoding, three bytes per group (same spec,
/// step 22 e for SHA-512); the last byte, 63, is encoded alone.
const SHA512_CRYPT_ORDER: [[usize; 3]; 21] = [
    [0, 21, 42],
    [22, 43, 1],
    [44, 2, 23],
    [3, 24, 45],
    [25, 46, 4],
    [47, 5, 26],
    [6, 27, 48],
    [28, 49, 7],
    [50, 8, 29],
    [9, 30, 51],
    [31, 52, 10],
    [53, 11, 32],
    [12, 33, 54],
    [34, 55, 13],
    [56, 14, 35],
    [15, 36, 57],
    [37, 58, 16],
    [59, 17, 38],
    [18, 39, 60],
    [40, 61, 19],
    [62, 20, 41],
];

/// A 16-character salt of the crypt alphabet `[./0-9A-Za-z]`, derived from `seed` (the lead
/// passes the image digest, so the same image and password give the same hash).
pub fn salt_from(seed: &[u8]) -> String {
    let digest = Sha512::digest(seed);
    digest[..SHA_CRYPT_SALT_MAX]
        .iter()
        .map(|&b| char::from(CRYPT_ALPHABET[usize::from(b) % CRYPT_ALPHABET.len()]))
        .collect()
}

/// SHA-512 crypt (`$6$salt$hash`, 5000 rounds, no `rounds=` field) as glibc's crypt(3)
/// computes it: Drepper, "Unix crypt using SHA-256 and SHA-512". The salt is cut at its
/// first `$` and at 16 bytes.
pub fn sha512_crypt(password: &str, salt: &str) -> String {
    let p = password.as_bytes();
    let salt = salt.split('$').next().unwrap_or_default();
    let s = &salt.as_bytes()[..salt.len().min(SHA_CRYPT_SALT_MAX)];

    // Steps 4-8: digest B.
    let b = Sha512::new()
        .chain_update(p)
        .chain_update(s)
        .chain_update(p)
        .finalize();
    // Steps 1-3, 9-12: digest A.
    let mut a = Sha512::new().chain_update(p).chain_update(s);
    let mut left = p.len();
    while left > b.len() {
        a.update(b.as_slice());
        left -= b.len();
    }
    a.update(&b[..left]);
    let mut n = p.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(b.as_slice());
        } else {
            a.update(p);
        }
        n >>= 1;
    }
    let a = a.finalize();
    // Steps 13-16: byte sequence P.
    let mut dp = Sha512::new();
    for _ in 0..p.len() {
        dp.update(p);
    }
    let dp = dp.finalize();
    let p_seq: Vec<u8> = dp.iter().cycle().take(p.len()).copied().collect();
    // Steps 17-20: byte sequence S.
    let mut ds = Sha512::new();
    for _ in 0..16 + usize::from(a[0]) {
        ds.update(s);
    }
    let ds = ds.finalize();
    let s_seq: Vec<u8> = ds.iter().cycle().take(s.len()).copied().collect();
    // Step 21: the rounds.
    let mut c = a;
    for i in 0..SHA_CRYPT_ROUNDS {
        let mut h = Sha512::new();
        if i % 2 == 1 {
            h.update(&p_seq);
        } else {
            h.update(c.as_slice());
        }
        if i % 3 != 0 {
            h.update(&s_seq);
        }
        if i % 7 != 0 {
            h.update(&p_seq);
        }
        if i % 2 == 1 {
            h.update(c.as_slice());
        } else {
            h.update(&p_seq);
        }
        c = h.finalize();
    }
    // Step 22: the string.
    let mut out = format!("$6${}$", String::from_utf8_lossy(s));
    let mut push = |w: u32, chars: usize| {
        let mut w = w;
        for _ in 0..chars {
            out.push(char::from(CRYPT_ALPHABET[(w & 0x3f) as usize]));
            w >>= 6;
        }
    };
    for [i, j, k] in SHA512_CRYPT_ORDER {
        push(
            u32::from(c[i]) << 16 | u32::from(c[j]) << 8 | u32::from(c[k]),
            4,
        );
    }
    push(u32::from(c[63]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_crypt_spec_vectors() {
        // Drepper's test vectors with the default rounds.
        assert_eq!(
            sha512_crypt("Hello world!", "saltstring"),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
        assert_eq!(
            sha512_crypt("This is just a test", "toolongsaltstring"),
            "$6$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"
        );
    }

    #[test]
    fn salt_is_sixteen_crypt_characters_and_deterministic() {
        let salt = salt_from(b"sha256:0123");
        assert_eq!(salt.len(), 16);
        assert!(salt.bytes().all(|b| CRYPT_ALPHABET.contains(&b)));
        assert_eq!(salt, salt_from(b"sha256:0123"));
        assert_ne!(salt, salt_from(b"sha256:0124"));
    }

    #[test]
    fn root_line_replaced_fields_kept() {
        let shadow = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n";
        assert_eq!(
            set_root_password(shadow, "$6$s$h", Some(19500)),
            "root:$6$s$h:19500:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
        );
        assert_eq!(
            set_root_password(shadow, "$6$s$h", None),
            "root:$6$s$h:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
        );
        // Last change 0 would force a password change at the first login.
        assert_eq!(
            set_root_password("root:!:0::::::", "$6$s$h", None),
            "root:$6$s$h:::::::\n"
        );
        assert_eq!(
            set_root_password("bin:*:1:0:99999:7:::\n", "$6$s$h", Some(2)),
            "root:$6$s$h:2:0:99999:7:::\nbin:*:1:0:99999:7:::\n"
        );
    }

    #[test]
    fn hostnames() {
        check_hostname("d2l").unwrap();
        check_hostname("web-1.example").unwrap();
        for bad in ["", "-x", "a b", "x\n", "a..b", &"a".repeat(65)] {
            check_hostname(bad).unwrap_err();
        }
    }
}
