//! Crafted layer tarballs for tests: every entry type, whiteouts, PAX records, written with
//! the `tar` crate's header type so tests control each byte that matters.

use tar::{EntryType, Header};

/// Builds one layer's uncompressed tar stream.
#[derive(Default)]
pub struct LayerTar {
    data: Vec<u8>,
    mtime: u64,
}

impl LayerTar {
    /// An empty layer; entries get mtime 1_700_000_000 unless set.
    pub fn new() -> Self {
        LayerTar {
            data: Vec::new(),
            mtime: 1_700_000_000,
        }
    }

    fn header(&self, path: &str, kind: EntryType, mode: u32, size: u64) -> Header {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        // Paths go into PAX records when long; the ustar name gets a stand-in.
        if path.len() <= 100 {
            set_name_bytes(&mut h, path.as_bytes());
        } else {
            set_name_bytes(&mut h, b"long-name-in-pax");
        }
        h
    }

    /// Appends a raw header (checksum set here) and data.
    pub fn raw(&mut self, mut header: Header, data: &[u8]) -> &mut Self {
        header.set_cksum();
        self.data.extend_from_slice(header.as_bytes());
        self.data.extend_from_slice(data);
        pad(&mut self.data);
        self
    }

    /// Appends a PAX extended header with the given records (values are raw bytes).
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (key, value) in records {
            let rest = 1 + key.len() + 1 + value.len() + 1;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {key}=").as_bytes());
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        let h = self.header(
            "././@PaxHeader",
            EntryType::XHeader,
            0o644,
            body.len() as u64,
        );
        self.raw(h, &body)
    }

    fn with_long_path(&mut self, path: &str) {
        if path.len() > 100 {
            self.pax(&[("path", path.as_bytes())]);
        }
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, content: &[u8]) -> &mut Self {
        self.file_mode(path, content, 0o644)
    }

    /// A regular file with a mode.
    pub fn file_mode(&mut self, path: &str, content: &[u8], mode: u32) -> &mut Self {
        self.with_long_path(path);
        let h = self.header(path, EntryType::Regular, mode, content.len() as u64);
        self.raw(h, content)
    }

    /// A regular file with an owner.
    pub fn file_owned(&mut self, path: &str, content: &[u8], uid: u64, gid: u64) -> &mut Self {
        let mut h = self.header(path, EntryType::Regular, 0o644, content.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.raw(h, content)
    }

    /// A directory.
    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.dir_mode(path, 0o755)
    }

    /// A directory with a mode.
    pub fn dir_mode(&mut self, path: &str, mode: u32) -> &mut Self {
        self.with_long_path(path);
        let h = self.header(path, EntryType::Directory, mode, 0);
        self.raw(h, &[])
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = self.header(path, EntryType::Symlink, 0o777, 0);
        if target.len() > 100 {
            self.pax(&[("linkpath", target.as_bytes())]);
        } else {
            h.set_link_name_literal(target.as_bytes())
                .expect("short link");
        }
        self.raw(h, &[])
    }

    /// A hard link to `target`.
    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = self.header(path, EntryType::Link, 0o644, 0);
        h.set_link_name_literal(target.as_bytes())
            .expect("short link");
        self.raw(h, &[])
    }

    /// A character or block device.
    pub fn device(&mut self, path: &str, block: bool, major: u32, minor: u32) -> &mut Self {
        let kind = if block {
            EntryType::Block
        } else {
            EntryType::Char
        };
        let mut h = self.header(path, kind, 0o660, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, &[])
    }

    /// A named pipe.
    pub fn fifo(&mut self, path: &str) -> &mut Self {
        let h = self.header(path, EntryType::Fifo, 0o644, 0);
        self.raw(h, &[])
    }

    /// A whiteout for `path` (an empty file `.wh.NAME` next to it).
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path),
        };
        self.file(&format!("{dir}.wh.{name}"), b"")
    }

    /// Marks directory `dir` opaque.
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    /// Sets the mtime for the entries that follow.
    pub fn mtime(&mut self, seconds: u64) -> &mut Self {
        self.mtime = seconds;
        self
    }

    /// The tar stream: the entries, then the two zero blocks that end an archive.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    /// The tar stream without its end-of-archive blocks (for truncation tests).
    pub fn unterminated(&self) -> Vec<u8> {
        self.data.clone()
    }
}

