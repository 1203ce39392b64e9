//! Reading ext4 images with e2fsprogs, a reader independent of d2l's writer: `e2fsck -fn`
//! to check one, `dumpe2fs -h` for its superblock, and `debugfs` in batch mode (one process
//! running many commands) to walk its tree and read inodes, xattrs and file data.
//!
//! ```no_run
//! use d2l_testkit::debugfs;
//! let image = std::path::Path::new("rootfs.ext4");
//! debugfs::assert_fsck_clean(image);
//! let tree = debugfs::walk(image);
//! let cmds: Vec<String> = tree.iter().map(|e| format!("stat <{}>", e.ino)).collect();
//! for out in debugfs::batch(image, &cmds) {
//!     println!("{:?}", debugfs::parse_stat(&out).links);
//! }
//! ```
//!
//! # debugfs quirks (e2fsprogs 1.47) the parsers here deal with
//!
//! * In batch mode (`-f FILE`) each command is echoed as `debugfs: COMMAND` on standard
//!   output before its output, which is how [`batch`] splits the output; errors go to
//!   standard error, unnumbered, so [`batch`] fails on anything there but the version banner.
//! * `ls -p` lists the empty entry (inode 0, no name) that starts each unused directory
//!   block, as in a fresh `lost+found`; `stat <0>` prints nothing and reports no error.
//! * `ls -p` and `stat` print uids and gids as *signed* 32-bit numbers: 4000000000 shows as
//!   -294967296.
//! * `stat` prints each time as `0xSECONDS:EXTRA -- date`: SECONDS is the raw signed 32-bit
//!   field, EXTRA packs the nanoseconds (bits 2..31) and two epoch bits that extend the
//!   seconds past 2038 (`seconds = (i32)SECONDS + (EXTRA & 3) << 32`). The date text is local
//!   time and is ignored.
//! * Device numbers: `Device major/minor number: 01:03 (hex 01:03)`, decimal first, prefixed
//!   `(New-style) ` when the inode uses the encoding for majors or minors >= 256.
//! * A fast symlink's target is printed by `stat` as `Fast link dest: "TARGET"`, unescaped;
//!   `dump` of a fast symlink fails ("short read"), while `dump` of a slow symlink gives its
//!   target.
//! * `stat` and `ea_list` print xattr values as text with C escapes or as hex bytes depending
//!   on how printable they are, and print POSIX ACLs in ext4's on-disk form; `ea_get -f FILE`
//!   writes the exact value instead, converting ACLs to the VFS form that tar carries, but
//!   with id 0 (not the kernel's 0xffffffff, `ACL_UNDEFINED_ID`) for the entries that have
//!   no qualifier (user_obj, group_obj, mask, other): see [`normalize_acl`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Panics unless `command` is on `PATH`, naming the Debian `package` that provides it. Tests
/// call it first so a missing tool fails them with a clear message rather than skipping.
pub fn require(command: &str, package: &str) {
    assert!(
        crate::which(command).is_some(),
        "`{command}` is not on PATH: install the Debian package `{package}` \
         (`apt-get install -y {package}`)"
    );
}

/// Runs a tool, panicking with a clear message when it cannot be started.
fn run(cmd: &mut Command, package: &str) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    require(&program, package);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Text of a process's standard output and error.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `e2fsck -fn IMAGE` and panics, printing its output, unless it exits 0 *and* reports
/// nothing: every line must be the version banner, a `Pass N:` heading or the summary. (Some
/// problems, such as a superblock time in the future, are reported with "Fix? no" under `-n`
/// and still exit 0; a fresh filesystem has none.)
pub fn assert_fsck_clean(image: &Path) {
    let out = run(Command::new("e2fsck").arg("-fn").arg(image), "e2fsprogs");
    let all = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "e2fsck -fn {} failed:\n{all}",
        image.display()
    );
    let name = image.to_string_lossy();
    let reported: Vec<&str> = all
        .lines()
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("e2fsck ")
                || l.starts_with("Pass ")
                || (l.starts_with(&format!("{name}: ")) && l.ends_with(" blocks")))
        })
        .collect();
    assert!(
        reported.is_empty(),
        "e2fsck -fn {} exited 0 but reported problems:\n{all}",
        image.display()
    );
}

