//! Kernel discovery and machine preparation on trees built from crafted layers.

use d2l_bootloader::{
    find_kernel, prepare, salt_from, sha512_crypt, BootFiles, Error, MachineOptions,
};
use d2l_rootfs::{Rootfs, SpillFile};
use d2l_testkit::layer::LayerTar;

fn rootfs(build: impl FnOnce(&mut LayerTar)) -> Rootfs<SpillFile> {
    let mut layer = LayerTar::new();
    build(&mut layer);
    d2l_testkit::apply::layers(SpillFile::new().unwrap(), &[&layer.finish()])
}

fn boot(kernel: &str, initrd: Option<&str>) -> BootFiles {
    BootFiles {
        kernel: kernel.to_owned(),
        initrd: initrd.map(str::to_owned),
    }
}

#[test]
fn debian_newest_version_wins_naturally() {
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/vmlinuz-6.1.0-9-amd64", b"k9")
            .file("boot/initrd.img-6.1.0-9-amd64", b"i9")
            .file("boot/vmlinuz-6.1.0-50-amd64", b"k50")
            .file("boot/initrd.img-6.1.0-50-amd64", b"i50")
            .file("boot/config-6.1.0-50-amd64", b"")
            .file("boot/System.map-6.1.0-50-amd64", b"")
            .symlink("vmlinuz", "boot/vmlinuz-6.1.0-9-amd64")
            .symlink("initrd.img", "boot/initrd.img-6.1.0-9-amd64");
    });
    assert_eq!(
        find_kernel(&mut fs, None, None).unwrap(),
        boot(
            "/boot/vmlinuz-6.1.0-50-amd64",
            Some("/boot/initrd.img-6.1.0-50-amd64")
        )
    );
}

#[test]
fn symlinks_only_resolve_to_real_files() {
    // The kernel lives elsewhere; only /vmlinuz and /initrd.img name it.
    let mut fs = rootfs(|l| {
        l.dir("usr/lib/kernel")
            .file("usr/lib/kernel/vmlinuz-6.8.0-31-generic", b"k")
            .file("usr/lib/kernel/initrd.img-6.8.0-31-generic", b"i")
            .symlink("k", "usr/lib/kernel")
            .symlink("vmlinuz", "k/vmlinuz-6.8.0-31-generic")
            .symlink("initrd.img", "/k/../k/initrd.img-6.8.0-31-generic");
    });
    assert_eq!(
        find_kernel(&mut fs, None, None).unwrap(),
        boot(
            "/usr/lib/kernel/vmlinuz-6.8.0-31-generic",
            Some("/usr/lib/kernel/initrd.img-6.8.0-31-generic")
        )
    );
    // Unversioned names: the /initrd.img symlink goes with the /vmlinuz one.
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/kernel", b"k")
            .file("boot/initrd", b"i")
            .symlink("vmlinuz", "boot/kernel")
            .symlink("initrd.img", "boot/initrd");
    });
    assert_eq!(
        find_kernel(&mut fs, None, None).unwrap(),
        boot("/boot/kernel", Some("/boot/initrd"))
    );
}

#[test]
fn alpine_flavour() {
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/vmlinuz-virt", b"k")
            .file("boot/initramfs-virt", b"i")
            .file("boot/config-virt", b"");
    });
    assert_eq!(
        find_kernel(&mut fs, None, None).unwrap(),
        boot("/boot/vmlinuz-virt", Some("/boot/initramfs-virt"))
    );
}

#[test]
fn fedora_boot_and_rescue_skipped() {
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/vmlinuz-6.5.6-300.fc39.x86_64", b"k6")
            .file("boot/initramfs-6.5.6-300.fc39.x86_64.img", b"i6")
            .file("boot/vmlinuz-6.5.12-300.fc39.x86_64", b"k12")
            .file("boot/initramfs-6.5.12-300.fc39.x86_64.img", b"i12")
            .file("boot/.vmlinuz-6.5.12-300.fc39.x86_64.hmac", b"")
            .file("boot/vmlinuz-0-rescue-0123456789abcdef", b"r");
    });
    assert_eq!(
        find_kernel(&mut fs, None, None).unwrap(),
        boot(
            "/boot/vmlinuz-6.5.12-300.fc39.x86_64",
            Some("/boot/initramfs-6.5.12-300.fc39.x86_64.img")
        )
    );
}

#[test]
fn lib_modules_kernel() {
    // Fedora's container layout: /lib -> usr/lib, kernel only under modules.
    let mut fs = rootfs(|l| {
        l.symlink("lib", "usr/lib")
            .dir("usr/lib/modules/6.5.6-300.fc39.x86_64")
            .file("usr/lib/modules/6.5.6-300.fc39.x86_64/vmlinuz", b"k")
            .dir("usr/lib/modules/6.10.3-200.fc40.x86_64")
            .file("usr/lib/modules/6.10.3-200.fc40.x86_64/vmlinuz", b"k")
            .file("usr/lib/modules/6.10.3-200.fc40.x86_64/initramfs.img", b"i");
    });
    assert_eq!(
        find_kernel(&mut fs, None, None).unwrap(),
        boot(
            "/usr/lib/modules/6.10.3-200.fc40.x86_64/vmlinuz",
            Some("/usr/lib/modules/6.10.3-200.fc40.x86_64/initramfs.img")
        )
    );
}