fn set_name_bytes(h: &mut Header, name: &[u8]) {
    let bytes = h.as_mut_bytes();
    bytes[..100].fill(0);
    bytes[..name.len()].copy_from_slice(name);
}

fn pad(data: &mut Vec<u8>) {
    let rem = data.len() % 512;
    if rem != 0 {
        data.resize(data.len() + 512 - rem, 0);
    }
}

/// Builders for crafted headers the methods above do not make: names as raw bytes, headers
/// to tweak before [`LayerTar::raw`], PAX global headers and GNU long-name entries.
impl LayerTar {
    /// A header as the builders above make it (ustar, this builder's mtime, owner 0:0,
    /// no checksum yet), named with raw bytes (at most 100) and with the raw type flag
    /// `kind` (any byte, e.g. `b'\0'` or `b'V'`). Tweak it, then append it with
    /// [`LayerTar::raw`].
    pub fn header_for(&self, path: &[u8], kind: u8, mode: u32, size: u64) -> Header {
        assert!(path.len() <= 100, "header names hold at most 100 bytes");
        let mut h = self.header("", EntryType::Regular, mode, size);
        set_name_bytes(&mut h, path);
        h.as_mut_bytes()[156] = kind;
        h
    }

    /// A regular file (mode 0644) whose name is raw bytes, not necessarily UTF-8.
    pub fn file_bytes(&mut self, path: &[u8], content: &[u8]) -> &mut Self {
        let h = self.header_for(path, b'0', 0o644, content.len() as u64);
        self.raw(h, content)
    }

    /// A PAX global header ('g') with the given records (values are raw bytes).
    pub fn pax_global(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (key, value) in records {
            let rest = 1 + key.len() + 1 + value.len() + 1;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {key}=").as_bytes());
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        let h = self.header_for(b"././@PaxGlobal", b'g', 0o644, body.len() as u64);
        self.raw(h, &body)
    }

    /// A GNU long-name (`kind` b'L') or long-link-name (b'K') entry named
    /// "././@LongLink" holding `name` and a NUL, as GNU tar writes them. It applies to the
    /// next header.
    pub fn gnu_long(&mut self, kind: u8, name: &[u8]) -> &mut Self {
        let mut payload = name.to_vec();
        payload.push(0);
        let h = self.header_for(b"././@LongLink", kind, 0o644, payload.len() as u64);
        self.raw(h, &payload)
    }
}

/// A non-zero byte pattern: the byte at `offset` of a file filled with it (so no run of data
/// can be mistaken for a hole).
pub fn pattern(offset: u64, len: u64) -> Vec<u8> {
    (offset..offset + len)
        .map(|i| (i % 251) as u8 + 1)
        .collect()
}

/// A real sparse layer: `d/NAME`, `size` bytes with [`pattern`] data at `runs` (offset,
/// length; 4 KiB aligned so the filesystem reports exactly those runs) and holes elsewhere,
/// archived by the system's GNU tar with `tar_args` (e.g. `--sparse --format=gnu`).
pub fn gnu_sparse_tar(tar_args: &[&str], name: &str, size: u64, runs: &[(u64, u64)]) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    let file = std::fs::File::create(dir.path().join("d").join(name)).unwrap();
    file.set_len(size).unwrap();
    for &(offset, len) in runs {
        file.write_all_at(&pattern(offset, len), offset).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);
    let out = std::process::Command::new("tar")
        .args(tar_args)
        .arg("-C")
        .arg(dir.path())
        .args(["-cf", "-", "d"])
        .output()
        .expect("run GNU tar");
    assert!(
        out.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