/// The superblock as `dumpe2fs -h` prints it, field name -> value (both trimmed).
pub fn superblock(image: &Path) -> BTreeMap<String, String> {
    let out = run(Command::new("dumpe2fs").arg("-h").arg(image), "e2fsprogs");
    assert!(
        out.status.success(),
        "dumpe2fs -h {}: {}",
        image.display(),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A numeric superblock field (`Block count`, `Free blocks`, ...).
pub fn superblock_number(sb: &BTreeMap<String, String>, field: &str) -> u64 {
    let value = sb
        .get(field)
        .unwrap_or_else(|| panic!("dumpe2fs has no {field:?}"));
    value
        .parse()
        .unwrap_or_else(|_| panic!("dumpe2fs {field:?} is {value:?}, not a number"))
}

/// Runs `commands` in one `debugfs -f - IMAGE` process (read-only) and returns each command's
/// output, in order. Panics if debugfs fails, prints anything on standard error but its
/// banner (a command that failed), or its echo of the commands does not match.
pub fn batch(image: &Path, commands: &[String]) -> Vec<String> {
    require("debugfs", "e2fsprogs");
    let mut child = Command::new("debugfs")
        .arg("-f")
        .arg("-")
        .arg(image)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start debugfs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let script: String = commands.iter().map(|c| format!("{c}\n")).collect();
    // Feed the script from another thread: debugfs's output would fill the pipe otherwise.
    let feeder = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    let out = child.wait_with_output().expect("wait for debugfs");
    feeder.join().unwrap().expect("write debugfs commands");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs "))
        .collect();
    assert!(
        out.status.success() && errors.is_empty(),
        "debugfs on {} reported errors:\n{}",
        image.display(),
        errors.join("\n")
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut outputs: Vec<String> = Vec::with_capacity(commands.len());
    let mut next = commands.iter();
    for line in stdout.split_inclusive('\n') {
        if let Some(echo) = line.strip_prefix("debugfs: ") {
            let expected = next.next().expect("more echoes than commands");
            assert_eq!(echo.trim_end_matches('\n'), expected, "debugfs echo");
            outputs.push(String::new());
        } else {
            outputs
                .last_mut()
                .expect("debugfs printed something before the first echo")
                .push_str(line);
        }
    }
    assert_eq!(outputs.len(), commands.len(), "one output per command");
    outputs
}

/// An inode as `debugfs stat` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Inode number.
    pub ino: u32,
    /// `regular`, `directory`, `symlink`, `character special`, `block special`, `FIFO`.
    pub kind: String,
    /// Permission bits, setuid/setgid/sticky included.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// `i_size`.
    pub size: u64,
    /// `i_links_count`.
    pub links: u32,
    /// `i_flags`.
    pub flags: u32,
    /// Block of the external xattr block (`i_file_acl`), 0 for none.
    pub file_acl: u64,
    /// Modification time: seconds since the epoch and nanoseconds.
    pub mtime: (i64, u32),
    /// Device major and minor numbers of a device node.
    pub device: Option<(u32, u32)>,
    /// Whether the device numbers use the new (32-bit) encoding.
    pub new_style_device: bool,
    /// A fast symlink's target.
    pub fast_link: Option<String>,
    /// Names and value lengths of the xattrs, in the order debugfs lists them.
    pub xattrs: Vec<(String, usize)>,
    /// The `EXTENTS:` section, if any, as printed.
    pub extents: String,
}

/// The value after `key` in a `debugfs stat` line (up to the next run of spaces).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(key)? + key.len();
    text[at..].split_whitespace().next()
}

/// Decodes `0xSECONDS:EXTRA` (see the module docs).
fn parse_time(raw: &str) -> (i64, u32) {
    let raw = raw.trim_start_matches("0x");
    let (secs, extra) = raw.split_once(':').unwrap_or((raw, "0"));
    let secs = u32::from_str_radix(secs, 16).expect("hex seconds") as i32 as i64;
    let extra = u32::from_str_radix(extra, 16).expect("hex extra");
    (secs + (i64::from(extra & 3) << 32), extra >> 2)
}

/// Parses the output of `debugfs stat`.
pub fn parse_stat(out: &str) -> Stat {
    let num = |key: &str| -> i64 {
        field(out, key)
            .unwrap_or_else(|| panic!("no {key:?} in stat output:\n{out}"))
            .parse()
            .unwrap_or_else(|_| panic!("{key:?} is not a number in:\n{out}"))
    };
    let kind_at = out
        .find("Type: ")
        .unwrap_or_else(|| panic!("no Type: in stat output:\n{out}"))
        + "Type: ".len();
    let kind = out[kind_at..]
        .split("  ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    let mode = u32::from_str_radix(field(out, "Mode: ").expect("Mode:"), 8).expect("octal mode");
    let flags = u32::from_str_radix(
        field(out, "Flags: ")
            .expect("Flags:")
            .trim_start_matches("0x"),
        16,
    )
    .expect("hex flags");
    let mtime_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("mtime: "))
        .expect("mtime line");
    let mtime = parse_time(field(mtime_line, "mtime: ").unwrap());
    let mut device = None;
    let mut new_style_device = false;
    let mut fast_link = None;
    let mut xattrs = Vec::new();
    let mut in_xattrs = false;
    let mut extents = String::new();
    let mut in_extents = false;
    for line in out.lines() {
        if in_xattrs {
            if let Some(entry) = line.strip_prefix("  ") {
                // "  NAME (LEN) = VALUE" or "  NAME (LEN)"
                let open = entry.find(" (").expect("xattr length");
                let close = open + entry[open..].find(')').expect(")");
                let len = entry[open + 2..close].parse().expect("xattr length");
                xattrs.push((entry[..open].to_string(), len));
                continue;
            }
            in_xattrs = false;
        }
        if in_extents {
            extents.push_str(line);
            extents.push('\n');
            continue;
        }
        if line == "Extended attributes:" {
            in_xattrs = true;
        } else if line == "EXTENTS:" {
            in_extents = true;
        } else if let Some(rest) = line.strip_prefix("Fast link dest: \"") {
            fast_link = Some(rest.strip_suffix('"').expect("closing quote").to_string());
        } else if let Some(at) = line.find("Device major/minor number: ") {
            new_style_device = line.starts_with("(New-style)");
            let numbers = line[at + "Device major/minor number: ".len()..]
                .split_whitespace()
                .next()
                .unwrap();
            let (major, minor) = numbers.split_once(':').expect("major:minor");
            device = Some((major.parse().unwrap(), minor.parse().unwrap()));
        }
    }
    Stat {
        ino: num("Inode: ") as u32,
        kind,
        mode,
        uid: num("User: ") as u32,
        gid: num("Group: ") as u32,
        size: num("Size: ") as u64,
        links: num("Links: ") as u32,
        flags,
        file_acl: num("File ACL: ") as u64,
        mtime,
        device,
        new_style_device,
        fast_link,
        xattrs,
        extents,
    }
}

/// Logical and physical extents from a `stat` `EXTENTS:` section: (first logical block,
/// first physical block, length in blocks). Index blocks (`(ETB0):1234`) are skipped.
pub fn parse_extents(section: &str) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let flat = section.replace('\n', ", ");
    for item in flat.split(", ").map(str::trim) {
        let Some(rest) = item.strip_prefix('(') else {
            continue;
        };
        let (logical, physical) = rest.split_once("):").expect("(L):P");
        if logical.starts_with("ETB") {
            continue;
        }
        let logical = logical.trim_end_matches("[u]");
        let parse_range = |r: &str| -> (u64, u64) {
            match r.split_once('-') {
                Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                None => (r.parse().unwrap(), r.parse().unwrap()),
            }
        };
        let (l0, l1) = parse_range(logical);
        let (p0, _) = parse_range(physical);
        out.push((l0, p0, l1 - l0 + 1));
    }
    out
}