#[test]
fn overrides() {
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/vmlinuz-6.1.0-9-amd64", b"k9")
            .file("boot/initrd.img-6.1.0-9-amd64", b"i9")
            .file("boot/vmlinuz-6.1.0-50-amd64", b"k50")
            .file("boot/initrd.img-6.1.0-50-amd64", b"i50")
            .file("opt/my-initrd", b"i")
            .symlink("opt/kernel", "../boot/vmlinuz-6.1.0-9-amd64");
    });
    // A kernel override gets its own version's initrd.
    assert_eq!(
        find_kernel(&mut fs, Some("/boot/vmlinuz-6.1.0-9-amd64"), None).unwrap(),
        boot(
            "/boot/vmlinuz-6.1.0-9-amd64",
            Some("/boot/initrd.img-6.1.0-9-amd64")
        )
    );
    // Through a symlink, and with an initrd override.
    assert_eq!(
        find_kernel(&mut fs, Some("opt/kernel"), Some("/opt/my-initrd")).unwrap(),
        boot("/boot/vmlinuz-6.1.0-9-amd64", Some("/opt/my-initrd"))
    );
    assert_eq!(
        find_kernel(&mut fs, None, Some("/opt/my-initrd")).unwrap(),
        boot("/boot/vmlinuz-6.1.0-50-amd64", Some("/opt/my-initrd"))
    );
    let err = find_kernel(&mut fs, Some("/boot/nope"), None).unwrap_err();
    assert!(matches!(err, Error::BootFile { .. }), "{err}");
    assert!(err.to_string().contains("--kernel /boot/nope"), "{err}");
    let err = find_kernel(&mut fs, None, Some("/boot")).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn no_kernel_says_what_to_install() {
    let mut fs = rootfs(|l| {
        l.dir("boot").dir("etc").symlink("vmlinuz", "boot/missing");
    });
    let err = find_kernel(&mut fs, None, None).unwrap_err();
    assert!(matches!(err, Error::NoKernel { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("apt-get install linux-image-amd64 systemd-sysv"),
        "{msg}"
    );
    assert!(msg.contains("--boot none"), "{msg}");
}

#[test]
fn sha512_crypt_matches_the_system() {
    // Computed with glibc (`python3 -c 'import crypt; …'`) and `openssl passwd -6`.
    assert_eq!(
        sha512_crypt("pw", "salt"),
        "$6$salt$AkOOBO38SQQ8T8Q46KuCONe.8zg41nvCDKDq7pVQd2n2hy8sf8aR3G89VY.57up0eSIa/69odCCcLT4hx7FpW/"
    );
    assert_eq!(
        sha512_crypt("", "x"),
        "$6$x$QSmr1Bx2g4O6BzKvdkgOcyU6H91X6I/XBv5pSalMhSPkwdH6Beo3F455xZJg0v//bxVK5F4OE5k1.0xuR26MK0"
    );
    // Longer than one SHA-512 digest (64 bytes), a full 16-byte salt.
    let long = "a much longer password that exceeds sixty-four bytes in total length, yes really";
    assert_eq!(
        sha512_crypt(long, "abcdefghijklmnop"),
        "$6$abcdefghijklmnop$cIOnSFvvdiz7VCRUwR.f.mzozQl9LqKjBu1jT6bxztCQKC6BS14APaFdiMDl9iV7Puc.J567vCk0aQP7ytUDx/"
    );
    // And live against openssl when the host has it.
    let salt = salt_from(b"sha256:feedface");
    let Ok(out) = std::process::Command::new("openssl")
        .args(["passwd", "-6", "-salt", &salt, "pässwörd 1"])
        .output()
    else {
        eprintln!("openssl not found; live cross-check skipped");
        return;
    };
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim_end(),
        sha512_crypt("pässwörd 1", &salt)
    );
}

fn options(password: Option<&str>) -> MachineOptions {
    MachineOptions {
        hostname: "box".to_owned(),
        root_password: password.map(str::to_owned),
        fs_uuid: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".to_owned(),
        salt: Some("saltstring".to_owned()),
    }
}

fn debian_like() -> Rootfs<SpillFile> {
    rootfs(|l| {
        l.mtime(1_700_000_000)
            .dir("etc")
            .file_owned(
                "etc/shadow",
                b"root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
                0,
                42,
            )
            .file("etc/group", b"root:x:0:\nshadow:x:42:\n")
            .file("etc/fstab", b"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n")
            .file(".dockerenv", b"");
    })
}

fn text(fs: &mut Rootfs<SpillFile>, path: &str) -> String {
    String::from_utf8(fs.read_file(path.as_bytes(), 1 << 20).unwrap().unwrap()).unwrap()
}

fn mode_owner(fs: &Rootfs<SpillFile>, path: &str) -> (u16, u32, u32) {
    let inode = fs.tree().inode(fs.tree().lookup(path.as_bytes()).unwrap());
    (inode.mode, inode.uid, inode.gid)
}

#[test]
fn prepare_writes_machine_files() {
    let mut fs = debian_like();
    let (changes, warnings) = prepare(&mut fs, &options(Some("Hello world!"))).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "wrote /etc/fstab (root by UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0)",
            "wrote /etc/hostname (box)",
            "wrote /etc/hosts (localhost, 127.0.1.1 box)",
            "removed /.dockerenv",
            "wrote an empty /etc/machine-id (systemd makes one on first boot)",
            "set root's password in /etc/shadow (SHA-512 crypt)",
        ]
    );
    assert_eq!(
        text(&mut fs, "etc/fstab"),
        "# Written by d2l.\n\
         UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 / ext4 rw,relatime,errors=remount-ro 0 1\n"
    );
    assert_eq!(text(&mut fs, "etc/hostname"), "box\n");
    let hosts = text(&mut fs, "etc/hosts");
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n127.0.1.1\tbox\n"));
    assert!(hosts.contains("::1\tlocalhost ip6-localhost ip6-loopback\n"));
    assert!(hosts.contains("ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"));
    assert_eq!(text(&mut fs, "etc/machine-id"), "");
    assert!(fs.tree().lookup(b".dockerenv").is_none());
    // 1_700_000_000 s is day 19675.
    assert_eq!(
        text(&mut fs, "etc/shadow"),
        "root:$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1:19675:0:99999:7:::\n\
         daemon:*:19000:0:99999:7:::\n"
    );
    assert_eq!(mode_owner(&fs, "etc/fstab"), (0o644, 0, 0));
    assert_eq!(mode_owner(&fs, "etc/hostname"), (0o644, 0, 0));
    assert_eq!(mode_owner(&fs, "etc/hosts"), (0o644, 0, 0));
    assert_eq!(mode_owner(&fs, "etc/machine-id"), (0o444, 0, 0));
    // The existing shadow's mode and group are kept (the layer wrote 0644 root:42).
    assert_eq!(mode_owner(&fs, "etc/shadow"), (0o644, 0, 42));
    let mtime = fs
        .tree()
        .inode(fs.tree().lookup(b"etc/fstab").unwrap())
        .mtime;
    assert_eq!(mtime.seconds, 1_700_000_000);
}

