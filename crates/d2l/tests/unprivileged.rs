//! d2l needs no privilege: as an ordinary user (uid 65534 here, dropped to with `setpriv`
//! when the tests run as root, as CI does) it exports, writes a bare filesystem and builds a
//! bootable disk, syslinux's pieces and GRUB's EFI application taken from the host packages
//! included.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use d2l_testkit::layer::LayerTar;
use d2l_testkit::oci::{simple_image, Compress};

/// The user the commands run as when the tests run as root.
const NOBODY: u32 = 65534;

/// Runs d2l as an ordinary user, with a home and cache inside `home`.
fn d2l_unprivileged(home: &Path, args: &[&str]) -> Output {
    let d2l = env!("CARGO_BIN_EXE_d2l");
    let mut cmd = if rustix::process::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
            d2l,
        ]);
        c
    } else {
        Command::new(d2l)
    };
    cmd.args(args)
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env_remove("D2L_LOG")
        .current_dir(home)
        .output()
        .expect("run d2l (setpriv is in util-linux)")
}

fn chown_tree(path: &Path) {
    if rustix::process::geteuid().is_root() {
        let status = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

#[test]
fn an_ordinary_user_builds_disks_and_filesystems() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let mut layer = LayerTar::new();
    layer
        .file("etc/os-release", b"ID=d2l-test\n")
        .file("etc/shadow", b"root:*:19000:0:99999:7:::\n")
        .file_mode("bin/sh", b"#!fake\n", 0o4755)
        // Not a real kernel: enough for the boot loader's files and configuration.
        .file("boot/vmlinuz-1.0", &vec![0x4d; 100_000])
        .file("boot/initrd.img-1.0", &vec![0x1f; 50_000]);
    let image = simple_image(&home.join("img"), &[layer.finish()], Compress::Gzip);
    chown_tree(home);

    let out = |name: &str| home.join(name).to_str().unwrap().to_string();
    let run = d2l_unprivileged(
        home,
        &[
            "build",
            &image.source,
            "-o",
            &out("disk.img"),
            "--root-password",
            "pw",
        ],
    );
    assert!(run.status.success(), "build: {}", common::stderr(&run));
    let run = d2l_unprivileged(
        home,
        &[
            "build",
            &image.source,
            "-o",
            &out("fs.ext4"),
            "--table",
            "none",
        ],
    );
    assert!(
        run.status.success(),
        "build --table none: {}",
        common::stderr(&run)
    );
    let run = d2l_unprivileged(home, &["export", &image.source, "-o", &out("root.tar")]);
    assert!(run.status.success(), "export: {}", common::stderr(&run));
    // Disk formats too: one staged through a scratch file, one converted.
    let run = d2l_unprivileged(
        home,
        &[
            "build",
            &image.source,
            "-o",
            &out("disk.vmdk"),
            "--vmdk-subformat",
            "stream",
            "--root-password",
            "pw",
        ],
    );
    assert!(
        run.status.success(),
        "build -o disk.vmdk: {}",
        common::stderr(&run)
    );
    let run = d2l_unprivileged(home, &["convert", &out("disk.img"), &out("disk.qcow2")]);
    assert!(run.status.success(), "convert: {}", common::stderr(&run));
    for (name, format) in [("disk.vmdk", "vmdk"), ("disk.qcow2", "qcow2")] {
        d2l_testkit::qemu_img::assert_identical(
            &home.join("disk.img"),
            "raw",
            &home.join(name),
            format,
        );
    }

    for name in ["disk.img", "fs.ext4", "root.tar", "disk.vmdk", "disk.qcow2"] {
        let meta = std::fs::metadata(home.join(name)).unwrap();
        if rustix::process::geteuid().is_root() {
            assert_eq!(
                meta.uid(),
                NOBODY,
                "{name} belongs to the user who built it"
            );
        }
    }
    // syslinux's pieces were extracted into the user's own cache.
    assert!(home.join("cache/d2l/syslinux").is_dir());
    // The disk (hybrid, the default): the ESP at 1 MiB, a clean FAT holding GRUB (made by
    // the host's grub-mkimage as this user), then the bootable root partition holding a
    // clean ext4 with extlinux.
    let table = Command::new("sfdisk")
        .arg("--json")
        .arg(home.join("disk.img"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&table.stdout).unwrap();
    let parts = &json["partitiontable"]["partitions"];
    assert_eq!(parts[0]["start"], 2048, "{json}");
    assert_eq!(parts[0]["type"], "ef", "{json}");
    assert_eq!(parts[1]["bootable"], true, "{json}");
    let sectors =
        |p: &serde_json::Value, key: &str| usize::try_from(p[key].as_u64().unwrap() * 512).unwrap();
    let bytes = std::fs::read(home.join("disk.img")).unwrap();
    let esp = home.join("esp.fat");
    let esp_range =
        sectors(&parts[0], "start")..sectors(&parts[0], "start") + sectors(&parts[0], "size");
    std::fs::write(&esp, &bytes[esp_range]).unwrap();
    let fsck = Command::new("fsck.fat")
        .arg("-n")
        .arg(&esp)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&fsck.stdout);
    assert!(
        fsck.status.success() && report.lines().count() == 2,
        "{report}"
    );
    let partition = home.join("partition.ext4");
    std::fs::write(&partition, &bytes[sectors(&parts[1], "start")..]).unwrap();
    for fs in [partition.as_path(), &home.join("fs.ext4")] {
        let fsck = Command::new("e2fsck").arg("-fn").arg(fs).output().unwrap();
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
    }
    let conf = Command::new("debugfs")
        .args(["-R", "cat /boot/syslinux/extlinux.conf"])
        .arg(&partition)
        .output()
        .unwrap();
    let conf = String::from_utf8_lossy(&conf.stdout);
    assert!(conf.contains("KERNEL /boot/vmlinuz-1.0"), "{conf}");
    // Inside the image, files belong to root whoever built it.
    let stat = Command::new("debugfs")
        .args(["-R", "stat /bin/sh"])
        .arg(&partition)
        .output()
        .unwrap();
    let stat = String::from_utf8_lossy(&stat.stdout);
    assert!(
        stat.contains("User:     0") && stat.contains("Mode:  04755"),
        "{stat}"
    );
}

/// Removes a file the test put on the host when dropped.
struct Planted(std::path::PathBuf);

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_root_only_host_kernel_is_said_to_be_unreadable() {
    // Some distributions (Ubuntu) make /boot/vmlinuz-* readable by root only. Run as root,
    // the test plants one (where the host has none) and tries as an ordinary user.
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root, to plant a root-only kernel and drop to an ordinary user"
    );
    let version = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let kernel = std::path::PathBuf::from(format!("/boot/vmlinuz-{}", version.trim()));
    let _planted = if kernel.exists() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kernel).unwrap().permissions().mode();
        if mode & 0o004 != 0 {
            eprintln!(
                "{} is readable by all here: nothing to check",
                kernel.display()
            );
            return;
        }
        None
    } else {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all("/boot").unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&kernel)
            .unwrap();
        Some(Planted(kernel.clone()))
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let mut layer = LayerTar::new();
    layer.file_mode("app", b"#!/app", 0o755);
    let image = simple_image(&home.join("app"), &[layer.finish()], Compress::Gzip);
    chown_tree(home);
    let out = d2l_unprivileged(
        home,
        &[
            "build",
            &image.source,
            "--kernel-from",
            "host",
            "--cmd",
            "/app",
            "-o",
            "app.img",
        ],
    );
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{} on the host: not readable by this user",
            kernel.display()
        )),
        "{err}"
    );
    assert!(!home.join("app.img").exists());
}
