//! Runs the real mke2fs and reads back what it wrote, for byte comparisons with d2l's
//! encoders (shared by the journal and resize-inode tests). Panics with a clear message
//! when e2fsprogs is missing.
#![allow(dead_code)] // each test file uses part of it

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The filesystem UUID the images get.
pub const UUID: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
];
/// [`UUID`] as mke2fs's `-U` takes it.
const UUID_TEXT: &str = "01234567-89ab-cdef-0123-456789abcdef";

/// A sparse image file freshly formatted by mke2fs.
pub struct Image {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// `dumpe2fs -h` output.
    header: String,
}

/// Finds an e2fsprogs tool on PATH or in the sbin directories.
fn tool(name: &str) -> PathBuf {
    d2l_testkit::which(name).unwrap_or_else(|| {
        panic!("{name} not found: install e2fsprogs (these tests compare with mke2fs)")
    })
}

/// Runs an e2fsprogs tool; its stdout.
fn run(name: &str, args: &[&str], image: &Path) -> String {
    let output = Command::new(tool(name))
        .args(args)
        .arg(image)
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    assert!(
        output.status.success(),
        "{name} {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("tool output is UTF-8")
}

impl Image {
    /// Formats a `bytes`-byte sparse image with d2l's geometry, and checks mke2fs gave
    /// it d2l's features.
    pub fn new(bytes: u64) -> Image {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("fs.img");
        File::create(&path)
            .and_then(|f| f.set_len(bytes))
            .expect("sparse image file");
        let args = [
            "-q",
            "-t",
            "ext4",
            "-b",
            "4096",
            "-I",
            "256",
            "-O",
            "^64bit",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
            "-U",
            UUID_TEXT,
        ];
        run("mke2fs", &args, &path);
        let header = run("dumpe2fs", &["-h"], &path);
        let image = Image {
            _dir: dir,
            path,
            header,
        };
        let features: Vec<&str> = image.header("Filesystem features").split(' ').collect();
        for wanted in [
            "sparse_super",
            "flex_bg",
            "resize_inode",
            "has_journal",
            "metadata_csum",
        ] {
            assert!(
                features.contains(&wanted),
                "mke2fs did not set {wanted}: {features:?}"
            );
        }
        for unwanted in ["64bit", "meta_bg", "sparse_super2", "metadata_csum_seed"] {
            assert!(
                !features.contains(&unwanted),
                "mke2fs set {unwanted}: {features:?}"
            );
        }
        assert_eq!(image.header_u64("Block size"), 4096);
        assert_eq!(image.header_u64("First block"), 0);
        assert_eq!(image.header_u64("Blocks per group"), 32768);
        image
    }

    /// A field of `dumpe2fs -h`, trimmed.
    pub fn header(&self, field: &str) -> &str {
        self.header
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("dumpe2fs -h has no {field:?}:\n{}", self.header))
            .trim()
    }

    /// A numeric field of `dumpe2fs -h`.
    pub fn header_u64(&self, field: &str) -> u64 {
        let value = self.header(field);
        value
            .parse()
            .unwrap_or_else(|_| panic!("{field}: {value:?} is not a number"))
    }

    /// Output of a debugfs request.
    pub fn debugfs(&self, request: &str) -> String {
        run("debugfs", &["-R", request], &self.path)
    }

    /// Physical block of logical block `logical` of inode `ino`.
    pub fn bmap(&self, ino: u32, logical: u64) -> u64 {
        let out = self.debugfs(&format!("bmap <{ino}> {logical}"));
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("debugfs bmap: {out:?}"))
    }

    /// Block `nr` of the image.
    pub fn block(&self, nr: u64) -> Box<[u8; 4096]> {
        let mut block = Box::new([0u8; 4096]);
        let mut file = File::open(&self.path).expect("open image");
        file.seek(SeekFrom::Start(nr * 4096)).expect("seek");
        file.read_exact(&mut block[..])
            .unwrap_or_else(|e| panic!("block {nr}: {e}"));
        block
    }

    /// The 256 bytes of inode `ino`, from the inode table.
    pub fn inode(&self, ino: u32) -> [u8; 256] {
        // "Inode 7 is part of block group 0\n\tlocated at block 1057, offset 0x0600"
        let out = self.debugfs(&format!("imap <{ino}>"));
        let located = out
            .split("located at block ")
            .nth(1)
            .expect("debugfs imap output");
        let (block, offset) = located
            .split_once(", offset 0x")
            .expect("debugfs imap offset");
        let block: u64 = block.trim().parse().expect("imap block");
        let offset = usize::from_str_radix(offset.trim(), 16).expect("imap offset");
        self.block(block)[offset..offset + 256].try_into().unwrap()
    }
}

/// The first few offsets at which two blocks differ, for failure messages.
pub fn differing_bytes(a: &[u8], b: &[u8]) -> Vec<usize> {
    (0..a.len().max(b.len()))
        .filter(|&i| a.get(i) != b.get(i))
        .take(16)
        .collect()
}