#[test]
fn new_shadow_uses_the_shadow_group() {
    let mut fs = rootfs(|l| {
        l.dir("etc")
            .file("etc/group", b"root:x:0:\nshadow:x:42:\n")
            .file(".containerenv", b"");
    });
    let (changes, _) = prepare(&mut fs, &options(Some("pw"))).unwrap();
    assert!(changes.iter().any(|c| c.0 == "removed /.containerenv"));
    assert_eq!(mode_owner(&fs, "etc/shadow"), (0o640, 0, 42));
    assert_eq!(
        text(&mut fs, "etc/shadow"),
        format!(
            "root:{}:19675:0:99999:7:::\n",
            sha512_crypt("pw", "saltstring")
        )
    );
    // Without a shadow group: 0600 root:root.
    let mut fs = rootfs(|l| {
        l.dir("etc");
    });
    prepare(&mut fs, &options(Some("pw"))).unwrap();
    assert_eq!(mode_owner(&fs, "etc/shadow"), (0o600, 0, 0));
}

#[test]
fn no_password_keeps_accounts_and_warns() {
    let mut fs = debian_like();
    let (changes, warnings) = prepare(&mut fs, &options(None)).unwrap();
    assert_eq!(
        warnings,
        ["no --root-password: root cannot log in (the image's accounts are kept)"]
    );
    assert!(!changes.iter().any(|c| c.0.contains("shadow")));
    assert_eq!(
        text(&mut fs, "etc/shadow"),
        "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
    );
    // A usable root password in the image: nothing to warn about.
    let mut fs = rootfs(|l| {
        l.file(
            "etc/shadow",
            format!("root:{}:1::::::\n", sha512_crypt("x", "y")).as_bytes(),
        );
    });
    let (_, warnings) = prepare(&mut fs, &options(None)).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    // Locked with "!".
    let mut fs = rootfs(|l| {
        l.file("etc/shadow", b"root:!:1::::::\n");
    });
    let (_, warnings) = prepare(&mut fs, &options(None)).unwrap();
    assert_eq!(warnings.len(), 1);
}

#[test]
fn bad_hostname_is_refused() {
    let mut fs = debian_like();
    let mut opts = options(None);
    opts.hostname = "two words".to_owned();
    let err = prepare(&mut fs, &opts).unwrap_err();
    assert!(err.to_string().starts_with("--hostname"), "{err}");
}
