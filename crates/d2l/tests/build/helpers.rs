//! Running d2l and the tools: the shared helpers of the build tests.

use crate::prelude::*;

/// ext4 block size d2l writes.
pub(crate) const BLOCK: u64 = 4096;

// ---------------------------------------------------------------------------------------------
// Running d2l and the tools
// ---------------------------------------------------------------------------------------------

/// `d2l build SOURCE -o OUT --table none EXTRA...`.
pub(crate) fn build(source: &str, out: &Path, extra: &[&str]) -> Output {
    build_command(source, out, extra).output().expect("run d2l")
}

/// The command [`build`] runs, without `D2L_LOG` and `SOURCE_DATE_EPOCH` from the test's
/// environment; a test may add its own.
pub(crate) fn build_command(source: &str, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_d2l"));
    cmd.args([
        "build",
        source,
        "-o",
        out.to_str().unwrap(),
        "--table",
        "none",
    ])
    .args(extra)
    .env_remove("D2L_LOG")
    .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// [`build`] that must succeed; returns the image path.
pub(crate) fn build_ok(source: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let run = build(source, out, extra);
    assert!(
        run.status.success(),
        "d2l build {source} {extra:?} failed: {}",
        stderr(&run)
    );
    out.to_path_buf()
}

/// Writes a crafted OCI layout of `layers` under `dir` and returns its source string.
pub(crate) fn crafted(dir: &Path, layers: &[Vec<u8>], compress: Compress) -> String {
    simple_image(&dir.join("img"), layers, compress).source
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    d2l_registry::Digest::sha256_of(bytes).to_string()
}

/// Panics unless running as root: mounting a loop device needs it (CI runs as root).
pub(crate) fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts the image with `mount -o loop`, which needs root (CI runs as root)"
    );
    debugfs::require("mount", "mount");
    debugfs::require("umount", "mount");
}

/// A loop mount, unmounted when dropped (also when the test panics).
pub(crate) struct Mount {
    pub(crate) dir: PathBuf,
    pub(crate) mounted: bool,
}

impl Mount {
    /// `mount -o loop,OPTIONS IMAGE DIR`.
    pub(crate) fn new(image: &Path, dir: &Path, options: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "ext4", "-o", &format!("loop,{options}")])
            .arg(image)
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -o loop {}: {}{}",
            image.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Mount {
            dir: dir.to_path_buf(),
            mounted: true,
        }
    }

    /// Unmounts, asserting success.
    pub(crate) fn unmount(mut self) {
        self.mounted = false;
        let out = Command::new("umount")
            .arg(&self.dir)
            .output()
            .expect("run umount");
        assert!(
            out.status.success(),
            "umount {}: {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
    }
}

/// A layer made by the system's GNU tar: a file `d/NAME` of `size` bytes with data at `runs`
/// (offset, length; 4 KiB aligned) and holes elsewhere, archived with `--sparse`.
pub(crate) fn sparse_layer(name: &str, size: u64, runs: &[(u64, u64)]) -> Vec<u8> {
    debugfs::require("tar", "tar");
    gnu_sparse_tar(
        &["--format=gnu", "--sparse", "--owner=0", "--group=0"],
        name,
        size,
        runs,
    )
}

/// Every (offset, needle) where one of `needles` occurs in the file, reading all of it
/// (holes included) in chunks that overlap by the longest needle.
pub(crate) fn find_in_file(path: &Path, needles: &[&[u8]]) -> Vec<(String, u64)> {
    let longest = needles.iter().map(|n| n.len()).max().unwrap();
    let mut file = File::open(path).unwrap();
    let mut found = Vec::new();
    let mut buf = vec![0u8; 8 << 20];
    let mut carried = 0usize; // bytes at the start of buf kept from the previous chunk
    let mut base = 0u64; // file offset of buf[0]
    loop {
        let n = file.read(&mut buf[carried..]).unwrap();
        if n == 0 {
            break;
        }
        let window = &buf[..carried + n];
        for needle in needles {
            let first = needle[0];
            for (i, _) in window.iter().enumerate().filter(|&(_, &b)| b == first) {
                if window[i..].starts_with(needle) {
                    found.push((
                        String::from_utf8_lossy(needle).into_owned(),
                        base + i as u64,
                    ));
                }
            }
        }
        let keep = (longest - 1).min(window.len());
        let len = window.len();
        buf.copy_within(len - keep..len, 0);
        base += (len - keep) as u64;
        carried = keep;
    }
    found.sort();
    found.dedup();
    found
}

/// The external xattr block `block` of an image: (h_magic, h_refcount).
pub(crate) fn xattr_block_header(image: &Path, block: u64) -> (u32, u32) {
    let mut header = [0u8; 8];
    File::open(image)
        .unwrap()
        .read_exact_at(&mut header, block * BLOCK)
        .unwrap();
    (
        u32::from_le_bytes(header[..4].try_into().unwrap()),
        u32::from_le_bytes(header[4..].try_into().unwrap()),
    )
}

/// `EXT4_XATTR_MAGIC`, first word of an external xattr block.
pub(crate) const XATTR_MAGIC: u32 = 0xEA02_0000;
/// `EXT4_INDEX_FL`: the directory is an htree.
pub(crate) const INDEX_FL: u32 = 0x1000;