/// One directory entry as `debugfs ls -p` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path from the root, components joined by `/`, no leading slash.
    pub path: String,
    /// Inode number.
    pub ino: u32,
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// `st_mode` type bits of a directory.
pub const S_IFDIR: u32 = 0o040000;
/// `st_mode` mask of the type bits.
pub const S_IFMT: u32 = 0o170000;

/// Parses `debugfs ls -p` output (lines `/INO/MODE/UID/GID/NAME/SIZE/`), skipping `.`, `..`
/// and the placeholders of empty directory blocks (inode 0, empty name: `ls -p` lists them,
/// e.g. in `lost+found`). Names never contain `/`, so the name is everything between the
/// fourth and the last but one slash.
pub fn parse_ls(out: &str, dir_path: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let body = line
            .strip_prefix('/')
            .and_then(|l| l.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected ls -p line {line:?}"));
        let mut fields = body.splitn(5, '/');
        let ino: u32 = fields.next().unwrap().parse().unwrap();
        let mode = u32::from_str_radix(fields.next().unwrap(), 8).unwrap();
        let uid = fields.next().unwrap().parse::<i64>().unwrap() as u32;
        let gid = fields.next().unwrap().parse::<i64>().unwrap() as u32;
        let (name, _size) = fields.next().unwrap().rsplit_once('/').unwrap();
        if name == "." || name == ".." || ino == 0 {
            continue;
        }
        let path = if dir_path.is_empty() {
            name.to_string()
        } else {
            format!("{dir_path}/{name}")
        };
        entries.push(Entry {
            path,
            ino,
            mode,
            uid,
            gid,
        });
    }
    entries
}

