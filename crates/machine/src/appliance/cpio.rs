//! The initramfs archive: cpio in the "newc" format the kernel unpacks (kernel.org,
//! Documentation/driver-api/early-userspace/buffer-format.rst), uncompressed, which every
//! kernel reads.

/// File types in a newc header's mode.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;
const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";

/// A newc archive being written in memory (an initramfs holds a few MiB).
#[derive(Debug, Default)]
pub struct Cpio {
    bytes: Vec<u8>,
    next_inode: u32,
}

impl Cpio {
    /// A directory.
    pub fn dir(&mut self, path: &str, mode: u32) {
        self.entry(path, S_IFDIR | mode, (0, 0), &[]);
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, mode: u32, content: &[u8]) {
        self.entry(path, S_IFREG | mode, (0, 0), content);
    }

    /// A character device node.
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) {
        self.entry(path, S_IFCHR | mode, (major, minor), &[]);
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_inode = 0;
        self.entry(TRAILER, 0, (0, 0), &[]);
        self.bytes
    }

    fn entry(&mut self, path: &str, mode: u32, (rmajor, rminor): (u32, u32), content: &[u8]) {
        let name = path.trim_start_matches('/');
        let inode = if name == TRAILER {
            0
        } else {
            self.next_inode + 1
        };
        self.next_inode = inode;
        let links = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            inode,
            mode,
            0, // uid
            0, // gid
            links,
            0, // mtime: the same archive from the same input
            u32::try_from(content.len()).unwrap_or(u32::MAX),
            0, // devmajor
            0, // devminor
            rmajor,
            rminor,
            u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
            0, // check
        ];
        self.bytes.extend_from_slice(MAGIC.as_bytes());
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(content);
        self.pad();
    }

    /// Pads to the next multiple of 4 bytes, as newc aligns names and data.
    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn gnu_cpio_reads_it_back() {
        let mut cpio = Cpio::default();
        cpio.dir("/dev", 0o755);
        cpio.char_device("/dev/console", 0o600, 5, 1);
        cpio.dir("/lib", 0o755);
        cpio.file("/lib/a.ko", 0o644, b"module bytes");
        cpio.file("/init", 0o755, b"#!");
        let archive = cpio.finish();
        assert_eq!(archive.len() % 4, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd");
        std::fs::write(&path, &archive).unwrap();
        let listing = Command::new("cpio")
            .args(["-itv", "-F"])
            .arg(&path)
            .output()
            .expect("cpio (Debian package cpio) reads the archive");
        assert!(listing.status.success(), "{listing:?}");
        let text = String::from_utf8_lossy(&listing.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" dev"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("crw-------")
                && lines[1].contains("5,")
                && lines[1].ends_with(" dev/console"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("-rw-r--r--")
                && lines[3].contains(" 12 ")
                && lines[3].ends_with(" lib/a.ko"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("-rwxr-xr-x") && lines[4].ends_with(" init"),
            "{text}"
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let extract = Command::new("cpio")
            .args(["-id", "--no-absolute-filenames", "-F"])
            .arg(&path)
            .arg("lib/a.ko")
            .current_dir(&out)
            .output()
            .unwrap();
        assert!(extract.status.success(), "{extract:?}");
        assert_eq!(
            std::fs::read(out.join("lib/a.ko")).unwrap(),
            b"module bytes"
        );
    }
}
