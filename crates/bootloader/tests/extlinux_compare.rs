//! Byte-for-byte comparison with the real `extlinux --install` (needs root for the loop
//! mount, and the Debian packages `syslinux syslinux-common extlinux mtools e2fsprogs`).
//! Fails, never skips, when something is missing.

use d2l_bootloader::Syslinux;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Image size: 64 MiB.
const IMAGE_BYTES: u64 = 64 << 20;
const INSTALL_DIR: &str = "/boot/syslinux";

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (install the Debian packages syslinux syslinux-common extlinux mtools e2fsprogs)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Unmounts on drop, so a failing assertion never leaves a mount or loop device behind
/// (`mount -o loop` sets autoclear: the loop device goes with the mount).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Offsets (hex) and byte pairs of the first differences.
fn diff(a: &[u8], b: &[u8]) -> String {
    let mut out = Vec::new();
    if a.len() != b.len() {
        out.push(format!("lengths {:#x} vs {:#x}", a.len(), b.len()));
    }
    for (i, (x, y)) in a
        .iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .take(16)
    {
        out.push(format!("{i:#06x}: ours {x:02x} real {y:02x}"));
    }
    out.join("\n")
}

fn ldlinux_sectors(img: &Path, block: u64) -> Vec<u64> {
    let blocks = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("blocks {INSTALL_DIR}/ldlinux.sys"))
        .arg(img));
    let per = block / 512;
    blocks
        .split_whitespace()
        .map(|b| b.parse::<u64>().expect("block number"))
        .flat_map(|b| (0..per).map(move |k| b * per + k))
        .collect()
}

#[test]
fn matches_real_extlinux_install_4k_blocks() {
    compare_with_extlinux(4096);
}

#[test]
fn matches_real_extlinux_install_1k_blocks() {
    compare_with_extlinux(1024);
}

/// Formats a bare ext4 filesystem (partition start LBA 0) with `block`-byte blocks, lets
/// the real extlinux install into it, and redoes the install with this crate.
fn compare_with_extlinux(block: u64) {
    assert!(
        rustix_is_root(),
        "this test loop-mounts an image and needs root (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("fs.img");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::File::create(&img)
        .unwrap()
        .set_len(IMAGE_BYTES)
        .unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-O", "^64bit", "-b"])
        .arg(block.to_string())
        .arg(&img));
    {
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt));
        let guard = Mounted(mnt.clone());
        let dir = mnt.join(INSTALL_DIR.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("extlinux").arg("--install").arg(&dir));
        drop(guard);
    }

    let real_bs = std::fs::read(&img).unwrap()[..512].to_vec();
    let real_sys_path = tmp.path().join("real-ldlinux.sys");
    let real_c32_path = tmp.path().join("real-ldlinux.c32");
    for (name, to) in [
        ("ldlinux.sys", &real_sys_path),
        ("ldlinux.c32", &real_c32_path),
    ] {
        run(Command::new("debugfs")
            .arg("-R")
            .arg(format!("dump {INSTALL_DIR}/{name} {}", to.display()))
            .arg(&img));
    }
    let real_sys = std::fs::read(&real_sys_path).unwrap();
    let real_c32 = std::fs::read(&real_c32_path).unwrap();
    let sectors = ldlinux_sectors(&img, block);
    assert_eq!(
        &real_bs[3..11],
        b"SYSLINUX",
        "extlinux wrote no boot sector"
    );

    let sl = Syslinux::load(None, &tmp.path().join("cache")).unwrap();
    let n = sl.ldlinux_sys().len() / 512;
    assert!(
        sectors.len() >= n,
        "ldlinux.sys has {} sectors allocated, want {n}",
        sectors.len()
    );
    let sectors = &sectors[..n];
    let ours_sys = sl.patched_ldlinux(sectors, INSTALL_DIR).unwrap();
    let ours_bs = sl.boot_sector(sectors[0], 0, IMAGE_BYTES / 512).unwrap();

    assert!(
        ours_sys == real_sys,
        "ldlinux.sys differs:\n{}",
        diff(&ours_sys, &real_sys)
    );
    assert!(
        ours_bs[..] == real_bs[..],
        "boot sector differs:\n{}",
        diff(&ours_bs, &real_bs)
    );
    assert!(sl.ldlinux_c32() == &real_c32[..], "ldlinux.c32 differs");

    // Loading again comes from the cache and gives the same pieces.
    let again = Syslinux::load(None, &tmp.path().join("cache")).unwrap();
    assert_eq!(again.ldlinux_sys(), sl.ldlinux_sys());
}

fn rustix_is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}