/// Every entry below the root, found with `ls -p <INO>` of every directory: one debugfs
/// process per level of depth, so a deep tree costs a few dozen processes, not one per
/// directory.
pub fn walk(image: &Path) -> Vec<Entry> {
    let mut all = Vec::new();
    let mut level: Vec<(u32, String)> = vec![(2, String::new())];
    while !level.is_empty() {
        let commands: Vec<String> = level
            .iter()
            .map(|(ino, _)| format!("ls -p <{ino}>"))
            .collect();
        let outputs = batch(image, &commands);
        let mut next = Vec::new();
        for ((_, path), out) in level.iter().zip(outputs) {
            for entry in parse_ls(&out, path) {
                if entry.mode & S_IFMT == S_IFDIR {
                    next.push((entry.ino, entry.path.clone()));
                }
                all.push(entry);
            }
        }
        level = next;
    }
    all
}

/// POSIX ACL tags without a qualifier (`ACL_USER_OBJ`, `ACL_GROUP_OBJ`, `ACL_MASK`,
/// `ACL_OTHER`, linux/posix_acl.h).
const ACL_TAGS_WITHOUT_ID: [u16; 4] = [0x01, 0x04, 0x10, 0x20];

/// Sets the id of the ACL entries that have no qualifier to `ACL_UNDEFINED_ID`, as the
/// kernel reports them: debugfs writes 0 there. `value` is a VFS-form ACL (`u32` version 2,
/// then 8-byte `{u16 tag, u16 perm, u32 id}` entries).
pub fn normalize_acl(value: &[u8]) -> Vec<u8> {
    let mut out = value.to_vec();
    for entry in out[4..].chunks_exact_mut(8) {
        let tag = u16::from_le_bytes([entry[0], entry[1]]);
        if ACL_TAGS_WITHOUT_ID.contains(&tag) {
            entry[4..].copy_from_slice(&u32::MAX.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat() {
        let out = "Inode: 17   Type: regular    Mode:  04755   Flags: 0x80000
Generation: 0    Version: 0x00000000:00000000
User: -294967296   Group: 100000   Project:     0   Size: 5368709120
File ACL: 6298
Links: 2   Blockcount: 8
Fragment:  Address: 0    Number: 0    Size: 0
 ctime: 0xf4865700:77359401 -- Fri Jan  1 00:00:00 2100
 mtime: 0xf4865700:77359401 -- Fri Jan  1 00:00:00 2100
crtime: 0xed300880:00000000 -- Fri Jan  1 00:00:00 1960
Size of extra inode fields: 32
Extended attributes:
  security.capability (20) = 01 00 00 02 0a 20 00 00 00 00 00 00 00 00 00 00 00 00 00 00 
  user.text (17) = \"hello (x)\"
Inode checksum: 0xacfbc9f1
EXTENTS:
(ETB0):100, (0-1):6300-6301, (1310720):7000
";
        let s = parse_stat(out);
        assert_eq!(s.ino, 17);
        assert_eq!(s.kind, "regular");
        assert_eq!(s.mode, 0o4755);
        assert_eq!((s.uid, s.gid), (4_000_000_000, 100_000));
        assert_eq!(s.size, 5 << 30);
        assert_eq!(s.links, 2);
        assert_eq!(s.file_acl, 6298);
        assert_eq!(s.mtime, (4_102_444_800, 500_000_000));
        assert_eq!(
            s.xattrs,
            [
                ("security.capability".to_string(), 20),
                ("user.text".to_string(), 17)
            ]
        );
        assert_eq!(
            parse_extents(&s.extents),
            [(0, 6300, 2), (1_310_720, 7000, 1)]
        );
        assert_eq!(parse_time("0xed300880:00000000"), (-315_619_200, 0));
    }

    #[test]
    fn parses_devices_and_fast_links() {
        let dev = "Inode: 13   Type: block special    Mode:  0660   Flags: 0x0
User:     0   Group:     0   Project:     0   Size: 0
File ACL: 0
Links: 1   Blockcount: 0
 mtime: 0x6553f100:00000000 -- Tue Nov 14 22:13:20 2023
(New-style) Device major/minor number: 300:70000 (hex 12c:11170)
";
        let s = parse_stat(dev);
        assert_eq!(s.kind, "block special");
        assert_eq!(s.device, Some((300, 70000)));
        assert!(s.new_style_device);
        let link = dev.replace("block special", "symlink").replace(
            "(New-style) Device major/minor number: 300:70000 (hex 12c:11170)",
            "Fast link dest: \"usr/lib\"",
        );
        assert_eq!(parse_stat(&link).fast_link.as_deref(), Some("usr/lib"));
    }

    #[test]
    fn parses_ls() {
        let out =
            "/2/040755/0/0/.//\n/2/040755/0/0/..//\n/12/100664/0/0/a b/3/\n/0/000000/0/0//0/\n\
                   /17/100644/-294967296/100000/future/1/\n/14/040755/0/0/bin//\n";
        let e = parse_ls(out, "top");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].path, "top/a b");
        assert_eq!(e[1].uid, 4_000_000_000);
        assert_eq!(e[2].mode & S_IFMT, S_IFDIR);
    }

    #[test]
    fn normalizes_acl_ids() {
        let mut acl = 2u32.to_le_bytes().to_vec();
        acl.extend_from_slice(&[1, 0, 6, 0, 0, 0, 0, 0, 2, 0, 4, 0, 0xe8, 3, 0, 0]);
        let n = normalize_acl(&acl);
        assert_eq!(&n[8..12], &[0xff; 4]);
        assert_eq!(&n[16..20], &[0xe8, 3, 0, 0]);
    }
}
